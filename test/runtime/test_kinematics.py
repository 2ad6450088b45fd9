import numpy as np
import pytest
import torch

from ar1_ros.model.action_space import UnicycleAccelCurvatureActionSpace
from ar1_ros.runtime.kinematics import integrate_unicycle, point_speeds

DT = 0.1


def _random_actions(seed, samples=3):
    rng = np.random.default_rng(seed)
    accel = rng.normal(0.0, 1.5, (samples, 64))
    curvature = rng.normal(0.0, 0.05, (samples, 64))
    return np.stack([accel, curvature], axis=-1)


def _constant_speed_history(speed):
    # 16 poses 0.1 s apart ending at the origin, driving along +x at `speed`.
    xyz = np.zeros((16, 3))
    xyz[:, 0] = (np.arange(16) - 15) * speed * DT
    return torch.from_numpy(xyz), torch.eye(3, dtype=torch.float64).expand(16, 3, 3).clone()


@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('v0', [0.0, 3.5, 17.0])
def test_integration_matches_the_model_action_space(seed, v0):
    space = UnicycleAccelCurvatureActionSpace(dt=DT)  # mean 0 / std 1: actions are physical
    actions = _random_actions(seed)
    hist_xyz, hist_rot = _constant_speed_history(v0)
    ref_xyz, ref_rot = space.action_to_traj(
        torch.from_numpy(actions), hist_xyz, hist_rot,
        t0_states={'v': torch.tensor(v0, dtype=torch.float64)})
    xyz, rot, speeds = integrate_unicycle(actions, v0, DT)
    np.testing.assert_allclose(xyz, ref_xyz.numpy(), atol=1e-9)
    np.testing.assert_allclose(rot, ref_rot.numpy(), atol=1e-12)
    assert speeds.shape == (3, 65)


def test_integration_matches_with_the_speed_the_model_estimates():
    space = UnicycleAccelCurvatureActionSpace(dt=DT)
    hist_xyz, hist_rot = _constant_speed_history(8.0)
    v_model = float(space.estimate_t0_states(hist_xyz, hist_rot)['v'])
    assert v_model == pytest.approx(8.0, abs=1e-3)
    actions = _random_actions(7, samples=2)
    ref_xyz, _ = space.action_to_traj(torch.from_numpy(actions), hist_xyz, hist_rot)
    xyz, _, _ = integrate_unicycle(actions, v_model, DT)
    np.testing.assert_allclose(xyz, ref_xyz.numpy(), atol=1e-9)


def test_straight_constant_speed_is_a_line():
    xyz, rot, speeds = integrate_unicycle(np.zeros((1, 64, 2)), 10.0, DT)
    np.testing.assert_allclose(xyz[0, :, 0], np.arange(1, 65) * 1.0, atol=1e-12)
    np.testing.assert_allclose(xyz[0, :, 1:], 0.0, atol=1e-12)
    np.testing.assert_allclose(rot[0], np.broadcast_to(np.eye(3), (64, 3, 3)), atol=1e-12)
    np.testing.assert_allclose(speeds, 10.0)


def test_point_speeds_accumulate_accelerations():
    actions = np.zeros((2, 64, 2))
    actions[0, :, 0] = 1.0
    actions[1, :10, 0] = -2.0
    speeds = point_speeds(actions, 5.0, DT)
    assert speeds.shape == (2, 65)
    assert speeds[0, 0] == 5.0
    assert speeds[0, -1] == pytest.approx(5.0 + 6.4)
    assert speeds[1, 10] == pytest.approx(3.0)
    assert speeds[1, -1] == pytest.approx(3.0)
