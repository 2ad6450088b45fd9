"""The ego history AR1 conditions on: 16 poses on an exact 0.1 s grid, in the ego frame at t0.

Odometry arrives at its own rate with jitter, so each grid time is interpolated between the
two samples around it (position and body velocity linearly, rotation by slerp). A gap wider
than the configured maximum is not bridged: guessing a pose there would feed the model a
history the car never drove.
"""
from typing import Optional, Tuple, Union

import numpy as np

from ar1_ros.runtime.buffers import StampedRing
from ar1_ros.runtime.config import SelectionConfig
from ar1_ros.runtime.rotations import slerp
from ar1_ros.runtime.types import NS_PER_S, EgoHistory, EgoState, Pose, Skip, seconds_to_ns

Interpolated = Tuple[np.ndarray, np.ndarray, np.ndarray]


def check_ego_state(state: EgoState) -> Optional[str]:
    """Return None when `state` is usable, else a short reason why it is not.

    position (3,) and velocity (3,) must be finite; rotation (3, 3) finite and orthonormal
    (|R^T R - I| <= 1e-3 elementwise, det >= 0.99, so no reflections).
    """
    position = np.asarray(state.position, dtype=np.float64)
    rotation = np.asarray(state.rotation, dtype=np.float64)
    velocity = np.asarray(state.velocity, dtype=np.float64)
    for name, value, shape in (('position', position, (3,)), ('rotation', rotation, (3, 3)),
                               ('velocity', velocity, (3,))):
        if value.shape != shape:
            return f'ego {name} has shape {value.shape}, expected {shape}'
        if not np.all(np.isfinite(value)):
            return f'ego {name} is not finite: {value.tolist()}'
    error = float(np.max(np.abs(rotation.T @ rotation - np.eye(3))))
    det = float(np.linalg.det(rotation))
    if error > 1e-3 or det < 0.99:
        return f'ego rotation is not orthonormal (|R^T R - I| = {error:.2g}, det = {det:.3f})'
    return None


def _describe(t_ns: int, buffer: StampedRing) -> str:
    oldest, newest = buffer.oldest(), buffer.newest()
    if oldest is None:
        return f'no odometry buffered for t={t_ns / NS_PER_S:.3f} s'
    return (f'odometry covers [{oldest[0] / NS_PER_S:.3f}, {newest[0] / NS_PER_S:.3f}] s, '
            f'needed t={t_ns / NS_PER_S:.3f} s')


def interpolate_pose(buffer: StampedRing, t_ns: int,
                     max_gap_ns: int) -> Union[Interpolated, Skip]:
    """Return (position (3,), rotation (3, 3), velocity (3,)) of the ego at `t_ns`.

    Interpolates between the samples of `buffer` (StampedRing[EgoState]) bracketing t_ns;
    Skip('ego_not_covered') when t_ns lies outside the buffered span, Skip('ego_gap') when the
    bracketing samples are more than max_gap_ns apart, Skip('ego_history_invalid') when one
    of them fails check_ego_state.
    """
    before, after = buffer.bracket(t_ns)
    if before is None or after is None:
        return Skip('ego_not_covered', _describe(t_ns, buffer))
    (s0, a), (s1, b) = before, after
    for stamp, state in {s0: a, s1: b}.items():
        # Stored samples passed add_ego, but a ring may be filled directly (replay, tests).
        problem = check_ego_state(state)
        if problem is not None:
            return Skip('ego_history_invalid', f'odometry at t={stamp / NS_PER_S:.3f} s: '
                                               f'{problem}')
    if s0 == s1:
        return (np.asarray(a.position, dtype=np.float64),
                np.asarray(a.rotation, dtype=np.float64),
                np.asarray(a.velocity, dtype=np.float64))
    if s1 - s0 > max_gap_ns:
        return Skip('ego_gap', f'odometry gap of {(s1 - s0) / 1e6:.0f} ms around '
                               f't={t_ns / NS_PER_S:.3f} s (limit {max_gap_ns / 1e6:.0f} ms)')
    alpha = (t_ns - s0) / (s1 - s0)

    def lerp(u, v):
        u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
        return u + alpha * (v - u)

    return (lerp(a.position, b.position), slerp(a.rotation, b.rotation, alpha),
            lerp(a.velocity, b.velocity))


def _interpolate_grid(buffer: StampedRing, stamps_ns: np.ndarray,
                      max_gap_ns: int) -> Union[Tuple[list, ...], Skip]:
    positions, rotations, velocities = [], [], []
    for stamp in stamps_ns:
        pose = interpolate_pose(buffer, int(stamp), max_gap_ns)
        if isinstance(pose, Skip):
            return pose
        positions.append(pose[0])
        rotations.append(pose[1])
        velocities.append(pose[2])
    return positions, rotations, velocities


def _check_history(xyz: np.ndarray, rot: np.ndarray, velocity: np.ndarray, dt: float,
                   cfg: SelectionConfig) -> Optional[Skip]:
    if not (np.all(np.isfinite(xyz)) and np.all(np.isfinite(rot))
            and np.all(np.isfinite(velocity))):
        return Skip('ego_history_invalid', 'ego history is not finite')
    implied = float(np.linalg.norm(xyz[-1] - xyz[-2])) / dt
    reported = float(np.linalg.norm(velocity))
    limit = max(cfg.max_speed_mismatch_mps, cfg.max_speed_mismatch_ratio * reported)
    if abs(implied - reported) > limit:
        return Skip('ego_history_invalid',
                    f'last history step implies {implied:.2f} m/s but odometry reports '
                    f'{reported:.2f} m/s (allowed difference {limit:.2f} m/s)')
    return None


def build_history(buffer: StampedRing, t0_ns: int,
                  cfg: SelectionConfig) -> Union[EgoHistory, Skip]:
    """Return the EgoHistory ending at t0_ns from `buffer` (StampedRing[EgoState]), or a Skip.

    Grid stamps (N,) = t0 - (N - 1 - k) * dt with N = cfg.history_steps; xyz (N, 3) =
    R0^T (p - p0) and rot (N, 3, 3) = R0^T R, where (p0, R0) is the pose at t0. speed is the
    body-x velocity at t0. Skips: those of interpolate_pose, and 'ego_history_invalid' when a
    value is not finite or the last step's implied speed contradicts the odometry twist.
    """
    n, dt_ns = cfg.history_steps, seconds_to_ns(cfg.history_dt_s)
    stamps = np.int64(t0_ns) - (n - 1 - np.arange(n, dtype=np.int64)) * np.int64(dt_ns)
    grid = _interpolate_grid(buffer, stamps, seconds_to_ns(cfg.max_ego_gap_s))
    if isinstance(grid, Skip):
        return grid
    positions, rotations, velocities = (np.stack(v) for v in grid)
    p0, r0, v0 = positions[-1], rotations[-1], velocities[-1]
    xyz = (positions - p0) @ r0  # row-vector form of R0^T (p - p0)
    rot = np.einsum('ji,njk->nik', r0, rotations)
    rot[-1] = np.eye(3)  # exact identity, not R0^T R0 with rounding
    problem = _check_history(xyz, rot, v0, dt_ns / NS_PER_S, cfg)
    if problem is not None:
        return problem
    newest = buffer.nearest(t0_ns)
    frame_id = newest[1].frame_id if newest is not None else 'odom'
    return EgoHistory(xyz=xyz, rot=rot, stamps_ns=stamps, speed=float(v0[0]),
                      pose_t0=Pose(position=p0.copy(), rotation=r0.copy()), frame_id=frame_id)
