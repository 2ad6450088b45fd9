"""The safety gate: physical plausibility checks on every sampled plan before it is published.

Each check reports its worst offender as a short reason with numbers, so a rejected plan says
why in diagnostics. Times in reasons: control k (acceleration, curvature) acts from t = k*dt
to (k+1)*dt; planned point i (and speed v_{i+1}) is at t = (i+1)*dt after t0.
"""
import math
from typing import List, Optional

import numpy as np

from ar1_ros.runtime.config import ValidatorConfig
from ar1_ros.runtime.kinematics import point_speeds
from ar1_ros.runtime.types import BackendOutput, Verdict


def check_shapes(output: BackendOutput) -> int:
    """Return the sample count S of `output`; raise ValueError on inconsistent shapes or dt.

    Expected: xyz (S, N, 3), rot (S, N, 3, 3), actions (S, N, 2) with N >= 1, dt > 0.
    """
    xyz, rot, actions = (np.shape(a) for a in (output.trajectory_xyz, output.trajectory_rot,
                                                output.actions))
    ok = (len(xyz) == 3 and xyz[-1] == 3 and rot == xyz[:2] + (3, 3)
          and actions == xyz[:2] + (2,) and xyz[1] >= 1)
    if not ok:
        raise ValueError(f'backend output shapes disagree: xyz {xyz}, rot {rot}, '
                         f'actions {actions} (expected (S, N, 3), (S, N, 3, 3), (S, N, 2))')
    if not (math.isfinite(output.dt) and output.dt > 0):
        raise ValueError(f'backend output dt must be > 0, got {output.dt}')
    return xyz[0]


def _outside(name: str, unit: str, values: np.ndarray, times: np.ndarray, low: float,
             high: float) -> Optional[str]:
    """Return a reason for the value furthest outside [low, high], or None if all inside."""
    excess = np.maximum(low - values, values - high)
    worst = int(np.argmax(excess))
    if excess[worst] <= 0:
        return None
    if math.isinf(low):
        bound = f'above {high:g}'
    elif math.isinf(high):
        bound = f'below {low:g}'
    else:
        bound = f'outside [{low:g}, {high:g}]'
    return f'{name} {values[worst]:.3g} {unit} at t={times[worst]:.1f} s {bound}'


def _first_point(xyz: np.ndarray, accel0: float, speed: float, dt: float,
                 cfg: ValidatorConfig) -> Optional[str]:
    """Check the first point (N, 3)[0] lies one step of travel at the current speed away."""
    distance = float(np.hypot(xyz[0, 0], xyz[0, 1]))
    expected = abs(speed * dt + 0.5 * accel0 * dt * dt)
    tolerance = cfg.first_point_tolerance_m + cfg.first_point_tolerance_ratio * abs(speed) * dt
    if abs(distance - expected) <= tolerance:
        return None
    return (f'first point {distance:.2f} m from t0, expected {expected:.2f} ± {tolerance:.2f} m '
            f'at {speed:.2f} m/s')


def _non_finite(output: BackendOutput, sample: int) -> Optional[str]:
    """Name the arrays of `sample` that hold NaN or infinite values, or return None."""
    bad = [name for name, array in (('xyz', output.trajectory_xyz), ('rot', output.trajectory_rot),
                                    ('actions', output.actions))
           if not np.all(np.isfinite(array[sample]))]
    return f'non-finite values in {", ".join(bad)}' if bad else None


def validate(output: BackendOutput, sample: int, speed: float,
             cfg: ValidatorConfig) -> Verdict:
    """Check one sample of `output` against the bounds in `cfg`, at current speed `speed` m/s.

    output holds xyz (S, N, 3), rot (S, N, 3, 3) and actions (S, N, 2) = (accel, curvature);
    speeds v (N + 1,) come from integrating the accelerations from v_0 = speed.
    """
    check_shapes(output)
    if not math.isfinite(speed):
        return Verdict(False, (f'current speed {speed} is not finite',))
    problem = _non_finite(output, sample)
    if problem:
        return Verdict(False, (problem,))
    dt = float(output.dt)
    accel, curvature = (np.asarray(output.actions[sample][:, i], dtype=np.float64) for i in (0, 1))
    steps = np.arange(accel.shape[0]) * dt
    speeds = point_speeds(output.actions[sample][None], speed, dt)[0]
    # Lateral acceleration over a control step: the larger of its two end speeds.
    v_squared = np.maximum(speeds[:-1] ** 2, speeds[1:] ** 2)
    reasons = [
        _outside('accel', 'm/s²', accel, steps, cfg.min_accel, cfg.max_accel),
        _outside('curvature', '1/m', curvature, steps, -cfg.max_curvature, cfg.max_curvature),
        _outside('jerk', 'm/s³', np.diff(accel) / dt, steps[1:], -cfg.max_jerk, cfg.max_jerk),
        _outside('lateral accel', 'm/s²', v_squared * np.abs(curvature), steps,
                 -math.inf, cfg.max_lateral_accel),
        _outside('speed', 'm/s', speeds[1:], steps + dt, cfg.min_speed, math.inf),
        _first_point(np.asarray(output.trajectory_xyz[sample]), float(accel[0]), speed, dt, cfg),
    ]
    reasons = tuple(r for r in reasons if r)
    return Verdict(not reasons, reasons)


def validate_all(output: BackendOutput, speed: float, cfg: ValidatorConfig) -> List[Verdict]:
    """Return one Verdict per sample of `output` (S samples), in sample order."""
    return [validate(output, s, speed, cfg) for s in range(check_shapes(output))]
