"""Comfort of a trajectory, as the official AR1 RL reward defines it (spec §9.4).

Every term is a finite difference divided by dt (×10 at 10 Hz) with its last value repeated, so
each has the trajectory's length T. The differences start at the first future point, not at
the t0 pose (the pose at t0 is not part of the input). With heading h = atan2(R10, R00) and
dx = d(x), dy = d(y):

- v = |(dx, dy)|, jerk = d(d(v))                          [m/s³]
- lon_accel = d(dx cos h + dy sin h), lon_jerk = d(lon_accel)   [m/s², m/s³]
- lat_accel = d(-dx sin h + dy cos h)                     [m/s²]
- yaw_rate = d(h) with each difference wrapped into [-pi, pi], yaw_accel = d(yaw_rate)
  [rad/s, rad/s²]

A check passes when ALL T values lie strictly inside its bounds (a NaN fails). Repeating the
last difference at each stage zeroes the last accelerations, so a path that still accelerates
at its end shows a jerk of about a / dt there: the official behaviour, kept on purpose.
"""
from typing import Dict, Tuple

import numpy as np

# (low, high), exclusive: the official bounds.
BOUNDS: Dict[str, Tuple[float, float]] = {
    'lon_accel': (-4.05, 2.40),
    'lat_accel': (-4.89, 4.89),
    'jerk': (-8.37, 8.37),
    'lon_jerk': (-4.13, 4.13),
    'yaw_accel': (-1.93, 1.93),
    'yaw_rate': (-0.95, 0.95),
}
# The keys of comfort_checks(): every term, then 'all' (every term passed).
CHECKS = (*BOUNDS, 'all')


def difference(values: np.ndarray, dt: float) -> np.ndarray:
    """Return d(values)/dt (N,) of values (N,), the last difference repeated (zeros if N < 2)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return np.zeros_like(values)
    d = np.diff(values) / dt
    return np.append(d, d[-1])


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Return heading differences (each in (-2 pi, 2 pi)) brought into [-pi, pi]."""
    angle = np.where(angle > np.pi, angle - 2 * np.pi, angle)
    return np.where(angle < -np.pi, angle + 2 * np.pi, angle)


def _checked(xyz, rot, dt: float) -> Tuple[np.ndarray, np.ndarray]:
    xyz, rot = np.asarray(xyz, dtype=np.float64), np.asarray(rot, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or rot.shape != (len(xyz), 3, 3):
        raise ValueError(f'comfort needs xyz (T, 3) and rot (T, 3, 3), got {xyz.shape} and '
                         f'{rot.shape}')
    if not dt > 0:
        raise ValueError(f'dt must be positive, got {dt}')
    return xyz, rot


def comfort_terms(xyz: np.ndarray, rot: np.ndarray, dt: float = 0.1) -> Dict[str, np.ndarray]:
    """Return the six comfort terms, each (T,), of a path xyz (T, 3) with rotations (T, 3, 3).

    Units: m/s² (lon_accel, lat_accel), m/s³ (jerk, lon_jerk), rad/s (yaw_rate), rad/s²
    (yaw_accel); dt in seconds. Raises ValueError on inconsistent shapes.
    """
    xyz, rot = _checked(xyz, rot, dt)
    heading = np.arctan2(rot[:, 1, 0], rot[:, 0, 0])
    dx, dy = difference(xyz[:, 0], dt), difference(xyz[:, 1], dt)
    cos, sin = np.cos(heading), np.sin(heading)
    lon_accel = difference(dx * cos + dy * sin, dt)
    if len(heading) < 2:
        yaw_rate = np.zeros_like(heading)
    else:
        steps = _wrap(np.diff(heading)) / dt
        yaw_rate = np.append(steps, steps[-1])
    return {'lon_accel': lon_accel,
            'lat_accel': difference(-dx * sin + dy * cos, dt),
            'jerk': difference(difference(np.hypot(dx, dy), dt), dt),
            'lon_jerk': difference(lon_accel, dt),
            'yaw_accel': difference(yaw_rate, dt),
            'yaw_rate': yaw_rate}


def comfort_checks(xyz: np.ndarray, rot: np.ndarray, dt: float = 0.1) -> Dict[str, bool]:
    """Return {term: passed} for the six terms of comfort_terms() plus 'all' (see CHECKS)."""
    terms = comfort_terms(xyz, rot, dt)
    checks = {name: bool(np.all((terms[name] > low) & (terms[name] < high)))
              for name, (low, high) in BOUNDS.items()}
    checks['all'] = all(checks.values())
    return checks
