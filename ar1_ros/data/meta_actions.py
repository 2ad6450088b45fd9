"""Meta-actions of a trajectory: what it does, in the words a chain-of-causation text uses.

A meta-action is a (longitudinal, lateral) pair of labels read off a 64-step trajectory in the
t0 ego frame (x forward, y left, z up; the vehicle starts at the origin with heading 0). The
GRPO consistency reward compares it with the decision a CoC states (`compatible`); an
auto-labelling tool applies the same rules to recorded futures.

Both entry points classify a path: `meta_action_from_controls` first integrates its
(acceleration, curvature) controls with the model's unicycle (runtime.kinematics), so a plan
and the path it draws always get the same labels. From the path, with p_0 = (0, 0):

- step speed s_k = |p_k - p_{k-1}| / dt, the mean speed over step k (the speed at (k - 1/2) dt);
- longitudinal: 'stop' when the last step speed is below `stop_speed_mps` (stopping and
  standing both end stopped); otherwise the mean acceleration over the first `window_s`
  seconds, (s_n - v0) / ((n - 1/2) dt), gives 'accelerate' above `accel_mps2`, 'decelerate'
  below `decel_mps2`, 'keep_speed' in between;
- heading change = direction of the last moving step (unwrapped along the path, relative to the
  t0 heading 0); steps slower than `moving_speed_mps` have no direction and are skipped;
- lateral: a turn when |heading change| > `turn_rad`, left when positive; else a lane change
  when |y at the end| >= `lane_offset_m` and |heading change| <= `lane_heading_rad`, left when
  y > 0; else 'keep_lane' (nudges and gentle road curves included).

The lateral offset is measured in the t0 frame, not along the lane: a lane change on a curved
road reads as keep_lane or a turn. Reversing is not modelled (AR1 plans forward motion).
"""
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Optional, Tuple

import numpy as np

from ar1_ros.runtime.kinematics import integrate_unicycle
from ar1_ros.runtime.presentation import DECISIONS

LONGITUDINAL = ('accelerate', 'keep_speed', 'decelerate', 'stop')
LATERAL = ('keep_lane', 'turn_left', 'turn_right', 'lane_change_left', 'lane_change_right')


@dataclass(frozen=True)
class MetaActionRules:
    """Thresholds of the meta-action rules, in SI units.

    Attributes:
        window_s: float, seconds after t0 over which the mean acceleration is taken (the
            near-term intent a CoC states; clipped to the horizon).
        accel_mps2: float > 0, mean acceleration above which the trajectory accelerates.
        decel_mps2: float < 0, mean acceleration below which it decelerates [m/s²].
        stop_speed_mps: float, it stops when the speed over its last step is below this [m/s].
        moving_speed_mps: float, steps slower than this define no heading [m/s] (the positions
            of a standing vehicle jitter).
        turn_rad: float, |heading change| over the horizon above which it turns [rad].
        lane_offset_m: float, |y| at the end from which it changes lanes [m].
        lane_heading_rad: float, a lane change ends with |heading change| at most this [rad].

    """

    window_s: float = 3.0
    accel_mps2: float = 0.5
    decel_mps2: float = -0.5
    stop_speed_mps: float = 0.5
    moving_speed_mps: float = 0.2
    turn_rad: float = 0.5
    lane_offset_m: float = 2.5
    lane_heading_rad: float = 0.15

    def __post_init__(self):
        """Reject thresholds that make two labels overlap or a rule impossible."""
        if not self.decel_mps2 < 0 < self.accel_mps2:
            raise ValueError(f'need decel_mps2 < 0 < accel_mps2, got {self.decel_mps2}, '
                             f'{self.accel_mps2}')
        if not 0 < self.lane_heading_rad < self.turn_rad:
            raise ValueError(f'need 0 < lane_heading_rad < turn_rad, got '
                             f'{self.lane_heading_rad}, {self.turn_rad}')
        if min(self.window_s, self.stop_speed_mps, self.moving_speed_mps,
               self.lane_offset_m) <= 0:
            raise ValueError(f'window, speeds and lane offset must be positive: {self}')


@dataclass(frozen=True)
class MetaAction:
    """The labels of one trajectory: longitudinal in LONGITUDINAL, lateral in LATERAL."""

    longitudinal: str
    lateral: str


DEFAULT_RULES = MetaActionRules()


def _numpy(values) -> np.ndarray:
    """Return a float64 numpy copy of an array-like or a (possibly CUDA) torch tensor."""
    if hasattr(values, 'detach'):
        values = values.detach().cpu()
    return np.asarray(values, dtype=np.float64)


def _longitudinal(speeds: np.ndarray, v0: float, dt: float, rules: MetaActionRules) -> str:
    """Return the longitudinal label from step speeds (N,) [m/s] and the t0 speed v0."""
    if speeds[-1] < rules.stop_speed_mps:
        return 'stop'
    n = int(min(len(speeds), max(1, round(rules.window_s / dt))))
    # speeds[n - 1] is the speed at (n - 1/2) dt: the mean acceleration since t0.
    mean_accel = (speeds[n - 1] - v0) / ((n - 0.5) * dt)
    if mean_accel > rules.accel_mps2:
        return 'accelerate'
    if mean_accel < rules.decel_mps2:
        return 'decelerate'
    return 'keep_speed'


def _lateral(steps: np.ndarray, speeds: np.ndarray, y_end: float,
             rules: MetaActionRules) -> str:
    """Return the lateral label from steps (N, 2) [m], step speeds (N,) and the final y [m]."""
    moving = speeds >= rules.moving_speed_mps
    if not moving.any():
        return 'keep_lane'
    # Prepending the t0 heading 0 makes unwrap measure every heading from it.
    directions = np.arctan2(steps[moving, 1], steps[moving, 0])
    turn = float(np.unwrap(np.concatenate([[0.0], directions]))[-1])
    if abs(turn) > rules.turn_rad:
        return 'turn_left' if turn > 0 else 'turn_right'
    if abs(y_end) >= rules.lane_offset_m and abs(turn) <= rules.lane_heading_rad:
        return 'lane_change_left' if y_end > 0 else 'lane_change_right'
    return 'keep_lane'


def meta_action_from_path(xyz, v0: float, dt: float = 0.1,
                          rules: MetaActionRules = DEFAULT_RULES) -> MetaAction:
    """Return the meta-action of a path (see the module docstring for the rules).

    Args:
        xyz: (N, 3) or (N, 2) positions [m] at times (k + 1) dt, k < N, in the t0 ego frame
            (the t0 pose itself, the origin, is not included). Array or tensor.
        v0: speed at t0 [m/s].
        dt: step [s].
        rules: thresholds.

    Returns:
        MetaAction: longitudinal in LONGITUDINAL, lateral in LATERAL.

    Raises:
        ValueError: if xyz is not (N, 2 or 3) with N >= 1, or is not finite.

    """
    xyz = _numpy(xyz)
    if xyz.ndim != 2 or xyz.shape[0] < 1 or xyz.shape[1] not in (2, 3):
        raise ValueError(f'a path is (N, 3) or (N, 2), got {xyz.shape}')
    if not np.all(np.isfinite(xyz)):
        raise ValueError('the path has non-finite positions')
    xy = xyz[:, :2]
    steps = np.diff(np.concatenate([np.zeros((1, 2)), xy]), axis=0)
    speeds = np.hypot(steps[:, 0], steps[:, 1]) / dt
    return MetaAction(_longitudinal(speeds, float(v0), dt, rules),
                      _lateral(steps, speeds, float(xy[-1, 1]), rules))


def meta_actions_from_controls(accel, curvature, v0: float, dt: float = 0.1,
                               rules: MetaActionRules = DEFAULT_RULES) -> List[MetaAction]:
    """Return the meta-actions of G control sequences, each integrated with the unicycle.

    Args:
        accel: (G, N) accelerations [m/s²] (physical, not normalised). Array or tensor.
        curvature: (G, N) curvatures [1/m].
        v0: speed at t0 [m/s], shared by the G sequences (they plan from the same state).
        dt: step [s].
        rules: thresholds.

    Returns:
        list of G MetaAction.

    Raises:
        ValueError: if accel and curvature are not both (G, N).

    """
    accel, curvature = _numpy(accel), _numpy(curvature)
    if accel.ndim != 2 or accel.shape != curvature.shape:
        raise ValueError(f'controls are (G, N) each, got {accel.shape} and {curvature.shape}')
    xyz, _, _ = integrate_unicycle(np.stack([accel, curvature], axis=-1), float(v0), dt)
    return [meta_action_from_path(path, v0, dt, rules) for path in xyz]


def meta_action_from_controls(accel, curvature, v0: float, dt: float = 0.1,
                              rules: MetaActionRules = DEFAULT_RULES) -> MetaAction:
    """Return the meta-action of one control sequence: accel (N,) m/s², curvature (N,) 1/m."""
    return meta_actions_from_controls(_numpy(accel)[None], _numpy(curvature)[None], v0, dt,
                                      rules)[0]


_STOPPING = frozenset({'decelerate', 'stop'})
_ACCELERATING = frozenset({'accelerate'})
_KEEP_LANE = frozenset({'keep_lane'})


def _lateral_only(*labels: str) -> Tuple[Tuple[None, FrozenSet[str]]]:
    """Return the one alternative 'any longitudinal label, lateral one of `labels`'."""
    return ((None, frozenset(labels)),)


# decision -> alternatives (allowed longitudinal, allowed lateral); None allows any label.
_COMPATIBLE: Dict[str, tuple] = {
    'stop': ((frozenset({'stop'}), None),),
    'decelerate': ((_STOPPING, None),),
    'yield': ((_STOPPING, None),),
    'pull_over': ((_STOPPING, None),),
    'accelerate': ((_ACCELERATING, None),),
    'start': ((_ACCELERATING, None),),
    'overtake': ((_ACCELERATING, None),
                 (None, frozenset({'lane_change_left', 'lane_change_right'}))),
    'turn_left': _lateral_only('turn_left'),
    'turn_right': _lateral_only('turn_right'),
    'lane_change_left': _lateral_only('lane_change_left'),
    'lane_change_right': _lateral_only('lane_change_right'),
    'keep_lane': _lateral_only('keep_lane'),
    'follow_lead': _lateral_only('keep_lane'),
    'nudge_left': _lateral_only('keep_lane', 'turn_left', 'lane_change_left'),
    'nudge_right': _lateral_only('keep_lane', 'turn_right', 'lane_change_right'),
}


def compatible(decision: str, meta: MetaAction) -> Optional[bool]:
    """Return whether a CoC decision agrees with a trajectory's meta-action.

    The table (a decision constrains one axis; the other may be anything):

    ==========================  ==================================================
    decision                    meta-action it needs
    ==========================  ==================================================
    stop                        longitudinal stop (the speed ends below stop speed,
                                which includes any deceleration that ends stopped)
    decelerate, yield,          longitudinal decelerate or stop
    pull_over
    accelerate, start           longitudinal accelerate
    overtake                    longitudinal accelerate, or lateral lane change
                                to either side
    turn_left / turn_right      lateral turn_left / turn_right
    lane_change_left / _right   lateral lane_change_left / lane_change_right
    keep_lane, follow_lead      lateral keep_lane
    nudge_left                  lateral keep_lane, turn_left or lane_change_left
    nudge_right                 lateral keep_lane, turn_right or lane_change_right
    ==========================  ==================================================

    Args:
        decision: str, a decision of runtime.presentation.DECISIONS (parse_decision's output).
        meta: MetaAction of the trajectory.

    Returns:
        True or False; None when the decision is '' or not one of DECISIONS.

    """
    if decision not in DECISIONS or decision not in _COMPATIBLE:
        return None
    return any((lon is None or meta.longitudinal in lon) and (lat is None or meta.lateral in lat)
               for lon, lat in _COMPATIBLE[decision])
