"""Unicycle action space with (acceleration, curvature) controls (spec §4).

An action is (..., 64, 2): normalised longitudinal acceleration and normalised curvature per
0.1 s step.  ``action_to_traj`` rolls the unicycle forward from the speed estimated on the ego
history; ``traj_to_action`` is the regularised inverse used to build training targets.

Computation runs in float64 when any input is float64 and in float32 otherwise (bfloat16 or
float16 inputs are promoted, Cholesky has no half-precision kernel), with autocast disabled, so
a float64 caller gets a float64 result all the way through.
"""
from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Sequence, Tuple, Union

import torch

from .least_squares import (
    cholesky_solve_ridge,
    scaled_fit,
    smoothing_gram,
    solve_fixed_first,
    trapezoid_speed_system,
)

Tensor = torch.Tensor


def work_dtype(*tensors: Tensor) -> torch.dtype:
    """Return float64 if any tensor is float64, else float32 (the solver precision)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


@contextmanager
def exact_math(ref: Tensor) -> Iterator[None]:
    """Disable autocast on the device of ``ref``: the solves are ill-conditioned in bf16."""
    with torch.autocast(device_type=ref.device.type, enabled=False):
        yield


def yaw_of(rot: Tensor) -> Tensor:
    """Return the yaw atan2(R[1,0], R[0,0]) of rotation matrices (..., 3, 3) as (...)."""
    return torch.atan2(rot[..., 1, 0], rot[..., 0, 0])


def unwrap_angle(phi: Tensor) -> Tensor:
    """Unwrap angles (..., N) along the last axis: keep phi[0], add differences wrapped to pi."""
    step = torch.diff(phi, dim=-1)
    step = torch.atan2(torch.sin(step), torch.cos(step))
    return torch.cat([phi[..., :1], phi[..., :1] + torch.cumsum(step, dim=-1)], dim=-1)


def yaw_rotation(theta: Tensor) -> Tensor:
    """Return planar rotations Rz(theta) as (..., 3, 3) for angles (...)."""
    cos, sin = torch.cos(theta), torch.sin(theta)
    zero, one = torch.zeros_like(theta), torch.ones_like(theta)
    return torch.stack([torch.stack([cos, -sin, zero], -1),
                        torch.stack([sin, cos, zero], -1),
                        torch.stack([zero, zero, one], -1)], dim=-2)


class UnicycleAccelCurvatureActionSpace(torch.nn.Module):
    """Unicycle kinematics driven by acceleration and curvature (official config names).

    Buffers ``accel_mean``, ``accel_std``, ``curvature_mean``, ``curvature_std`` are 0-d,
    persistent and created in torch's default dtype; they are cast to the computation dtype on
    use.  Bounds are only used by ``is_within_bounds`` (a diagnostic).
    """

    def __init__(self, accel_mean: float = 0.0, accel_std: float = 1.0,
                 curvature_mean: float = 0.0, curvature_std: float = 1.0,
                 accel_bounds: Sequence[float] = (-9.8, 9.8),
                 curvature_bounds: Sequence[float] = (-0.2, 0.2), dt: float = 0.1,
                 n_waypoints: int = 64, theta_lambda: float = 1e-6, theta_ridge: float = 1e-8,
                 v_lambda: float = 1e-6, v_ridge: float = 1e-4, a_lambda: float = 1e-4,
                 a_ridge: float = 1e-4, kappa_lambda: float = 1e-4, kappa_ridge: float = 1e-4):
        super().__init__()
        for name, value in (('accel_mean', accel_mean), ('accel_std', accel_std),
                            ('curvature_mean', curvature_mean),
                            ('curvature_std', curvature_std)):
            self.register_buffer(name, torch.tensor(float(value)))
        self.accel_bounds = (float(accel_bounds[0]), float(accel_bounds[1]))
        self.curvature_bounds = (float(curvature_bounds[0]), float(curvature_bounds[1]))
        self.dt = float(dt)
        self.n_waypoints = int(n_waypoints)
        self.theta_lambda, self.theta_ridge = float(theta_lambda), float(theta_ridge)
        self.v_lambda, self.v_ridge = float(v_lambda), float(v_ridge)
        self.a_lambda, self.a_ridge = float(a_lambda), float(a_ridge)
        self.kappa_lambda, self.kappa_ridge = float(kappa_lambda), float(kappa_ridge)

    def get_action_space_dims(self) -> Tuple[int, int]:
        """Return the action shape (n_waypoints, 2)."""
        return (self.n_waypoints, 2)

    def _stats(self, like: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Return (accel mean, accel std, curvature mean, curvature std) in like's dtype."""
        return tuple(b.to(device=like.device, dtype=like.dtype) for b in (
            self.accel_mean, self.accel_std, self.curvature_mean, self.curvature_std))

    def denormalize(self, action: Tensor) -> Tuple[Tensor, Tensor]:
        """Map a normalised action (..., N, 2) to (accel m/s^2, curvature 1/m), each (..., N)."""
        action = action.to(work_dtype(action))
        a_mean, a_std, k_mean, k_std = self._stats(action)
        return action[..., 0] * a_std + a_mean, action[..., 1] * k_std + k_mean

    def normalize(self, accel: Tensor, curvature: Tensor) -> Tensor:
        """Map accel (..., N) and curvature (..., N) to the normalised action (..., N, 2)."""
        dtype = work_dtype(accel, curvature)
        accel, curvature = accel.to(dtype), curvature.to(dtype)
        a_mean, a_std, k_mean, k_std = self._stats(accel)
        return torch.stack([(accel - a_mean) / a_std, (curvature - k_mean) / k_std], dim=-1)

    def is_within_bounds(self, action: Tensor) -> Tensor:
        """Return (...) bool: every step of action (..., N, 2) lies inside both bounds."""
        accel, kappa = self.denormalize(action)
        inside = ((accel >= self.accel_bounds[0]) & (accel <= self.accel_bounds[1])
                  & (kappa >= self.curvature_bounds[0]) & (kappa <= self.curvature_bounds[1]))
        return torch.all(inside, dim=-1)

    @torch.no_grad()
    def estimate_t0_states(self, hist_xyz: Tensor, hist_rot: Tensor) -> Dict[str, Tensor]:
        """Estimate the state at t0 (the last history pose) from the ego history (spec §4.3).

        All history speeds are fitted jointly (trapezoid model on the raw, unsmoothed yaw with a
        jerk-smoothness penalty) and the last one is taken.

        Args:
            hist_xyz: (..., T, 3) history positions in the t0 frame.
            hist_rot: (..., T, 3, 3) history rotations in the t0 frame.

        Returns:
            dict: ``'v'`` (...) speed at t0 in m/s, in the computation dtype.

        """
        dtype = work_dtype(hist_xyz, hist_rot)
        with exact_math(hist_xyz):
            xy = hist_xyz[..., :2].to(dtype)
            theta = unwrap_angle(yaw_of(hist_rot.to(dtype)))
            gram, rhs = trapezoid_speed_system(xy[..., 1:, :] - xy[..., :-1, :], theta, self.dt)
            gram = gram + smoothing_gram(gram.shape[-1], 3, self.v_lambda, self.dt, dtype,
                                         gram.device)
            speeds = cholesky_solve_ridge(gram, rhs, self.v_ridge)
        return {'v': speeds[..., -1]}

    @torch.no_grad()
    def traj_to_action(self, hist_xyz: Tensor, hist_rot: Tensor, fut_xyz: Tensor,
                       fut_rot: Tensor, output_all_states: bool = False, *,
                       t0_states: Optional[Dict[str, Tensor]] = None,
                       ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Convert a future trajectory to the normalised action that best reproduces it.

        Args:
            hist_xyz: (..., T, 3) history positions; the last one is the t0 pose.
            hist_rot: (..., T, 3, 3) history rotations.
            fut_xyz: (..., n_waypoints, 3) future positions in the t0 frame.
            fut_rot: (..., n_waypoints, 3, 3) future rotations.
            output_all_states: also return the fitted states.
            t0_states: optional precomputed ``estimate_t0_states`` result.

        Returns:
            action (..., N, 2); with output_all_states also states (..., N, 3) = (v_k,
            normalised a_k, theta_k), k < N: the official code normalises accel in place
            before stacking, so the middle channel equals action[..., 0].

        Raises:
            ValueError: if the future does not have n_waypoints poses.

        """
        if fut_xyz.shape[-2] != self.n_waypoints or fut_rot.shape[-3] != self.n_waypoints:
            raise ValueError(f'future trajectory must have {self.n_waypoints} poses, got '
                             f'xyz {tuple(fut_xyz.shape)} and rot {tuple(fut_rot.shape)}')
        dtype = work_dtype(hist_xyz, hist_rot, fut_xyz, fut_rot)
        if t0_states is None:
            t0_states = self.estimate_t0_states(hist_xyz, hist_rot)
        with exact_math(fut_xyz):
            xy = torch.cat([hist_xyz[..., -1:, :2], fut_xyz[..., :2]], dim=-2).to(dtype)
            theta = self._smooth_heading(fut_rot.to(dtype))
            speed = self._fit_speed(xy[..., 1:, :] - xy[..., :-1, :], theta,
                                    t0_states['v'].to(dtype))
            action = self.normalize(*self._fit_controls(speed, theta))
        if not output_all_states:
            return action
        return action, torch.stack([speed[..., :-1], action[..., 0], theta[..., :-1]], dim=-1)

    def _smooth_heading(self, fut_rot: Tensor) -> Tensor:
        """Return smoothed headings (..., N + 1) with theta_0 = 0 from future rotations."""
        raw = unwrap_angle(yaw_of(fut_rot))
        n = raw.shape[-1] + 1
        # Data term on theta_1..N only (theta_0 is the fixed t0 heading), jerk-like penalty.
        data = torch.diag_embed(torch.cat([torch.zeros_like(raw[..., :1]),
                                           torch.ones_like(raw)], dim=-1))
        gram = data + smoothing_gram(n, 3, self.theta_lambda, self.dt, raw.dtype, raw.device)
        rhs = torch.cat([torch.zeros_like(raw[..., :1]), raw], dim=-1)
        return solve_fixed_first(gram, rhs, torch.zeros_like(raw[..., 0]), self.theta_ridge)

    def _fit_speed(self, dxy: Tensor, theta: Tensor, v0: Tensor) -> Tensor:
        """Return speeds (..., N + 1) with v_0 = v0 fitted to increments dxy (..., N, 2)."""
        gram, rhs = trapezoid_speed_system(dxy, theta, self.dt)
        gram = gram + smoothing_gram(gram.shape[-1], 3, self.v_lambda, self.dt, gram.dtype,
                                     gram.device)
        return solve_fixed_first(gram, rhs, v0, self.v_ridge)

    def _fit_controls(self, speed: Tensor, theta: Tensor) -> Tuple[Tensor, Tensor]:
        """Return (accel, curvature) (..., N) fitted to speeds and headings (..., N + 1).

        Acceleration fits the speed differences; curvature fits the heading change per arc
        length s_k = v_k dt + a_k dt^2 / 2.  Both penalise the change of jerk (2nd difference of
        the control); the ridge keeps curvature near 0 where s is about 0 (standing still).
        """
        dt = self.dt
        accel = scaled_fit(torch.ones_like(speed[..., 1:]), torch.diff(speed, dim=-1) / dt, 2,
                           self.a_lambda, self.a_ridge, dt)
        arc = dt * speed[..., :-1] + (dt ** 2) / 2.0 * accel
        kappa = scaled_fit(arc, torch.diff(theta, dim=-1), 2, self.kappa_lambda,
                           self.kappa_ridge, dt)
        return accel, kappa

    def action_to_traj(self, action: Tensor, hist_xyz: Tensor, hist_rot: Tensor,
                       t0_states: Optional[Dict[str, Tensor]] = None) -> Tuple[Tensor, Tensor]:
        """Roll the unicycle forward from t0 (spec §4.1).

        Starts at (0, 0) with heading 0; z is copied from the last history point.  Speed is
        not clamped (it may go negative).

        Args:
            action: (..., n_waypoints, 2) normalised action.
            hist_xyz: (..., T, 3) history positions (batch dims broadcast with action's).
            hist_rot: (..., T, 3, 3) history rotations.
            t0_states: optional ``estimate_t0_states`` result; re-estimated when None.

        Returns:
            tuple: xyz (..., n_waypoints, 3), rot (..., n_waypoints, 3, 3) (yaw only).

        Raises:
            ValueError: if action is not (..., n_waypoints, 2).

        """
        if tuple(action.shape[-2:]) != self.get_action_space_dims():
            raise ValueError(f'action must be (..., {self.n_waypoints}, 2), '
                             f'got {tuple(action.shape)}')
        dtype = work_dtype(action, hist_xyz, hist_rot)
        if t0_states is None:
            t0_states = self.estimate_t0_states(hist_xyz, hist_rot)
        with exact_math(action):
            speed, theta = self._integrate(*self.denormalize(action.to(dtype)),
                                           t0_states['v'].to(dtype))
            x = self._trapezoid(speed * torch.cos(theta))
            y = self._trapezoid(speed * torch.sin(theta))
            z = hist_xyz[..., -1:, 2].to(dtype)
            xyz = torch.stack(torch.broadcast_tensors(x, y, z), dim=-1)
        rot = yaw_rotation(theta[..., 1:])
        return xyz, rot.expand(*xyz.shape[:-1], 3, 3)

    def _integrate(self, accel: Tensor, kappa: Tensor, v0: Tensor) -> Tuple[Tensor, Tensor]:
        """Return speed and heading (..., N + 1) from controls (..., N) and v0 (...)."""
        dt = self.dt
        batch = torch.broadcast_shapes(v0.shape, accel.shape[:-1])
        accel, kappa = accel.expand(*batch, -1), kappa.expand(*batch, -1)
        v0 = v0.expand(batch).unsqueeze(-1)
        speed = torch.cat([v0, v0 + torch.cumsum(accel * dt, dim=-1)], dim=-1)
        # Separate cumsums (here and in _trapezoid) keep the official rounding: float32
        # results then match the release bitwise.
        turn = (torch.cumsum(kappa * speed[..., :-1] * dt, dim=-1)
                + torch.cumsum(kappa * accel * (0.5 * dt ** 2), dim=-1))
        return speed, torch.cat([torch.zeros_like(turn[..., :1]), turn], dim=-1)

    def _trapezoid(self, rate: Tensor) -> Tensor:
        """Integrate rate samples (..., N + 1) with the trapezoid rule to (..., N) positions."""
        half = 0.5 * self.dt
        return (torch.cumsum(rate[..., :-1] * half, dim=-1)
                + torch.cumsum(rate[..., 1:] * half, dim=-1))
