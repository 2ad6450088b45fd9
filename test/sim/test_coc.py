"""Chain-of-Causation labels: every template parses as its decision; labels follow the plan."""
import numpy as np
import pytest

from ar1_ros.data.meta_actions import MetaAction
from ar1_ros.runtime.presentation import DECISIONS, parse_decision
from ar1_ros.sim.coc import TEMPLATES, Agent, Curve, Situation, fill, forecast_metas, make_label

VALUES = {'distance': 18.24, 'other_speed': 6.13, 'brake': 4.2, 'where': 'behind',
          'radius': 70.4, 'speed': 12.3, 'target': 22.0}


@pytest.mark.parametrize('side', ['left', 'right'])
@pytest.mark.parametrize('name', sorted(TEMPLATES))
def test_every_template_parses_as_its_decision(name, side):
    decision, text = fill(name, side=side, **VALUES)
    assert decision in DECISIONS
    assert parse_decision(text) == decision, text
    assert '{' not in text


def test_the_decisions_the_brief_asks_for_all_have_templates():
    decisions = {fill(name, side=side, **VALUES)[0] for name in TEMPLATES
                 for side in ('left', 'right')}
    assert {'keep_lane', 'follow_lead', 'decelerate', 'stop', 'start', 'accelerate',
            'lane_change_left', 'lane_change_right', 'yield', 'turn_left', 'turn_right',
            'overtake'} <= decisions


def metas(longitudinal, lateral):
    return (MetaAction(longitudinal, lateral),) * 3


def situation(kind, forecast, **kw):
    return Situation(kind, kw.pop('phase', 'drive'), kw.pop('speed', 12.0), 20.0, forecast, **kw)


def test_braking_lead_gives_decelerate_with_numbers():
    lead = Agent(3, 18.2, 6.1, -4.2)
    label = make_label(situation('lead_brake', metas('decelerate', 'keep_lane'), leader=lead))
    assert label.decision == 'decelerate'
    assert label.coc == 'Decelerate because the lead vehicle 18 m ahead is braking at 4.2 m/s².'
    assert 'lead vehicle: 18.2 m ahead, 6.1 m/s, braking at 4.2 m/s²' in \
        label.critical_components


def test_steady_following_gives_follow_lead_and_standing_gives_stop():
    lead = Agent(3, 20.0, 12.0, 0.0)
    label = make_label(situation('lead_brake', metas('keep_speed', 'keep_lane'), leader=lead))
    assert label.decision == 'follow_lead'
    assert '20 m ahead' in label.coc
    stopped = Agent(3, 6.0, 0.0, 0.0)
    label = make_label(situation('lead_brake', metas('stop', 'keep_lane'), leader=stopped,
                                 speed=0.0))
    assert label.decision == 'stop'
    moving = Agent(3, 7.0, 1.5, 1.8)
    label = make_label(situation('lead_brake', metas('accelerate', 'keep_lane'), leader=moving,
                                 speed=0.0))
    assert label.decision == 'start'


def test_merge_yields_then_changes_lanes():
    main = Agent(7, -30.0, 22.0)
    label = make_label(situation('merge_yield', metas('decelerate', 'keep_lane'), yield_to=main,
                                 phase='yield'))
    assert label.decision == 'yield'
    assert 'main road 30 m behind at 22 m/s' in label.coc
    label = make_label(situation('merge_yield', metas('accelerate', 'lane_change_left'),
                                 lane_change='left', phase='signal'))
    assert label.decision == 'lane_change_left'


def test_intersection_turn_after_yielding():
    crossing = Agent(5, 12.0, 10.0)
    waiting = situation('intersection_turn', metas('stop', 'keep_lane'), yield_to=crossing,
                        turn='left', junction_m=1.5, speed=0.0)
    assert make_label(waiting).decision == 'stop'
    going = situation('intersection_turn', metas('accelerate', 'turn_left'), turn='left')
    label = make_label(going)
    assert label.decision == 'turn_left'
    assert label.coc.startswith('Turn left at the intersection')


def test_curve_ahead_then_inside():
    ahead = situation('curve', metas('decelerate', 'turn_right'), curve=Curve('right', 60, 70))
    label = make_label(ahead)
    assert label.coc == 'Slow down for the right curve 60 m ahead with a 70 m radius.'
    inside = situation('curve', metas('keep_speed', 'turn_right'), curve=Curve('right', 0, 70))
    assert make_label(inside).decision == 'turn_right'


def test_overtake_uses_the_forecast_to_pick_a_compatible_phrase():
    slow = Agent(2, 25.0, 9.0)
    # Mid lane change the t0 frame sees a lane change to the other side: 'overtake' fits.
    mid = situation('overtake', metas('keep_speed', 'lane_change_right'), slow_vehicle=slow,
                    lane_change='left', changing=True, phase='change')
    assert make_label(mid).decision == 'overtake'
    # Nothing fits: the plan's own first phrasing, never a keep_lane while changing lanes.
    odd = situation('overtake', metas('keep_speed', 'keep_lane'), slow_vehicle=slow,
                    lane_change='left', changing=True, phase='change')
    assert make_label(odd).decision == 'lane_change_left'


def test_forecast_metas_classify_in_the_ego_frame():
    t = np.arange(1, 65) * 0.1
    straight = np.column_stack([100 + 10 * t * np.cos(1.0), 5 + 10 * t * np.sin(1.0)])
    assert forecast_metas(straight, (100.0, 5.0, 1.0), 10.0, 0.1)[0] == MetaAction(
        'keep_speed', 'keep_lane')
    phase = -np.pi / 2 + 10 * t / 30
    left = np.column_stack([30 * np.cos(phase), 30 + 30 * np.sin(phase)])
    assert forecast_metas(left, (0.0, 0.0, 0.0), 10.0, 0.1)[0].lateral == 'turn_left'
