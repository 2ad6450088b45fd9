"""The privileged Chain-of-Causation: the expert's situation worded as a decision and its cause.

A label names the action first and the cause after, with numbers, in one of a fixed family of
TEMPLATES; runtime.presentation.parse_decision reads each template back as its decision. The
expert (sim.expert) fills a Situation: its manoeuvre phase, the vehicles its decision hinges on
and the meta-action of its own plan over the next 6.4 s (data.meta_actions, forecast with the
other vehicles extrapolated). `make_label` lists the phrasings that fit the situation, most
specific first, and keeps the first one whose decision agrees with that forecast (under the
default rules and under slightly shifted thresholds, so that a decision close to a threshold
is avoided); the recorded future is then classified the same way by the auto-labeller.
"""
import dataclasses
from typing import Dict, List, Optional, Tuple

import numpy as np

from ar1_ros.data import meta_actions
from ar1_ros.data.meta_actions import MetaAction, MetaActionRules, compatible
from ar1_ros.sim.scene import PrivilegedLabel

# The forecast is classified under these rules as well as the defaults: a decision must hold
# under all of them to count as robust.
FORECAST_RULES = (MetaActionRules(),
                  MetaActionRules(accel_mps2=0.8, decel_mps2=-0.8, stop_speed_mps=0.3,
                                  turn_rad=0.6, lane_offset_m=3.0, lane_heading_rad=0.1),
                  MetaActionRules(accel_mps2=0.3, decel_mps2=-0.3, stop_speed_mps=0.8,
                                  turn_rad=0.4, lane_offset_m=2.0, lane_heading_rad=0.2))

# name -> (decision, text); '{side}' is 'left' or 'right', distances in m, speeds in m/s.
TEMPLATES: Dict[str, Tuple[str, str]] = {
    'keep': ('keep_lane', 'Keep the lane at {speed:.0f} m/s; the road ahead is clear.'),
    'keep_curve': ('keep_lane', 'Keep the lane through the {side} curve with a {radius:.0f} m '
                                'radius at {speed:.0f} m/s.'),
    'keep_before_curve': ('keep_lane', 'Keep the lane at {speed:.0f} m/s; the {side} curve is '
                                       'still {distance:.0f} m ahead.'),
    'keep_passing': ('keep_lane', 'Stay in the current lane while passing the slow vehicle '
                                  'doing {other_speed:.0f} m/s.'),
    'keep_junction': ('keep_lane', 'Stay in lane towards the intersection {distance:.0f} m ahead '
                                   'to turn {side} there.'),
    'keep_junction_wait': ('keep_lane', 'Stay in lane up to the stop line {distance:.0f} m ahead '
                                        'while the crossing vehicle passes.'),
    'keep_ramp': ('keep_lane', 'Stay in lane on the on-ramp while the main-road vehicle '
                               '{distance:.0f} m {where} goes by.'),
    'follow': ('follow_lead', 'Follow the lead vehicle {distance:.0f} m ahead at '
                              '{other_speed:.1f} m/s, keeping a safe distance.'),
    'brake_lead': ('decelerate', 'Decelerate because the lead vehicle {distance:.0f} m ahead '
                                 'is braking at {brake:.1f} m/s².'),
    'slow_lead': ('decelerate', 'Slow down for the slower lead vehicle {distance:.0f} m ahead '
                                'doing {other_speed:.0f} m/s.'),
    'slow_curve': ('decelerate', 'Slow down for the {side} curve {distance:.0f} m ahead with a '
                                 '{radius:.0f} m radius.'),
    'slow_junction': ('decelerate', 'Slow down for the intersection {distance:.0f} m ahead '
                                    'before turning {side}.'),
    'stop_lead': ('stop', 'Stop behind the stopped lead vehicle {distance:.0f} m ahead.'),
    'stop_junction': ('stop', 'Wait at the intersection for the crossing vehicle '
                              '{distance:.0f} m away at {other_speed:.0f} m/s.'),
    'stop_ramp': ('stop', 'Wait at the end of the on-ramp for the main-road vehicle '
                          '{distance:.0f} m {where} at {other_speed:.0f} m/s.'),
    'start_lead': ('start', 'Start moving as the lead vehicle pulls away {distance:.0f} m '
                            'ahead.'),
    'start_clear': ('start', 'Start moving now that the way ahead is clear.'),
    'accel': ('accelerate', 'Accelerate to {target:.0f} m/s as the lane ahead is clear.'),
    'accel_lead': ('accelerate', 'Accelerate behind the lead vehicle {distance:.0f} m ahead, '
                                 'now doing {other_speed:.0f} m/s.'),
    'accel_curve': ('accelerate', 'Accelerate out of the {side} curve back to {target:.0f} m/s.'),
    'accel_merge': ('accelerate', 'Accelerate to {target:.0f} m/s to match the traffic on the '
                                  'main road.'),
    'accel_pass': ('accelerate', 'Accelerate to {target:.0f} m/s to pass the slow vehicle doing '
                                 '{other_speed:.0f} m/s.'),
    'lc_overtake': ('lane_change_{side}', 'Change lanes to the {side} to overtake the slow '
                                          'vehicle {distance:.0f} m ahead doing '
                                          '{other_speed:.0f} m/s.'),
    'lc_return': ('lane_change_{side}', 'Change lanes to the {side} to return to the travel lane '
                                        'after passing the slow vehicle.'),
    'lc_merge': ('lane_change_{side}', 'Change lanes to the {side} to merge into the main road '
                                       'now that the gap is clear.'),
    'overtake': ('overtake', 'Overtake the slow vehicle {distance:.0f} m ahead doing '
                             '{other_speed:.0f} m/s using the left lane.'),
    'overtake_end': ('overtake', 'Complete the overtake of the slow vehicle doing '
                                 '{other_speed:.0f} m/s by moving back to the right.'),
    'yield_merge': ('yield', 'Yield to the vehicle on the main road {distance:.0f} m {where} at '
                             '{other_speed:.0f} m/s before merging.'),
    'yield_junction': ('yield', 'Yield to the crossing vehicle {distance:.0f} m from the '
                                'intersection at {other_speed:.0f} m/s before turning {side}.'),
    'turn_junction': ('turn_{side}', 'Turn {side} at the intersection after the crossing vehicle '
                                     'clears.'),
    'turn_clear': ('turn_{side}', 'Turn {side} at the intersection; the crossing road is clear.'),
    'turn_curve': ('turn_{side}', 'Turn {side} with the road through the {radius:.0f} m radius '
                                  'curve at {speed:.0f} m/s.'),
}


@dataclasses.dataclass(frozen=True)
class Agent:
    """A vehicle a decision hinges on.

    distance_m: gap ahead (> 0) or behind (< 0) along the ego's lane, or its distance to the
    conflict zone of a crossing road [m]; speed_mps along its lane [m/s]; accel_mps2 [m/s²].
    """

    vehicle_id: int
    distance_m: float
    speed_mps: float
    accel_mps2: float = 0.0


@dataclasses.dataclass(frozen=True)
class Curve:
    """A bend of the ego's lane.

    side: 'left'/'right'; distance_m: to its start (0 inside it, < 0 past its end) [m];
    radius_m: its tightest radius [m].
    """

    side: str
    distance_m: float
    radius_m: float


@dataclasses.dataclass(frozen=True)
class Situation:
    """The expert's state at one time, as the label needs it.

    kind: the scenario; phase: the manoeuvre phase of sim.expert; speed_mps / target_mps: ego
    speed now and the speed it wants [m/s]; forecasts: the meta-action of its own 6.4 s plan
    under each of FORECAST_RULES; leader: the vehicle ahead in its lane; yield_to: the vehicle
    it gives way to; slow_vehicle: the vehicle it overtakes; curve: the bend around it; turn:
    'left'/'right' at an intersection, junction_m: distance to its stop line [m]; lane_change:
    the side of a lane change signalled, running or in the forecast; changing: it is running
    and not yet nearly done.
    """

    kind: str
    phase: str
    speed_mps: float
    target_mps: float
    forecasts: Tuple[MetaAction, ...]
    leader: Optional[Agent] = None
    yield_to: Optional[Agent] = None
    slow_vehicle: Optional[Agent] = None
    curve: Optional[Curve] = None
    turn: str = ''
    junction_m: float = 0.0
    lane_change: str = ''
    changing: bool = False


def forecast_metas(points, pose, v0: float, dt: float) -> Tuple[MetaAction, ...]:
    """Return the meta-action of a planned path under each FORECAST_RULES.

    points: (N, 2) world positions at times (k + 1) dt [s]; pose: (x, y, yaw) at t0; v0 [m/s].
    """
    c, s = np.cos(pose[2]), np.sin(pose[2])
    rel = np.asarray(points, dtype=np.float64) - pose[:2]
    local = np.stack([rel[:, 0] * c + rel[:, 1] * s, rel[:, 1] * c - rel[:, 0] * s], axis=1)
    return tuple(meta_actions.meta_action_from_path(local, v0, dt, rules)
                 for rules in FORECAST_RULES)


def fill(name: str, **values) -> Tuple[str, str]:
    """Return (decision, text) of TEMPLATES[name] filled with `values` (side, distance, ...)."""
    decision, text = TEMPLATES[name]
    return decision.format(**values), text.format(**values)


def _lane_change(sit: Situation, out: List[tuple]) -> None:
    side, slow = sit.lane_change, sit.slow_vehicle or sit.leader  # the lead, before it is chosen
    if sit.kind == 'merge_yield':
        out.append(('lc_merge', {}))
    elif side == 'left':
        out.append(('lc_overtake', _agent(slow)))
    else:
        out.append(('lc_return', {}))
    if sit.kind == 'overtake':
        out.append(('overtake' if side == 'left' else 'overtake_end', _agent(slow)))
        out.append(('accel_pass', _agent(slow)))
    else:
        out.append(('accel_merge', {}))


def _agent(agent: Optional[Agent]) -> Dict[str, float]:
    if agent is None:
        return {'distance': 0.0, 'other_speed': 0.0, 'brake': 0.0, 'where': 'ahead'}
    where = 'behind' if agent.distance_m < -2.5 else 'ahead' if agent.distance_m > 2.5 else 'away'
    return {'distance': abs(agent.distance_m), 'other_speed': agent.speed_mps,
            'brake': max(0.0, -agent.accel_mps2), 'where': where}


def _yielding(sit: Situation, out: List[tuple]) -> None:
    values = _agent(sit.yield_to)
    if sit.kind == 'merge_yield':
        names = ('yield_merge', 'stop_ramp')
    else:
        names = ('yield_junction', 'stop_junction')
    out.extend((name, values) for name in (names[::-1] if sit.speed_mps < 0.5 else names))


def _lead(sit: Situation, out: List[tuple]) -> None:
    lead, v = sit.leader, sit.speed_mps
    values = _agent(lead)
    if lead.accel_mps2 < -1.0:
        out.append(('brake_lead', values))
    if v < 1.0 and lead.speed_mps < 0.5:
        out.append(('stop_lead', values))
    if v < 1.0 and lead.speed_mps >= 0.5:
        out.append(('start_lead', values))
    if lead.accel_mps2 > 0.3 or lead.speed_mps > v + 1.0:
        out.append(('accel_lead', values))
    if lead.speed_mps < v:
        out.append(('slow_lead', values))


def _keeping(sit: Situation, out: List[tuple]) -> None:
    """Append the steady phrasings (lateral keep_lane); none while changing lanes."""
    curve, lead = sit.curve, sit.leader
    if sit.changing:
        return
    if sit.turn and sit.junction_m > 1.0:
        out.append(('keep_junction_wait' if sit.yield_to else 'keep_junction',
                    {'distance': sit.junction_m}))
    if sit.kind == 'merge_yield' and sit.yield_to is not None:
        out.append(('keep_ramp', _agent(sit.yield_to)))
    if sit.phase == 'pass' and sit.slow_vehicle is not None and sit.slow_vehicle.distance_m > -20:
        out.append(('keep_passing', _agent(sit.slow_vehicle)))
    if lead is not None and lead.distance_m < max(40.0, 2.5 * sit.speed_mps):
        out.append(('follow', _agent(lead)))
    if curve is not None and curve.distance_m >= 0:
        out.append(('keep_curve' if curve.distance_m == 0 else 'keep_before_curve',
                    {'distance': curve.distance_m}))
    out.append(('keep', {}))


def _candidates(sit: Situation) -> List[tuple]:
    """Return the (template name, values) that fit the situation, most specific first."""
    out: List[tuple] = []
    curve, turn = sit.curve, sit.turn
    if sit.lane_change:
        _lane_change(sit, out)
    if sit.yield_to is not None:
        _yielding(sit, out)
    if turn:
        if sit.junction_m > 1.0:
            out.append(('slow_junction', {'distance': sit.junction_m}))
        out.append(('turn_junction' if sit.yield_to else 'turn_clear', {}))
    if curve is not None and curve.distance_m > 0:
        out.append(('slow_curve', {'distance': curve.distance_m}))
    if curve is not None and curve.distance_m >= 0:
        out.append(('turn_curve', {}))
    if curve is not None and curve.distance_m <= 0:
        out.append(('accel_curve', {}))
    if sit.leader is not None:
        _lead(sit, out)
    out.append(('start_clear' if sit.speed_mps < 1.0 else 'accel', {}))
    _keeping(sit, out)
    return out


def _components(sit: Situation) -> Tuple[str, ...]:
    parts = [f'ego: {sit.speed_mps:.1f} m/s, wants {sit.target_mps:.1f} m/s, phase {sit.phase}']
    crossing = sit.kind == 'intersection_turn'
    for name, agent in (('lead vehicle', sit.leader), ('slow vehicle', sit.slow_vehicle), (
            'crossing vehicle' if crossing else 'main-road vehicle', sit.yield_to)):
        if agent is not None:
            motion = (f'braking at {-agent.accel_mps2:.1f} m/s²' if agent.accel_mps2 < -0.5 else
                      f'accelerating at {agent.accel_mps2:.1f} m/s²' if agent.accel_mps2 > 0.5
                      else 'steady')
            where = ('from the crossing point' if crossing and agent is sit.yield_to else
                     'ahead' if agent.distance_m >= 0 else 'behind')
            parts.append(f'{name}: {abs(agent.distance_m):.1f} m {where}, '
                         f'{agent.speed_mps:.1f} m/s, {motion}')
    if sit.curve is not None:
        d = sit.curve.distance_m
        where = f'{d:.0f} m ahead' if d > 0 else 'inside it' if d == 0 else f'{-d:.0f} m past it'
        parts.append(f'{sit.curve.side} curve: {where}, radius {sit.curve.radius_m:.0f} m')
    if sit.turn:
        parts.append(f'intersection: turn {sit.turn}, stop line {sit.junction_m:.1f} m ahead')
    if sit.lane_change:
        state = ('under way' if sit.phase == 'change' else 'signalled' if sit.phase == 'signal'
                 else 'planned')
        parts.append(f'lane change to the {sit.lane_change}: {state}')
    return tuple(parts)


def make_label(sit: Situation) -> PrivilegedLabel:
    """Return the label of a situation: the first fitting phrasing its forecast agrees with."""
    side = sit.lane_change or sit.turn or (sit.curve.side if sit.curve else 'left')
    radius = sit.curve.radius_m if sit.curve else 0.0
    options = []
    for name, values in _candidates(sit):
        merged = {'side': side, 'radius': radius, 'speed': sit.speed_mps,
                  'target': sit.target_mps, **_agent(None), **values}
        options.append(fill(name, **merged))
    for rules in (sit.forecasts, sit.forecasts[:1]):
        for decision, text in options:
            if all(compatible(decision, meta) for meta in rules):
                return PrivilegedLabel(decision, text, _components(sit))
    return PrivilegedLabel(options[0][0], options[0][1], _components(sit))
