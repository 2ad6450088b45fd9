"""The unicycle model of AR1's action space (spec §4.1), in float64 numpy.

The model integrates its (acceleration, curvature) controls with these equations; the fake
backend, the validator and the published point speeds use the same ones, so speeds reported
with a plan are the speeds the plan was built from.
"""
from typing import Tuple

import numpy as np


def point_speeds(actions: np.ndarray, v0: float, dt: float) -> np.ndarray:
    """Return speeds (S, 65): v_0 = v0 and v_{k+1} = v_k + a_k dt, for actions (S, 64, 2)."""
    actions = np.asarray(actions, dtype=np.float64)
    steps = np.cumsum(actions[..., 0] * dt, axis=-1)
    v0_column = np.full(actions.shape[:-2] + (1,), float(v0))
    return np.concatenate([v0_column, v0 + steps], axis=-1)


def integrate_unicycle(actions: np.ndarray, v0: float,
                       dt: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integrate controls (S, 64, 2) from the origin with heading 0 and speed v0.

    Returns xyz (S, 64, 3) with z = 0, rot (S, 64, 3, 3) planar rotations Rz(θ_{k+1}), and
    speeds (S, 65). Heading uses θ_{k+1} = θ_k + κ_k v_k dt + κ_k a_k dt²/2 and positions the
    trapezoid rule, exactly as the model's action space does.
    """
    actions = np.asarray(actions, dtype=np.float64)
    accel, curvature = actions[..., 0], actions[..., 1]
    speeds = point_speeds(actions, v0, dt)
    dtheta = curvature * speeds[..., :-1] * dt + curvature * accel * dt * dt / 2
    theta = np.concatenate([np.zeros(dtheta.shape[:-1] + (1,)), np.cumsum(dtheta, axis=-1)], -1)
    step_x = dt / 2 * (speeds[..., :-1] * np.cos(theta[..., :-1])
                       + speeds[..., 1:] * np.cos(theta[..., 1:]))
    step_y = dt / 2 * (speeds[..., :-1] * np.sin(theta[..., :-1])
                       + speeds[..., 1:] * np.sin(theta[..., 1:]))
    xyz = np.stack([np.cumsum(step_x, -1), np.cumsum(step_y, -1), np.zeros_like(step_x)], -1)
    heading = theta[..., 1:]
    cos, sin = np.cos(heading), np.sin(heading)
    rot = np.zeros(heading.shape + (3, 3))
    rot[..., 0, 0], rot[..., 0, 1], rot[..., 1, 0], rot[..., 1, 1] = cos, -sin, sin, cos
    rot[..., 2, 2] = 1.0
    return xyz, rot, speeds
