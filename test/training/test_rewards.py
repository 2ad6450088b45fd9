"""GRPO rewards against hand-computed values (spec §9.3, §9.4)."""
import math

import numpy as np
import pytest
import torch

from ar1_ros.training.rewards import (
    RewardBreakdown,
    RewardWeights,
    aggregate_reward,
    comfort_score,
    consistency_score,
    trajectory_reward,
)

DT = 0.1
N = 64
T = np.arange(1, N + 1) * DT


def yaw_rot(yaw) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.zeros(np.shape(yaw) + (3, 3))
    rot[..., 0, 0], rot[..., 0, 1], rot[..., 1, 0], rot[..., 1, 1] = c, -s, s, c
    rot[..., 2, 2] = 1.0
    return rot


def line(speed=10.0):
    return np.stack([speed * T, np.zeros(N), np.zeros(N)], -1), yaw_rot(np.zeros(N))


def circle(speed, yaw_rate):
    """Constant speed and yaw rate on a circle, point k at heading yaw_rate (k + 1) dt.

    The chord velocity has the same components in every point's own frame, so the terms are
    0 but for the yaw rate and, at the last point, the lateral acceleration: the repeated last
    chord is seen from a heading turned by yaw_rate dt, which gives -2 speed sin(yaw_rate dt /
    2) / dt, about -speed * yaw_rate.
    """
    heading = yaw_rate * T
    radius = speed / yaw_rate
    xyz = np.stack([radius * np.sin(heading), radius * (1 - np.cos(heading)), np.zeros(N)], -1)
    return xyz, yaw_rot(heading)


def test_ade_of_straight_lines():
    gt = line()[0][:, :2]
    ramp = np.stack([gt[:, 0], 0.1 * np.arange(1, N + 1)], -1)  # error 0.1 k, mean 3.25
    pred = torch.tensor(np.stack([gt + [0.0, 1.0], gt, ramp, gt + [3.0, 4.0]]))
    ade = trajectory_reward(pred, torch.tensor(gt))
    assert ade.shape == (4,)
    assert ade.dtype == torch.float64
    torch.testing.assert_close(ade, torch.tensor([1.0, 0.0, 3.25, 5.0], dtype=torch.float64))


def test_ade_ignores_z_and_checks_the_horizon():
    gt = torch.tensor(line()[0], dtype=torch.float32)
    pred = (gt + torch.tensor([0.0, -2.0, 100.0]))[None]
    torch.testing.assert_close(trajectory_reward(pred, gt), torch.tensor([2.0]))
    with pytest.raises(ValueError, match='differ in T'):
        trajectory_reward(pred[:, :10], gt)


def test_comfort_of_a_line_and_of_a_too_fast_yaw():
    paths = [line(), circle(2.0, 1.0), circle(2.0, 0.9), line(0.0), circle(5.0, 1.0)]
    xyz = torch.tensor(np.stack([p[0] for p in paths]))
    rot = torch.tensor(np.stack([p[1] for p in paths]))
    score = comfort_score(xyz, rot)
    # 1.0 rad/s breaks |yaw_rate| < 0.95 only, 0.9 rad/s passes everything; at 5 m/s the last
    # lateral acceleration, -2 * 5 * sin(0.05) / 0.1 = -4.996, breaks |lat_accel| < 4.89 too.
    torch.testing.assert_close(score, torch.tensor([0.0, -1 / 6, 0.0, 0.0, -2 / 6]))
    assert score.dtype == torch.float32


def test_comfort_counts_each_failed_check():
    # Constant 3 m/s² along x: lon_accel > 2.40 fails, and the repeated last difference
    # makes jerk and lon_jerk -3 / 0.1 / ... at the end: -30 m/s³ fails both (spec §9.4).
    xyz = np.stack([10 * T + 1.5 * T ** 2, np.zeros(N), np.zeros(N)], -1)
    score = comfort_score(xyz[None], yaw_rot(np.zeros(N))[None])
    torch.testing.assert_close(score, torch.tensor([-0.5]))


def test_comfort_rejects_bad_shapes():
    xyz, rot = line()
    with pytest.raises(ValueError, match='comfort_score'):
        comfort_score(xyz, rot)


def test_consistency_of_stated_decisions():
    straight = (np.zeros(N), np.zeros(N))
    left = (np.zeros(N), np.full(N, 0.05))
    brake = (np.r_[np.full(40, -2.0), np.zeros(24)], np.zeros(N))
    rows = [('keep_lane', straight), ('turn_left', left), ('turn_right', left),
            ('', straight), ('stop', brake), ('accelerate', brake), ('fly', straight)]
    accel = torch.tensor(np.stack([r[1][0] for r in rows]))
    kappa = torch.tensor(np.stack([r[1][1] for r in rows]))
    score = consistency_score([r[0] for r in rows], accel, kappa, v0=8.0)
    torch.testing.assert_close(score, torch.tensor([0.0, 0.0, -1.0, -1.0, 0.0, -1.0, -1.0]))
    with pytest.raises(ValueError, match='decisions'):
        consistency_score(['stop'], accel, kappa, v0=8.0)


ADE = torch.tensor([0.0, 1.5, 2.999, 3.0, float('nan')], dtype=torch.float64)
COMFORT = torch.tensor([0.0, -1 / 6, -1.0, 0.0, 0.0])
CONSISTENCY = torch.tensor([0.0, -1.0, 0.0, 0.0, 0.0])


def test_aggregate_gates_at_three_metres():
    reward = aggregate_reward(ADE, COMFORT, CONSISTENCY, RewardWeights())
    # -0.4 * 1.5 / 3 - 0.1 / 6 - 0.2 = -0.41667; -0.4 * 2.999 / 3 - 0.1 = -0.49987.
    expected = [0.0, -0.2 - 1 / 60 - 0.2, -0.4 * 2.999 / 3 - 0.1, -1.0, -1.0]
    torch.testing.assert_close(reward, torch.tensor(expected, dtype=torch.float64))


def test_official_weights_have_no_consistency_term():
    weights = RewardWeights.official()
    assert (weights.traj_l2, weights.comfort, weights.consistency) == (0.4, 0.1, 0.0)
    assert (weights.ade_gate_m, weights.ade_scale_m) == (3.0, 3.0)
    assert RewardWeights().consistency == 0.2
    official = aggregate_reward(ADE, COMFORT, CONSISTENCY, weights)
    torch.testing.assert_close(official, aggregate_reward(ADE, COMFORT, None, weights))
    assert official[1].item() == pytest.approx(-0.2 - 1 / 60)


def test_breakdown_stats():
    breakdown = RewardBreakdown.from_terms(ADE, COMFORT, CONSISTENCY)
    assert breakdown.gated.tolist() == [False, False, False, True, True]
    stats = breakdown.stats()
    assert stats['reward/ade'] == pytest.approx((1.5 + 2.999 + 3.0) / 4)  # NaN skipped
    assert stats['reward/gated_fraction'] == pytest.approx(0.4)
    assert stats['reward/consistency'] == pytest.approx(-0.2)
    assert stats['reward/comfort'] == pytest.approx((-1 / 6 - 1.0) / 5)
    assert stats['reward/total'] == pytest.approx((-0.2 - 1 / 60 - 0.2 - 0.4 * 2.999 / 3 - 0.1
                                                   - 2.0) / 5)
    assert not any(math.isnan(v) for v in stats.values())
