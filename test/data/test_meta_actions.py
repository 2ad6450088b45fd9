"""Meta-actions of closed-form trajectories, controls vs paths, and the compatibility table."""
import numpy as np
import pytest
import torch

from ar1_ros.data.meta_actions import (
    LATERAL,
    LONGITUDINAL,
    MetaAction,
    MetaActionRules,
    compatible,
    meta_action_from_controls,
    meta_action_from_path,
    meta_actions_from_controls,
)
from ar1_ros.model.action_space import UnicycleAccelCurvatureActionSpace, yaw_rotation
from ar1_ros.runtime.kinematics import integrate_unicycle
from ar1_ros.runtime.presentation import DECISIONS

DT = 0.1
N = 64
T = np.arange(1, N + 1) * DT  # point k at (k + 1) dt


def path(x, y) -> np.ndarray:
    return np.stack([x, y, np.zeros_like(x)], axis=-1)


def straight(v0, accel=0.0):
    return path(v0 * T + 0.5 * accel * T ** 2, np.zeros(N))


def braking_to_stop(v0=8.0, decel=2.0):
    # Stops at v0 / decel = 4 s after v0² / (2 decel) = 16 m, then stands.
    t = np.minimum(T, v0 / decel)
    return path(v0 * t - 0.5 * decel * t ** 2, np.zeros(N))


def arc(v=8.0, kappa=0.05):
    heading = v * kappa * T
    return path(np.sin(heading) / kappa, (1.0 - np.cos(heading)) / kappa)


def lane_change(v=10.0, offset=3.5, duration=5.0):
    # Quintic smoothstep: zero lateral speed and acceleration at both ends, done at 5 s.
    tau = np.minimum(T / duration, 1.0)
    return path(v * T, offset * (10 * tau ** 3 - 15 * tau ** 4 + 6 * tau ** 5))


def controls(accel, kappa):
    return np.broadcast_to(np.asarray(accel, float), N), np.broadcast_to(np.asarray(kappa), N)


BRAKE_TO_STOP = np.r_[np.full(40, -2.0), np.zeros(24)]
# (name, controls, v0, closed-form path, expected (longitudinal, lateral))
CASES = [
    ('cruise', controls(0.0, 0.0), 10.0, straight(10.0), ('keep_speed', 'keep_lane')),
    ('brake to stop', controls(BRAKE_TO_STOP, 0.0), 8.0, braking_to_stop(), ('stop', 'keep_lane')),
    ('slow down', controls(-1.0, 0.0), 10.0, straight(10.0, -1.0), ('decelerate', 'keep_lane')),
    ('speed up', controls(1.0, 0.0), 5.0, straight(5.0, 1.0), ('accelerate', 'keep_lane')),
    ('start', controls(1.5, 0.0), 0.0, straight(0.0, 1.5), ('accelerate', 'keep_lane')),
    ('stand', controls(0.0, 0.0), 0.0, straight(0.0), ('stop', 'keep_lane')),
    ('left turn', controls(0.0, 0.05), 8.0, arc(8.0, 0.05), ('keep_speed', 'turn_left')),
    ('right turn', controls(0.0, -0.05), 8.0, arc(8.0, -0.05), ('keep_speed', 'turn_right')),
    # Heading change 10 * 0.0046875 * 6.4 = 0.3 rad: a road curve, neither turn nor lane change.
    ('curve', controls(0.0, 0.0046875), 10.0, arc(10.0, 0.0046875), ('keep_speed', 'keep_lane')),
]


@pytest.mark.parametrize(('name', 'ctrl', 'v0', 'xyz', 'expected'), CASES,
                         ids=[c[0] for c in CASES])
def test_controls_and_closed_form_paths_agree(name, ctrl, v0, xyz, expected):
    # The closed form is the trajectory the controls drive (to the unicycle's chord error).
    integrated, _, _ = integrate_unicycle(np.stack(ctrl, axis=-1)[None], v0, DT)
    np.testing.assert_allclose(integrated[0], xyz, atol=0.01)
    assert meta_action_from_controls(*ctrl, v0) == MetaAction(*expected)
    assert meta_action_from_path(xyz, v0) == MetaAction(*expected)


@pytest.mark.parametrize(('offset', 'lateral'), [(3.5, 'lane_change_left'),
                                                 (-3.5, 'lane_change_right'),
                                                 (1.0, 'keep_lane'), (-1.0, 'keep_lane')])
def test_lane_change_and_nudge_paths(offset, lateral):
    assert meta_action_from_path(lane_change(offset=offset), 10.0) == MetaAction(
        'keep_speed', lateral)


def test_lane_change_controls_fitted_by_the_action_space_agree_with_the_path():
    xyz = torch.tensor(lane_change(), dtype=torch.float64)
    hist_t = torch.arange(-15, 1, dtype=torch.float64) * DT
    hist_xyz = torch.stack([10.0 * hist_t, torch.zeros(16), torch.zeros(16)], dim=-1)
    hist_rot = yaw_rotation(torch.zeros(16, dtype=torch.float64))
    step = torch.diff(torch.cat([torch.zeros(1, 3, dtype=torch.float64), xyz]), dim=0)
    rot = yaw_rotation(torch.atan2(step[:, 1], step[:, 0]))
    space = UnicycleAccelCurvatureActionSpace().double()
    v0 = float(space.estimate_t0_states(hist_xyz, hist_rot)['v'])
    accel, kappa = space.denormalize(space.traj_to_action(hist_xyz, hist_rot, xyz, rot))
    assert v0 == pytest.approx(10.0, abs=0.05)
    assert meta_action_from_controls(accel, kappa, v0) == MetaAction('keep_speed',
                                                                     'lane_change_left')


def test_batch_of_controls_matches_single_calls_and_accepts_tensors():
    rows = [CASES[0][1], CASES[6][1], CASES[1][1]]
    accel = torch.tensor(np.stack([r[0] for r in rows]))
    kappa = torch.tensor(np.stack([r[1] for r in rows]))
    metas = meta_actions_from_controls(accel, kappa, 8.0)
    assert metas == [MetaAction('keep_speed', 'keep_lane'), MetaAction('keep_speed', 'turn_left'),
                     MetaAction('stop', 'keep_lane')]


def test_rules_move_the_thresholds():
    assert meta_action_from_path(lane_change(), 10.0, rules=MetaActionRules(
        lane_offset_m=4.0)).lateral == 'keep_lane'
    # Mean acceleration 1.0 m/s²: below a 1.5 threshold.
    assert meta_action_from_path(straight(5.0, 1.0), 5.0, rules=MetaActionRules(
        accel_mps2=1.5)).longitudinal == 'keep_speed'
    # Braking at 0.4 m/s² from 10 m/s is gentle with the default 0.5, not with 0.3.
    assert meta_action_from_path(straight(10.0, -0.4), 10.0).longitudinal == 'keep_speed'
    assert meta_action_from_path(straight(10.0, -0.4), 10.0, rules=MetaActionRules(
        decel_mps2=-0.3)).longitudinal == 'decelerate'
    # 8 m/s, kappa 0.01 for 6.4 s turns 0.512 rad: a turn, but not above 0.6 rad.
    assert meta_action_from_path(arc(8.0, 0.01), 8.0).lateral == 'turn_left'
    assert meta_action_from_path(arc(8.0, 0.01), 8.0, rules=MetaActionRules(
        turn_rad=0.6)).lateral == 'keep_lane'


@pytest.mark.parametrize('kwargs', [{'decel_mps2': 0.5}, {'accel_mps2': 0.0},
                                    {'lane_heading_rad': 0.6}, {'stop_speed_mps': 0.0},
                                    {'window_s': -1.0}])
def test_inconsistent_rules_are_rejected(kwargs):
    with pytest.raises(ValueError, match='need|positive'):
        MetaActionRules(**kwargs)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match='path'):
        meta_action_from_path(np.zeros((N, 4)), 1.0)
    with pytest.raises(ValueError, match='non-finite'):
        meta_action_from_path(np.full((N, 3), np.nan), 1.0)
    with pytest.raises(ValueError, match='controls'):
        meta_actions_from_controls(np.zeros((2, N)), np.zeros((3, N)), 1.0)


def test_labels_are_the_published_ones():
    assert LONGITUDINAL == ('accelerate', 'keep_speed', 'decelerate', 'stop')
    assert LATERAL == ('keep_lane', 'turn_left', 'turn_right', 'lane_change_left',
                       'lane_change_right')


@pytest.mark.parametrize(('decision', 'lon', 'lat', 'expected'), [
    ('stop', 'stop', 'keep_lane', True),
    ('stop', 'decelerate', 'keep_lane', False),
    ('stop', 'keep_speed', 'keep_lane', False),
    ('decelerate', 'stop', 'turn_left', True),
    ('yield', 'decelerate', 'keep_lane', True),
    ('yield', 'keep_speed', 'keep_lane', False),
    ('pull_over', 'stop', 'lane_change_right', True),
    ('pull_over', 'accelerate', 'keep_lane', False),
    ('accelerate', 'accelerate', 'turn_right', True),
    ('start', 'stop', 'keep_lane', False),
    ('overtake', 'keep_speed', 'lane_change_left', True),
    ('overtake', 'accelerate', 'keep_lane', True),
    ('overtake', 'keep_speed', 'keep_lane', False),
    ('turn_left', 'decelerate', 'turn_left', True),
    ('turn_left', 'keep_speed', 'turn_right', False),
    ('turn_right', 'keep_speed', 'lane_change_right', False),
    ('lane_change_left', 'keep_speed', 'lane_change_left', True),
    ('lane_change_left', 'keep_speed', 'lane_change_right', False),
    ('lane_change_right', 'accelerate', 'lane_change_right', True),
    ('keep_lane', 'stop', 'keep_lane', True),
    ('keep_lane', 'keep_speed', 'turn_left', False),
    ('follow_lead', 'decelerate', 'keep_lane', True),
    ('follow_lead', 'keep_speed', 'lane_change_left', False),
    ('nudge_left', 'keep_speed', 'keep_lane', True),
    ('nudge_left', 'keep_speed', 'lane_change_left', True),
    ('nudge_left', 'keep_speed', 'turn_right', False),
    ('nudge_right', 'keep_speed', 'turn_right', True),
    ('nudge_right', 'keep_speed', 'lane_change_left', False),
])
def test_compatibility_table(decision, lon, lat, expected):
    assert compatible(decision, MetaAction(lon, lat)) is expected


@pytest.mark.parametrize('decision', ['', 'fly', 'STOP'])
def test_no_decision_is_neither_compatible_nor_incompatible(decision):
    assert compatible(decision, MetaAction('stop', 'keep_lane')) is None


def test_every_decision_has_a_rule():
    meta = MetaAction('keep_speed', 'keep_lane')
    assert all(compatible(d, meta) is not None for d in DECISIONS)
    assert len(DECISIONS) == 15
