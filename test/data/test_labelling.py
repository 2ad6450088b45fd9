"""Rule drafts of meta-actions, their wording, and `label_bag` on demo-world bags.

The rules are checked on closed-form trajectories with known answers (those of
test_meta_actions.py, whose meta-action thresholds are tested there) and on the demo world,
whose privileged labels serve as the reference: agreement is reported strictly (the same
decision) and leniently (data.label_agreement.LENIENT).
"""
import itertools

import numpy as np
import pytest

from ar1_ros.data.label_agreement import agreement, lenient_equal
from ar1_ros.data.label_drafts import Priors, priors_from, rule_decision, rule_draft
from ar1_ros.data.labelling import label_bag
from ar1_ros.data.labels import CocLabel
from ar1_ros.data.meta_actions import (
    LATERAL,
    LONGITUDINAL,
    MetaAction,
    compatible,
    meta_action_from_path,
)
from ar1_ros.runtime.presentation import parse_decision
from ar1_ros.runtime.rotations import rot_z
from ar1_ros.runtime.types import EgoHistory, Pose
from ar1_ros.sim.scenarios import SCENARIOS
from data.label_world import demo_world, label_settings
from data.test_meta_actions import arc, braking_to_stop, lane_change, straight

MS = 1_000_000


def priors(lon='keep_speed', lat='keep_lane', v=10.0, past=10.0, yaw_rate=0.0) -> Priors:
    return Priors(v, past, 1.5, yaw_rate, MetaAction(lon, lat))


@pytest.mark.parametrize(('name', 'xyz', 'v0', 'decision'), [
    ('cruise', straight(10.0), 10.0, 'keep_lane'),
    ('brake to stop', braking_to_stop(), 8.0, 'stop'),
    ('slow down', straight(10.0, -1.0), 10.0, 'decelerate'),
    ('speed up', straight(5.0, 1.0), 5.0, 'accelerate'),
    ('start', straight(0.0, 1.5), 0.0, 'start'),
    ('stand', straight(0.0), 0.0, 'stop'),
    ('left turn', arc(8.0, 0.05), 8.0, 'turn_left'),
    ('right turn', arc(8.0, -0.05), 8.0, 'turn_right'),
    ('curve', arc(10.0, 0.0046875), 10.0, 'keep_lane'),
    ('lane change left', lane_change(offset=3.5), 10.0, 'lane_change_left'),
    ('lane change right', lane_change(offset=-3.5), 10.0, 'lane_change_right'),
    ('nudge', lane_change(offset=1.0), 10.0, 'keep_lane'),
])
def test_rule_decisions_of_known_trajectories(name, xyz, v0, decision):
    meta = meta_action_from_path(xyz, v0)
    assert rule_decision(meta, v0) == decision
    draft = rule_draft(priors(meta.longitudinal, meta.lateral, v=v0))
    assert (draft.decision, parse_decision(draft.coc)) == (decision, decision)


@pytest.mark.parametrize(('lon', 'lat'), list(itertools.product(LONGITUDINAL, LATERAL)))
@pytest.mark.parametrize('speed', [0.0, 0.8, 12.0])
@pytest.mark.parametrize('yaw_rate', [-0.2, 0.0, 0.2])
def test_every_rule_draft_parses_back_and_is_consistent(lon, lat, speed, yaw_rate):
    draft = rule_draft(priors(lon, lat, v=speed, past=speed + 2.0, yaw_rate=yaw_rate))
    assert parse_decision(draft.coc) == draft.decision
    assert compatible(draft.decision, MetaAction(lon, lat)) is True
    assert parse_decision(draft.coc.split(':')[0]) == draft.decision  # the action first
    assert f'recorded meta-action (after t0): {lon}, {lat}' in draft.critical_components


@pytest.mark.parametrize(('meta', 'yaw_rate', 'decision'), [
    (('accelerate', 'lane_change_right'), -0.1, 'accelerate'),  # leaving a right bend
    (('decelerate', 'lane_change_left'), 0.1, 'decelerate'),  # leaving a left bend
    (('decelerate', 'lane_change_right'), 0.1, 'lane_change_right'),  # turning the other way
    (('accelerate', 'lane_change_right'), -0.01, 'lane_change_right'),  # heading steady
    (('keep_speed', 'lane_change_right'), -0.1, 'lane_change_right'),  # no speed row applies
])
def test_a_bend_exit_is_not_a_lane_change(meta, yaw_rate, decision):
    assert rule_decision(MetaAction(*meta), 12.0, yaw_rate) == decision
    assert compatible(decision, MetaAction(*meta)) is True


@pytest.mark.parametrize(('meta', 'yaw_rate', 'change', 'decision'), [
    (('accelerate', 'keep_lane'), 0.08, 0.0, 'overtake'),  # pulling out left, then straight on
    (('accelerate', 'lane_change_right'), 0.06, 0.0, 'overtake'),  # heading left of the road
    (('accelerate', 'keep_lane'), 0.08, -0.6, 'overtake'),  # pulling out from a slowing lane
    (('accelerate', 'keep_lane'), 0.04, 0.0, 'accelerate'),  # heading steady: no pull-out
    (('accelerate', 'keep_lane'), -0.08, 0.0, 'accelerate'),  # swinging right: no pass left
    (('accelerate', 'keep_lane'), 0.15, 0.0, 'accelerate'),  # a bend's swing, not a lane's
    (('accelerate', 'lane_change_right'), 0.07, 2.0, 'lane_change_right'),  # merging up to speed
    (('keep_speed', 'keep_lane'), 0.08, 0.0, 'keep_lane'),  # no speed-up
    (('accelerate', 'lane_change_left'), 0.08, 0.0, 'accelerate'),  # a left bend's exit
    (('accelerate', 'turn_left'), 0.08, 0.0, 'turn_left'),  # the car goes on turning left
    (('stop', 'keep_lane'), 0.08, 0.0, 'stop'),
])
def test_speeding_up_after_pulling_out_left_is_an_overtake(meta, yaw_rate, change, decision):
    assert rule_decision(MetaAction(*meta), 12.0, yaw_rate, change) == decision
    assert compatible(decision, MetaAction(*meta)) is True
    draft = rule_draft(priors(*meta, v=12.0, past=12.0 - change, yaw_rate=yaw_rate))
    assert (draft.decision, parse_decision(draft.coc)) == (decision, decision)


@pytest.mark.parametrize(('meta', 'speed', 'decision'), [
    (('stop', 'turn_left'), 5.0, 'stop'),  # ending stopped outranks the lateral manoeuvre
    (('decelerate', 'lane_change_right'), 9.0, 'lane_change_right'),
    (('accelerate', 'turn_left'), 3.0, 'turn_left'),
    (('accelerate', 'keep_lane'), 0.99, 'start'),
    (('accelerate', 'keep_lane'), 1.0, 'accelerate'),
])
def test_rule_priority(meta, speed, decision):
    assert rule_decision(MetaAction(*meta), speed) == decision


def test_draft_words_the_action_first_then_the_evidence_at_t0():
    draft = rule_draft(priors('decelerate', 'turn_right', v=14.0, past=16.0, yaw_rate=-0.12))
    assert draft.coc == ('Turn right while slowing: speed 14.0 m/s, down from 16.0 m/s 1.5 s '
                         'ago; heading swinging right at 0.12 rad/s.')
    assert rule_draft(priors('stop', v=0.2, past=0.2)).coc.startswith('Stay stopped: speed 0.2')
    assert rule_draft(priors(v=20.0, past=20.3)).coc == (
        'Keep the lane: speed 20.0 m/s, steady over the last 1.5 s; heading steady.')


def test_priors_from_an_ego_history():
    # 16 poses 0.1 s apart ending at t0: decelerating from 12 to 9 m/s while yawing left.
    t = np.arange(-15, 1) * 0.1
    speed = 9.0 - 2.0 * t
    x = 9.0 * t - t ** 2
    yaw = 0.2 * t
    rot = np.stack([rot_z(a) for a in yaw])
    xyz = np.stack([x, np.zeros(16), np.zeros(16)], axis=-1)
    history = EgoHistory(xyz, rot, (t * 1e9).astype(np.int64) + 10 ** 12, 9.0,
                         Pose(np.zeros(3), np.eye(3)), 'odom')
    got = priors_from(history, MetaAction('decelerate', 'keep_lane'))
    assert got.speed_mps == 9.0
    assert got.span_s == pytest.approx(1.5)
    assert got.past_speed_mps == pytest.approx((speed[0] + speed[1]) / 2)
    assert got.yaw_rate_radps == pytest.approx(0.2)


def _label(bag, t_ms, decision):
    return CocLabel(bag=bag, t0_ns=10 ** 12 + t_ms * MS, decision=decision, coc='c')


def test_agreement_pairs_nearest_labels_within_the_tolerance():
    reference = [_label('a', t, d) for t, d in [(0, 'follow_lead'), (500, 'decelerate'),
                                                (1000, 'overtake'), (1500, 'turn_left')]]
    ours = [_label('a', 40, 'keep_lane'), _label('a', 980, 'accelerate'),
            _label('a', 1490, 'turn_right'), _label('a', 3000, 'stop'), _label('b', 0, 'stop')]
    result = agreement(ours, reference, 250 * MS)
    assert result.pairs == [('follow_lead', 'keep_lane'), ('overtake', 'accelerate'),
                            ('turn_left', 'turn_right')]
    assert result.unpaired == 2
    assert (result.strict, result.lenient) == (0.0, pytest.approx(2 / 3))
    assert lenient_equal('yield', 'stop')
    assert not lenient_equal('keep_lane', 'follow_lead')


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    return demo_world(tmp_path_factory, SCENARIOS, [0])


def test_rule_labels_agree_with_the_demo_world(world, capsys):
    from ar1_ros.sim.generate import read_labels_of
    settings = label_settings()
    results = [label_bag(world / f'{scenario}_000', settings) for scenario in SCENARIOS]
    ours = [label for result in results for label in result.labels]
    assert all(not r.error and r.keyframes >= len(r.labels) for r in results)
    assert all(lb.provenance == 'rule' and lb.consistent is True for lb in ours)
    reference = read_labels_of(world)
    result = agreement(ours, reference, 250 * MS)
    with capsys.disabled():
        print(f'\ndemo world seed 0: {len(result.pairs)} decisions, strict '
              f'{result.strict:.2f}, lenient {result.lenient:.2f}')
    assert len(result.pairs) >= 10
    assert result.unpaired == 0
    assert result.lenient >= 0.8
    assert result.strict >= 0.8


def test_uniform_keyframes_and_the_builder_t0(world):
    plain = label_bag(world / 'lead_brake_000', label_settings())
    dense = label_bag(world / 'lead_brake_000', label_settings(uniform_s=2.0))
    assert len(dense.labels) > len(plain.labels) >= 1
    assert {lb.t0_ns for lb in plain.labels} <= {lb.t0_ns for lb in dense.labels}
    # t0 is a camera frame stamp (the demo world's cameras run at 10 Hz from epoch_s).
    assert all(lb.t0_ns % (100 * MS) == 0 for lb in dense.labels)
    assert all(lb.notes.endswith('keyframe; rule draft') for lb in dense.labels)
