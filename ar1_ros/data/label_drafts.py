"""Rule-based Chain-of-Causation drafts: a decision from the recorded meta-action, worded.

The decision of a keyframe is read off the meta-action of the recorded 6.4 s future
(data.meta_actions), one axis at a time, the first row that applies:

=====================================  =============================================
meta-action (longitudinal, lateral)    decision
=====================================  =============================================
(stop, any)                            'stop' (the car ends standing: it outranks
                                       anything it does on the way)
(accelerate, keep_lane /               'overtake' when the car pulls out to the left at t0
lane_change_right)                     (history yaw rate from STEADY_YAW_RADPS up to
                                       LANE_CHANGE_YAW_RADPS) from a steady or falling speed,
                                       then speeds up and straightens (or comes back right):
                                       the pass of an overtake in right-hand traffic
(any, lane_change_left / _right)       'lane_change_left' / 'lane_change_right', except
                                       a bend's exit: the car already turns (history yaw
                                       rate >= STEADY_YAW_RADPS) to the side of the 'lane
                                       change' and changes speed: the speed rows decide
(any, turn_left / turn_right)          'turn_left' / 'turn_right'
(decelerate, keep_lane)                'decelerate'
(accelerate, keep_lane)                'start' when the speed at t0 is below
                                       START_SPEED_MPS, else 'accelerate'
(keep_speed, keep_lane)                'keep_lane'
=====================================  =============================================

Every row's decision needs an axis value the meta-action has, so a rule draft is always
`compatible` with it. The text names the action first (what runtime.presentation.parse_decision
reads back), mentions a concurrent change of the other axis second, and then gives only
evidence available at t0: the speed at t0, the speed at the start of the 1.5 s ego history and
the heading change over that history. The decision itself is the recorded future (that is
what an auto-label is); no other fact after t0 enters the text. `critical_components` lists
the same priors and, marked as such, the recorded meta-action.
"""
import dataclasses
from typing import List, Tuple

import numpy as np

from ar1_ros.data.meta_actions import DEFAULT_RULES, MetaAction
from ar1_ros.runtime.rotations import yaw_of
from ar1_ros.runtime.types import NS_PER_S, EgoHistory

START_SPEED_MPS = 1.0  # below this at t0, an accelerating car starts rather than accelerates
STEADY_SPEED_MPS = 0.5  # a speed change over the history smaller than this reads as steady
STEADY_YAW_RADPS = 0.05  # a mean yaw rate over the history smaller than this reads as steady
# A lane change swings the heading by a few degrees: a faster swing over the history is a bend.
LANE_CHANGE_YAW_RADPS = 0.12

# decision -> the opening phrase, which parse_decision reads back as that decision
OPENINGS = {
    'stop': 'Stop',
    'lane_change_left': 'Change lanes to the left',
    'lane_change_right': 'Change lanes to the right',
    'turn_left': 'Turn left',
    'turn_right': 'Turn right',
    'decelerate': 'Decelerate',
    'accelerate': 'Accelerate',
    'start': 'Start moving',
    'overtake': 'Overtake',
    'keep_lane': 'Keep the lane',
}
# The other axis, when it changes too: a lateral decision is only ever accompanied by a speed
# change, and a lateral manoeuvre only ever accompanies 'stop' (the table's order).
_ALSO = {'decelerate': ' while slowing', 'accelerate': ' while speeding up',
         'turn_left': ', turning left on the way', 'turn_right': ', turning right on the way',
         'lane_change_left': ', moving over to the left on the way',
         'lane_change_right': ', moving over to the right on the way'}


class DraftRejectedError(ValueError):
    """A teacher answer that cannot be used: `reason` is a stable key, str() adds the detail."""

    def __init__(self, reason: str, detail: str = ''):
        super().__init__(f'{reason}: {detail}' if detail else reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Priors:
    """What a draft may rely on at one keyframe.

    speed_mps: forward speed at t0 (odometry twist) [m/s]; past_speed_mps: mean speed over the
    first step of the ego history [m/s], span_s before t0; yaw_rate_radps: mean yaw rate over
    the history (> 0 left) [rad/s]; meta: the recorded future's meta-action (after t0).
    """

    speed_mps: float
    past_speed_mps: float
    span_s: float
    yaw_rate_radps: float
    meta: MetaAction


@dataclasses.dataclass(frozen=True)
class Draft:
    """A drafted label: decision (one of DECISIONS), CoC text, critical components."""

    decision: str
    coc: str
    critical_components: Tuple[str, ...]


def priors_from(history: EgoHistory, meta: MetaAction) -> Priors:
    """Return the priors of an Observation's ego history (16 poses ending at t0) and meta."""
    xyz = np.asarray(history.xyz, dtype=np.float64)
    stamps = np.asarray(history.stamps_ns, dtype=np.int64)
    span_s = float(stamps[-1] - stamps[0]) / NS_PER_S
    dt_s = float(stamps[1] - stamps[0]) / NS_PER_S
    past_speed = float(np.linalg.norm(xyz[1, :2] - xyz[0, :2]) / dt_s)
    # rot[-1] is the identity (the t0 frame): the first pose's yaw is minus the turn since.
    turned = -float(yaw_of(np.asarray(history.rot[0], dtype=np.float64)))
    return Priors(float(history.speed), past_speed, span_s, turned / span_s, meta)


def rule_decision(meta: MetaAction, speed_mps: float, yaw_rate_radps: float = 0.0,
                  speed_change_mps: float = 0.0) -> str:
    """Return the decision of a meta-action, the speed [m/s] and yaw rate [rad/s] at t0.

    speed_change_mps: the speed at t0 minus the speed at the start of the history [m/s].
    """
    if meta.longitudinal == 'stop':
        return 'stop'
    if _passes_on_the_left(meta, yaw_rate_radps, speed_change_mps):
        return 'overtake'
    # A bend's exit is named by its speed change; with none, the lateral row keeps the label
    # consistent with the meta-action.
    curve_exit = (meta.longitudinal != 'keep_speed'
                  and _continues_curve(meta.lateral, yaw_rate_radps))
    if meta.lateral != 'keep_lane' and not curve_exit:
        return meta.lateral
    if meta.longitudinal == 'decelerate':
        return 'decelerate'
    if meta.longitudinal == 'accelerate':
        return 'start' if speed_mps < START_SPEED_MPS else 'accelerate'
    return 'keep_lane'


def _passes_on_the_left(meta: MetaAction, yaw_rate_radps: float,
                        speed_change_mps: float) -> bool:
    """Whether the car speeds up after pulling out to the left: an overtake's pass.

    At t0 it is moving into the left lane, swinging left at a lane change's rate (a faster
    swing is a bend); the future does not go on to the left (a left bend or turn), it
    straightens: keep_lane, or lane_change_right when the t0 heading pointed left of the road.
    The speed-up starts with the pull-out: a car already speeding up over the history is
    merging into traffic (an on-ramp), not passing. Right-hand traffic: passes are on the left.
    """
    return (meta.longitudinal == 'accelerate'
            and STEADY_YAW_RADPS <= yaw_rate_radps < LANE_CHANGE_YAW_RADPS
            and speed_change_mps < STEADY_SPEED_MPS
            and meta.lateral in ('keep_lane', 'lane_change_right'))


def _continues_curve(lateral: str, yaw_rate_radps: float) -> bool:
    """Whether a 'lane change' is the car finishing the bend it is already driving.

    The meta-action measures the sideways offset in the t0 frame, so the exit of a bend the
    car is turning through at t0 ends offset to the inside with the heading straight again:
    a lane change to the side it already turns to. A lane change starts from a steady heading.
    """
    side = {'lane_change_left': 1.0, 'lane_change_right': -1.0}.get(lateral, 0.0)
    return side * yaw_rate_radps >= STEADY_YAW_RADPS


def evidence(priors: Priors) -> str:
    """Return the sentence of t0 evidence: speed, its trend and the heading over the history."""
    v, past, span = priors.speed_mps, priors.past_speed_mps, priors.span_s
    change = v - past
    if abs(change) < STEADY_SPEED_MPS:
        trend = f'steady over the last {span:.1f} s'
    else:
        trend = f'{"up" if change > 0 else "down"} from {past:.1f} m/s {span:.1f} s ago'
    rate = priors.yaw_rate_radps
    heading = ('heading steady' if abs(rate) < STEADY_YAW_RADPS else
               f'heading swinging {"left" if rate > 0 else "right"} at {abs(rate):.2f} rad/s')
    return f'speed {v:.1f} m/s, {trend}; {heading}.'


def _secondary(decision: str, meta: MetaAction) -> str:
    """Return the wording of the axis the decision does not name, '' when it is unchanged."""
    if decision == 'stop':
        return _ALSO.get(meta.lateral, '')
    if decision in ('lane_change_left', 'lane_change_right', 'turn_left', 'turn_right'):
        return _ALSO.get(meta.longitudinal, '')
    return ''


def components(priors: Priors) -> Tuple[str, ...]:
    """Return the critical components of a draft: the t0 priors and the recorded meta-action."""
    meta = priors.meta
    return (f'ego speed at t0: {priors.speed_mps:.1f} m/s',
            f'ego speed {priors.span_s:.1f} s before t0: {priors.past_speed_mps:.1f} m/s',
            f'ego yaw rate over the history: {round(priors.yaw_rate_radps, 2) + 0.0:+.2f} rad/s',
            f'recorded meta-action (after t0): {meta.longitudinal}, {meta.lateral}')


def rule_draft(priors: Priors) -> Draft:
    """Return the rule draft of a keyframe: the module table's decision, worded."""
    decision = rule_decision(priors.meta, priors.speed_mps, priors.yaw_rate_radps,
                             priors.speed_mps - priors.past_speed_mps)
    opening = OPENINGS[decision]
    if decision == 'stop' and priors.speed_mps < DEFAULT_RULES.stop_speed_mps:
        opening = 'Stay stopped'  # already standing: parse_decision reads 'stop' as well
    head = opening + _secondary(decision, priors.meta)
    return Draft(decision, f'{head}: {evidence(priors)}', components(priors))


def prior_lines(priors: Priors) -> List[str]:
    """Return the priors as prompt lines for a teacher (the meta-action marked as recorded)."""
    meta = priors.meta
    return [f'- {evidence(priors)}',
            f'- recorded motion over the next 6.4 s: longitudinal {meta.longitudinal}, '
            f'lateral {meta.lateral}']
