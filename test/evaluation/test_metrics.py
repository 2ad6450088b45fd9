"""Metrics and comfort checks against hand-computed cases (spec §8, §9.4)."""
import math

import numpy as np
import pytest

from ar1_ros.evaluation.metrics import (
    METRIC_NAMES,
    aggregate,
    aggregate_by_bag,
    corner_distance,
    keyframe_metrics,
    record_metrics,
)
from ar1_ros.evaluation.records import KeyframeRecord
from ar1_ros.runtime.comfort import BOUNDS, comfort_checks, comfort_terms

DT = 0.1


def yaw_rot(yaw) -> np.ndarray:
    """Return planar rotations (..., 3, 3) for yaw angles (...)."""
    yaw = np.asarray(yaw, dtype=np.float64)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.zeros(yaw.shape + (3, 3))
    rot[..., 0, 0], rot[..., 0, 1], rot[..., 1, 0], rot[..., 1, 1] = c, -s, s, c
    rot[..., 2, 2] = 1.0
    return rot


def straight(steps=64, speed=10.0, accel=0.0, dt=DT):
    """Return (xyz (T, 3), rot (T, 3, 3)) driving along x, point i at t = (i + 1) * dt."""
    t = np.arange(1, steps + 1) * dt
    xyz = np.zeros((steps, 3))
    xyz[:, 0] = speed * t + 0.5 * accel * t ** 2
    return xyz, yaw_rot(np.zeros(steps))


def offset(gt_xyz, lateral):
    """Return gt_xyz moved sideways by `lateral` (T,) metres: the XY error is |lateral|."""
    xyz = gt_xyz.copy()
    xyz[:, 1] += lateral
    return xyz


def samples(*paths):
    xyz = np.stack(paths)
    return xyz, np.broadcast_to(yaw_rot(np.zeros(xyz.shape[:2])), xyz.shape + (3,))


def test_linear_error_growth_gives_exact_values():
    gt, gt_rot = straight()
    t = np.arange(1, 65) * DT
    pred, rot = samples(offset(gt, 0.5 * t), offset(gt, 0.2 * t), offset(gt, -0.3 * t))
    m = keyframe_metrics(pred, rot, gt, gt_rot, DT)
    # Error c * t_i with t_i = (i + 1) dt: the mean of the first n steps is c * dt * (n + 1) / 2.
    assert m['min_ade_sample'] == 1
    assert m['min_ade'] == pytest.approx(0.2 * 0.1 * 65 / 2)
    for seconds, n in ((0.5, 5), (1.0, 10), (3.0, 30), (5.0, 50)):
        assert m[f'min_ade/by_t={seconds}'] == pytest.approx(0.2 * 0.1 * (n + 1) / 2)
        assert m[f'displacement@{seconds}s'] == pytest.approx(0.2 * seconds)
    assert m['ade'] == pytest.approx(0.5 * 0.1 * 65 / 2)
    assert m['ade/by_t=3.0'] == pytest.approx(0.5 * 0.1 * 31 / 2)
    assert m['fde'] == pytest.approx(0.5 * 6.4)
    assert m['min_fde'] == pytest.approx(0.2 * 6.4)
    assert list(m) == [n for n in METRIC_NAMES if n in m], 'canonical order'


def test_best_sample_is_chosen_on_the_full_horizon():
    gt, gt_rot = straight()
    early = np.where(np.arange(64) < 30, 0.0, 3.0)  # perfect for 3 s, then 3 m off
    late = np.where(np.arange(64) < 63, 5.0, 0.0)  # 5 m off until the very last step
    pred, rot = samples(offset(gt, late), offset(gt, early), offset(gt, np.ones(64)))
    m = keyframe_metrics(pred, rot, gt, gt_rot, DT)
    assert m['min_ade_sample'] == 2
    assert m['min_ade'] == pytest.approx(1.0)
    # The by_t values belong to the same sample, although sample 1 is better for 3 s.
    assert m['min_ade/by_t=3.0'] == pytest.approx(1.0)
    assert m['displacement@0.5s'] == pytest.approx(1.0)
    # ade and fde are sample 0's; min_fde takes any sample.
    assert m['ade'] == pytest.approx(5.0 * 63 / 64)
    assert m['fde'] == pytest.approx(0.0)
    assert m['min_fde'] == pytest.approx(0.0)


def test_short_horizon_leaves_out_later_times():
    gt, gt_rot = straight(steps=20)
    pred, rot = samples(offset(gt, np.full(20, 0.4)))
    m = keyframe_metrics(pred, rot, gt, gt_rot, DT)
    assert m['min_ade/by_t=1.0'] == pytest.approx(0.4)
    for name in ('min_ade/by_t=3.0', 'min_ade/by_t=5.0', 'ade/by_t=3.0', 'displacement@3.0s'):
        assert name not in m


def test_steps_follow_dt():
    gt, gt_rot = straight(steps=12, dt=0.5)
    error = np.arange(1.0, 13.0)
    pred, rot = samples(offset(gt, error))
    m = keyframe_metrics(pred, rot, gt, gt_rot, dt=0.5)
    assert m['min_ade/by_t=0.5'] == pytest.approx(1.0)  # round(0.5 / 0.5) = 1 step
    assert m['min_ade/by_t=3.0'] == pytest.approx(np.mean(error[:6]))
    assert m['displacement@5.0s'] == pytest.approx(10.0)


def test_z_is_ignored_by_distance_errors():
    gt, gt_rot = straight()
    pred = gt.copy()
    pred[:, 2] += 7.0
    m = keyframe_metrics(pred[None], gt_rot[None], gt, gt_rot)
    assert m['min_ade'] == 0.0
    assert m['fde'] == 0.0


def test_shape_mismatch_is_a_value_error():
    gt, gt_rot = straight()
    pred, rot = samples(gt[:10])
    with pytest.raises(ValueError, match='pred_xyz'):
        keyframe_metrics(pred, rot, gt, gt_rot)


def test_corner_distance_hand_cases():
    gt, gt_rot = straight(steps=8)
    pred, rot = samples(gt)
    assert corner_distance(pred, rot, gt, gt_rot) == pytest.approx(0.0)
    pred, rot = samples(offset(gt, np.full(8, 0.7)))
    assert corner_distance(pred, rot, gt, gt_rot) == pytest.approx(0.7)
    # A quarter turn in place: every corner is 2.5 m (sqrt(2² + 1.5²)) from the centre and
    # moves along a chord of 2.5 * sqrt(2).
    turned = yaw_rot(np.full((1, 8), math.pi / 2))
    assert corner_distance(gt[None], turned, gt, gt_rot) == pytest.approx(2.5 * math.sqrt(2))


def test_corner_distance_takes_the_minimum_per_corner_and_step():
    gt, gt_rot = straight(steps=4)
    # Half a turn, then 4 m forward or back: one sample's front corners land on the recorded
    # front corners' x (3 m off sideways), the other's rear corners do; the far ones are
    # sqrt(8² + 3²) off. Per corner the best is 3 m; per sample the mean is (3 + 8.54) / 2.
    ahead, behind = gt.copy(), gt.copy()
    ahead[:, 0] += 4.0
    behind[:, 0] -= 4.0
    rot = yaw_rot(np.full((2, 4), math.pi))
    assert corner_distance(np.stack([ahead, behind]), rot, gt, gt_rot) == pytest.approx(3.0)
    single = corner_distance(ahead[None], rot[:1], gt, gt_rot)
    assert single == pytest.approx((3.0 + math.hypot(8.0, 3.0)) / 2)
    # Minimum per step: one sample is off early, the other late.
    first = offset(gt, np.array([1.0, 1.0, 0.0, 0.0]))
    second = offset(gt, np.array([0.0, 0.0, 1.0, 1.0]))
    assert corner_distance(*samples(first, second), gt, gt_rot) == pytest.approx(0.0)


def test_comfort_constant_speed_passes_and_keeps_length():
    xyz, rot = straight(speed=15.0)
    terms = comfort_terms(xyz, rot, DT)
    assert set(terms) == set(BOUNDS)
    assert all(v.shape == (64,) for v in terms.values())
    assert all(np.allclose(v, 0.0, atol=1e-9) for v in terms.values())
    assert comfort_checks(xyz, rot, DT) == {**dict.fromkeys(BOUNDS, True), 'all': True}


@pytest.mark.parametrize(('accel', 'passes'), [(-6.0, False), (-4.0, True), (2.0, True),
                                               (3.0, False)])
def test_comfort_longitudinal_acceleration_bounds(accel, passes):
    xyz, rot = straight(steps=30, speed=20.0, accel=accel)
    lon_accel = comfort_terms(xyz, rot, DT)['lon_accel']
    assert lon_accel[:-2] == pytest.approx(np.full(28, accel))
    checks = comfort_checks(xyz, rot, DT)
    assert checks['lon_accel'] is passes
    assert checks['lat_accel']
    assert checks['yaw_rate']
    assert not checks['all'], 'accelerating to the end always fails lon_jerk (next test)'


def test_comfort_repeated_last_difference_makes_a_jerk_at_the_end():
    # The official finite differences repeat the last value at every stage: the last two
    # accelerations are 0, so a constant 1 m/s² shows a jerk of -1 / dt three steps before
    # the end. Kept as the official code does it.
    xyz, rot = straight(steps=30, speed=20.0, accel=1.0)
    terms = comfort_terms(xyz, rot, DT)
    assert terms['lon_accel'][-2:] == pytest.approx([0.0, 0.0], abs=1e-9)
    assert terms['lon_jerk'][:-3] == pytest.approx(np.zeros(27), abs=1e-6)
    assert terms['lon_jerk'][-3] == pytest.approx(-10.0)
    checks = comfort_checks(xyz, rot, DT)
    assert checks['lon_accel']
    assert not checks['lon_jerk']
    assert not checks['jerk']


def test_comfort_zigzag_fails_yaw_rate():
    xyz, _ = straight(speed=10.0)
    rot = yaw_rot(np.where(np.arange(64) % 2, 0.2, -0.2))
    terms = comfort_terms(xyz, rot, DT)
    assert np.abs(terms['yaw_rate']) == pytest.approx(np.full(64, 4.0))
    checks = comfort_checks(xyz, rot, DT)
    assert not checks['yaw_rate']
    assert not checks['all']


def test_comfort_yaw_rate_is_wrapped_across_pi():
    # A steady 0.5 rad/s left turn whose heading passes +pi (atan2 jumps to -pi there).
    heading = 3.0 + 0.5 * np.arange(1, 21) * DT
    xyz = np.stack([10 * np.sin(heading), -10 * np.cos(heading), np.zeros(20)], axis=1)
    terms = comfort_terms(xyz, yaw_rot(heading), DT)
    assert terms['yaw_rate'] == pytest.approx(np.full(20, 0.5))
    assert terms['yaw_accel'] == pytest.approx(np.zeros(20), abs=1e-9)
    assert comfort_checks(xyz, yaw_rot(heading), DT)['yaw_rate']


def test_comfort_rejects_bad_shapes():
    with pytest.raises(ValueError, match='xyz'):
        comfort_terms(np.zeros((5, 2)), np.zeros((5, 3, 3)), DT)


def make_record(status='ok', plan=0, paths=(), gt=None, valid=None, bag='a', t0_s=1.0):
    """Return a KeyframeRecord with the given sample paths (each (xyz, rot))."""
    record = KeyframeRecord(bag=bag, t0_ns=int(t0_s * 1e9), status=status)
    if paths:
        record.pred_xyz = np.stack([p[0] for p in paths])
        record.pred_rot = np.stack([p[1] for p in paths])
        record.valid = tuple(valid if valid is not None else [True] * len(paths))
        record.plan_index = plan
        record.reasoning = tuple(f'reason {k}' for k in range(len(paths)))
    if gt is not None:
        record.gt_xyz, record.gt_rot = gt
    return record


def test_record_metrics_scores_comfort_on_the_plan_or_sample_0():
    brake, smooth = straight(steps=30, accel=-6.0), straight(steps=30)
    ok = make_record(plan=1, paths=(brake, smooth), valid=[False, True])
    m = record_metrics(ok)
    assert m['comfort/lon_accel'] == 1.0
    assert m['comfort/all'] == 1.0
    assert m['comfort_samples/lon_accel'] == 0.5
    assert m['comfort_samples/all'] == 0.5
    assert (m['valid_samples'], m['rejected_samples']) == (1.0, 1.0)
    assert 'min_ade' not in m, 'no ground truth, no distances'
    rejected = make_record('rejected', plan=None, paths=(brake, smooth), valid=[False, False])
    m = record_metrics(rejected)
    assert m['comfort/lon_accel'] == 0.0
    assert m['comfort/all'] == 0.0
    assert m['rejected_samples'] == 2.0
    assert record_metrics(make_record('failed')) == {}
    assert record_metrics(make_record('skipped')) == {}


def test_record_metrics_with_ground_truth():
    gt = straight()
    record = make_record(paths=(gt, (offset(gt[0], np.ones(64)), gt[1])), gt=gt)
    m = record_metrics(record)
    assert (m['min_ade'], m['ade'], m['min_ade_sample']) == (0.0, 0.0, 0.0)
    assert m['comfort/all'] == 1.0
    assert list(m) == [n for n in METRIC_NAMES if n in m]


def test_aggregate_counts_means_and_rates():
    records = [make_record(), make_record(), make_record('rejected', plan=None),
               make_record('failed'), make_record('skipped', bag='b')]
    for record, value in zip(records[:3], (1.0, 3.0, float('nan')), strict=True):
        record.metrics = {'min_ade': value, 'min_ade_sample': 2.0, 'valid_samples': 1.0,
                          'rejected_samples': 1.0}
    records[0].gt_xyz = np.zeros((64, 3))
    records[0].pred_xyz = np.zeros((1, 64, 3))
    summary = aggregate(records)
    assert summary['keyframes'] == 5
    assert summary['status'] == {'ok': 2, 'rejected': 1, 'failed': 1, 'skipped': 1}
    assert summary['with_ground_truth'] == 1
    assert summary['plan_rejection_rate'] == pytest.approx(1 / 3)
    assert summary['sample_rejection_rate'] == pytest.approx(0.5)
    stats = summary['metrics']['min_ade']
    assert (stats['mean'], stats['std'], stats['count']) == (2.0, 1.0, 2)  # NaN left out
    assert 'min_ade_sample' not in summary['metrics']
    assert set(aggregate_by_bag(records)) == {'a', 'b'}
    assert aggregate_by_bag(records)['b']['status']['skipped'] == 1


def test_aggregate_of_nothing():
    summary = aggregate([])
    assert summary['keyframes'] == 0
    assert summary['metrics'] == {}
    assert summary['plan_rejection_rate'] is None
    assert summary['sample_rejection_rate'] is None
    assert aggregate_by_bag([]) == {}
