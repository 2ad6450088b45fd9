import math

import numpy as np
import pytest

from ar1_ros.runtime.kinematics import integrate_unicycle
from ar1_ros.runtime.presentation import (
    DECISIONS,
    parse_decision,
    point_states,
    to_parent_frame,
    wrap_text,
)
from ar1_ros.runtime.rotations import rpy_to_matrix
from ar1_ros.runtime.types import Pose


@pytest.mark.parametrize(('text', 'decision'), [
    ('Nudge to the left to increase clearance from the construction cones', 'nudge_left'),
    ('Nudge slightly right to avoid the parked truck', 'nudge_right'),
    ('Decelerate to keep a safe distance to the lead vehicle', 'decelerate'),
    ('Keep a safe distance to the lead vehicle', 'follow_lead'),
    ('Follow the lead vehicle through the intersection', 'follow_lead'),
    ('Stop for the red light', 'stop'),
    ('Come to a stop behind the stopped bus', 'stop'),
    ('Remain stopped because the light is red', 'stop'),
    ('Change lanes to the right to overtake the slow truck', 'lane_change_right'),
    ('Merge into the left lane because the right lane ends', 'lane_change_left'),
    ('Overtake the cyclist when the oncoming lane is clear', 'overtake'),
    ('Turn left at the intersection following the route', 'turn_left'),
    ('Make a right at the next junction', 'turn_right'),
    ('Yield to the pedestrian in the crosswalk', 'yield'),
    ('Give way to the oncoming traffic', 'yield'),
    ('Accelerate because the light turned green', 'accelerate'),
    ('Speed up to match the flow of traffic', 'accelerate'),
    ('Slow down for the speed bump', 'decelerate'),
    ('Start moving since the vehicle ahead has left', 'start'),
    ('Resume driving after the pedestrian crossed', 'start'),
    ('Pull over to the shoulder for the ambulance', 'pull_over'),
    ('Keep lane since the road ahead is clear', 'keep_lane'),
    ('Stay in the current lane and maintain speed', 'keep_lane'),
    ('Continue straight through the green light', 'keep_lane'),
    ('DECELERATE TO STOP AT THE STOP LINE', 'decelerate'),
])
def test_parse_decision(text, decision):
    assert decision in DECISIONS
    assert parse_decision(text) == decision


@pytest.mark.parametrize('text', [
    '', 'The scene is a sunny residential street', 'Proceed past the stop sign',
    'A stopped car is ahead', 'Unstoppable', None])
def test_parse_decision_none(text):
    assert parse_decision(text) == ''


def test_earliest_match_wins_regardless_of_rule_order():
    # 'stop' is listed before 'decelerate' but appears later in the text.
    assert parse_decision('Slow down and then stop at the crosswalk') == 'decelerate'
    assert parse_decision('Stop, then slow down') == 'stop'
    # At the same position the more specific rule (lane change) wins over a turn.
    assert parse_decision('Merging into the right lane to turn right soon') == \
        'lane_change_right'


def test_decisions_are_unique_identifiers():
    assert len(set(DECISIONS)) == len(DECISIONS)
    assert all(d.isidentifier() for d in DECISIONS)
    for required in ('keep_lane', 'follow_lead', 'stop', 'start', 'yield', 'accelerate',
                     'decelerate', 'lane_change_left', 'lane_change_right', 'turn_left',
                     'turn_right', 'nudge_left', 'nudge_right', 'overtake', 'pull_over'):
        assert required in DECISIONS


def test_wrap_text_fits_and_keeps_words():
    text = 'Nudge to the left to increase clearance from the construction cones ' * 2
    lines = wrap_text(text, width=20, max_lines=20)
    assert all(len(line) <= 20 for line in lines)
    assert ' '.join(lines) == ' '.join(text.split())


def test_wrap_text_cuts_with_ellipsis():
    lines = wrap_text('word ' * 100, width=30, max_lines=3)
    assert len(lines) == 3
    assert lines[-1].endswith('...')
    assert all(len(line) <= 30 for line in lines)


def test_wrap_text_collapses_whitespace_and_handles_empty():
    assert wrap_text('Stop\n\nfor   the\tlight', width=56) == ['Stop for the light']
    assert wrap_text('') == []
    assert wrap_text('   ') == []
    with pytest.raises(ValueError, match='width'):
        wrap_text('x', width=0)
    with pytest.raises(ValueError, match='max_lines'):
        wrap_text('x', max_lines=0)


def _plan(v0=8.0, dt=0.1):
    k = np.arange(64)
    actions = np.stack([0.5 * np.sin(k / 10), 0.01 * np.cos(k / 15)], axis=-1)
    xyz, rot, _ = integrate_unicycle(actions[None], v0, dt)
    return xyz[0], rot[0], actions


def test_point_states_match_the_integrated_plan():
    xyz, rot, actions = _plan()
    states = point_states(xyz, rot, actions, 8.0, 0.1)
    assert set(states) == {'yaw', 'velocity', 'acceleration', 'curvature', 'time_from_start'}
    assert all(v.shape == (64,) for v in states.values())
    np.testing.assert_allclose(states['time_from_start'], 0.1 * np.arange(1, 65))
    np.testing.assert_allclose(states['velocity'], 8.0 + np.cumsum(actions[:, 0]) * 0.1)
    np.testing.assert_array_equal(states['acceleration'], actions[:, 0])
    np.testing.assert_array_equal(states['curvature'], actions[:, 1])
    # Independent checks: the distance between points is the mean speed times dt, and the
    # heading follows the direction of travel.
    steps = np.diff(xyz, axis=0)
    mean_speed = (states['velocity'][:-1] + states['velocity'][1:]) / 2
    np.testing.assert_allclose(np.linalg.norm(steps, axis=1), mean_speed * 0.1, rtol=1e-3)
    travel = np.arctan2(steps[:, 1], steps[:, 0])
    mid_yaw = (states['yaw'][:-1] + states['yaw'][1:]) / 2
    np.testing.assert_allclose(travel, mid_yaw, atol=1e-3)


def test_point_states_rejects_bad_shapes():
    xyz, rot, actions = _plan()
    with pytest.raises(ValueError, match='actions'):
        point_states(xyz, rot, actions[:10], 8.0, 0.1)
    with pytest.raises(ValueError, match='rot'):
        point_states(xyz, rot[:, :2], actions, 8.0, 0.1)


def test_to_parent_frame_rotates_then_translates():
    yaw = math.pi / 2
    pose = Pose(np.array([10.0, -5.0, 1.0]), rpy_to_matrix(0.0, 0.0, yaw))
    xyz = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.5]])
    rot = np.stack([np.eye(3), rpy_to_matrix(0.0, 0.0, 0.3), np.eye(3)])
    out_xyz, out_rot = to_parent_frame(xyz, rot, pose)
    # The ego faces +y in the parent frame: ahead is +y, left is -x.
    np.testing.assert_allclose(out_xyz, [[10.0, -5.0, 1.0], [10.0, -4.0, 1.0],
                                         [8.0, -5.0, 1.5]], atol=1e-12)
    np.testing.assert_allclose(out_rot[0], pose.rotation, atol=1e-12)
    np.testing.assert_allclose(out_rot[1], rpy_to_matrix(0.0, 0.0, yaw + 0.3), atol=1e-12)


def test_to_parent_frame_round_trip_with_a_general_pose():
    rng = np.random.default_rng(3)
    pose = Pose(rng.normal(size=3) * 50, rpy_to_matrix(0.1, -0.2, 2.5))
    xyz, rot, _ = _plan()
    out_xyz, out_rot = to_parent_frame(xyz, rot, pose)
    back = (out_xyz - pose.position) @ pose.rotation
    np.testing.assert_allclose(back, xyz, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(np.diff(out_xyz, axis=0), axis=1),
                               np.linalg.norm(np.diff(xyz, axis=0), axis=1), atol=1e-9)
    np.testing.assert_allclose(pose.rotation.T @ out_rot[5], rot[5], atol=1e-12)
