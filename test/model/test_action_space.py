"""Unicycle action space vs the official golden outputs (fixtures README §5) + properties.

Tolerances: the README §8 bars are float64 1e-6 and float32 2e-3 (normalised action).  This
implementation reproduces the fixture bitwise on CPU (measured max error 0 for every tensor),
so the bars below are set from a sensitivity study instead: float32 with a different solver
(LU instead of Cholesky) moves the action by 6.3e-4, accel 6.5e-5, curvature 1.6e-5,
t0 speed 4.8e-6, round-trip xyz 7.6e-5 m and rot 3.2e-6; float64 by about 1e-12.
"""
import json

import pytest
import torch

from ar1_ros.model.action_space import UnicycleAccelCurvatureActionSpace
from ar1_ros.model.least_squares import cholesky_solve_ridge

from .golden import CASES, GOLDEN, load

F64_ATOL = 1e-9
F32_ATOL = {
    't0_v': 2e-5, 'action': 2e-3, 'accel': 2e-4, 'curvature': 5e-5,
    'states_v_a_theta': 2e-3, 'roundtrip_xyz': 1e-4, 'roundtrip_rot': 1e-5,
}
# action_to_traj alone (same action in): only cumsum/trig rounding can differ.
ROLLOUT_ATOL = {'xyz': 2e-5, 'rot': 1e-6}
TRAJ = ('hist_xyz', 'hist_rot', 'fut_xyz', 'fut_rot')


def release_cfg():
    raw = json.loads((GOLDEN / 'checkpoint' / 'config.json').read_text())['action_space_cfg']
    return {k: v for k, v in raw.items() if not k.startswith('_')}


def make_space(dtype=torch.float32, **overrides):
    """Build the module under `dtype` as default dtype, like the fixture generator did."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        return UnicycleAccelCurvatureActionSpace(**{**release_cfg(), **overrides})
    finally:
        torch.set_default_dtype(old)


@pytest.fixture(scope='module')
def golden():
    return load('action_space')[1]


def run_all(space, gt):
    hist_xyz, hist_rot, fut_xyz, fut_rot = gt
    action, states = space.traj_to_action(hist_xyz, hist_rot, fut_xyz, fut_rot,
                                          output_all_states=True)
    accel, curvature = space.denormalize(action)
    xyz, rot = space.action_to_traj(action, hist_xyz, hist_rot)
    return {
        't0_v': space.estimate_t0_states(hist_xyz, hist_rot)['v'], 'action': action,
        'accel': accel, 'curvature': curvature, 'states_v_a_theta': states,
        'roundtrip_xyz': xyz, 'roundtrip_rot': rot,
        'within_bounds': space.is_within_bounds(action),
    }


@pytest.mark.parametrize('tag', ['f64', 'f32'])
def test_matches_official(golden, tag):
    dtype = torch.float64 if tag == 'f64' else torch.float32
    gt = [golden[f'gt/{k}'].to(dtype) for k in TRAJ]
    ours = run_all(make_space(dtype), gt)
    for name, value in ours.items():
        ref = golden[f'{tag}/{name}']
        assert value.dtype == ref.dtype, name
        assert value.shape == ref.shape, name
        if ref.dtype == torch.bool:
            assert torch.equal(value, ref), name
            continue
        atol = F64_ATOL if tag == 'f64' else F32_ATOL[name]
        err = (value - ref).abs().max().item()
        assert err <= atol, f'{tag}/{name}: max error {err:.3e} > {atol:.1e}'


@pytest.mark.parametrize('tag', ['f64', 'f32'])
def test_action_to_traj_on_official_action(golden, tag):
    dtype = torch.float64 if tag == 'f64' else torch.float32
    hist_xyz, hist_rot = (golden[f'gt/{k}'].to(dtype) for k in TRAJ[:2])
    xyz, rot = make_space(dtype).action_to_traj(golden[f'{tag}/action'], hist_xyz, hist_rot)
    scale = 1e-3 if tag == 'f64' else 1.0  # float64: 2e-8 m / 1e-9
    assert (xyz - golden[f'{tag}/roundtrip_xyz']).abs().max() <= ROLLOUT_ATOL['xyz'] * scale
    assert (rot - golden[f'{tag}/roundtrip_rot']).abs().max() <= ROLLOUT_ATOL['rot'] * scale


@pytest.mark.parametrize('case', CASES)
def test_inference_outputs_of_cases(case):
    # The end-to-end cases decode the sampled action with the model's float32 action space.
    t = load(f'cases/{case}')[1]
    space = make_space()
    hist_xyz, hist_rot = t['inputs/ego_history_xyz'][0, 0], t['inputs/ego_history_rot'][0, 0]
    action = t['diffusion/sampled_action']
    xyz, rot = space.action_to_traj(action, hist_xyz, hist_rot)
    assert (xyz - t['outputs/pred_xyz'][0, 0]).abs().max() <= ROLLOUT_ATOL['xyz']
    assert (rot - t['outputs/pred_rot'][0, 0]).abs().max() <= ROLLOUT_ATOL['rot']
    accel, curvature = space.denormalize(action)
    assert (accel - t['outputs/accel']).abs().max() <= 1e-6
    assert (curvature - t['outputs/curvature']).abs().max() <= 1e-7
    v_t0 = space.estimate_t0_states(hist_xyz, hist_rot)['v']
    assert (v_t0 - t['outputs/v_t0']).abs().max() <= F32_ATOL['t0_v']


def test_states_middle_channel_is_normalised_accel(golden):
    # Official quirk kept for layout compatibility: accel is normalised before the stack.
    states = golden['f64/states_v_a_theta']
    assert torch.equal(states[..., 1], golden['f64/action'][..., 0])


def straight_history(speed, dtype=torch.float64):
    """16 poses at constant speed along +x ending at the origin, identity rotations."""
    steps = torch.arange(-15, 1, dtype=dtype)
    xyz = torch.stack([steps * 0.1 * speed, torch.zeros_like(steps), torch.zeros_like(steps)], -1)
    return xyz, torch.eye(3, dtype=dtype).expand(16, 3, 3).clone()


def test_t0_speed_of_constant_speed_history():
    space = make_space(torch.float64)
    for speed in (0.0, 3.0, 12.5):
        xyz, rot = straight_history(speed)
        assert space.estimate_t0_states(xyz, rot)['v'].item() == pytest.approx(speed, abs=5e-3)


def test_exact_unicycle_rollout_round_trips_float64():
    space = make_space(torch.float64)
    hist_xyz, hist_rot = straight_history(10.0)
    k = torch.arange(64, dtype=torch.float64)
    accel = -1.5 + 1.0 * torch.sin(k / 10)
    curvature = 0.02 * torch.cos(k / 15)
    action = space.normalize(accel, curvature)
    fut_xyz, fut_rot = space.action_to_traj(action, hist_xyz, hist_rot)
    rec = space.traj_to_action(hist_xyz, hist_rot, fut_xyz, fut_rot)
    xyz2, rot2 = space.action_to_traj(rec, hist_xyz, hist_rot)
    assert (xyz2 - fut_xyz)[..., :2].norm(dim=-1).max() < 0.05  # metres, over 6.4 s
    acc2, curv2 = space.denormalize(rec)
    assert (acc2 - accel)[2:-2].abs().max() < 0.1
    assert (curv2 - curvature).abs().max() < 2e-3


def test_rollout_geometry():
    space = make_space(torch.float64)
    hist_xyz, hist_rot = straight_history(5.0)
    hist_xyz[-1, 2] = 0.7  # z is copied from the last history pose
    action = space.normalize(torch.zeros(64, dtype=torch.float64),
                             torch.full((64,), 0.1, dtype=torch.float64))
    xyz, rot = space.action_to_traj(action, hist_xyz, hist_rot,
                                    t0_states={'v': torch.tensor(5.0, dtype=torch.float64)})
    # A constant-curvature, constant-speed rollout stays on the circle of radius 10 m.
    radius = (xyz[:, :2] - torch.tensor([0.0, 10.0], dtype=torch.float64)).norm(dim=-1)
    assert (radius - 10.0).abs().max() < 0.05
    assert torch.all(xyz[:, 2] == 0.7)
    assert torch.allclose(rot @ rot.transpose(-1, -2),
                          torch.eye(3, dtype=torch.float64).expand(64, 3, 3), atol=1e-12)
    final_yaw = torch.tensor(0.1 * 5.0 * 6.4, dtype=torch.float64)  # kappa v T, past pi
    assert rot[-1, 0, 0].item() == pytest.approx(torch.cos(final_yaw).item(), abs=1e-9)
    assert rot[-1, 1, 0].item() == pytest.approx(torch.sin(final_yaw).item(), abs=1e-9)


def test_batch_dims_and_dtypes(golden):
    space = make_space()
    gt = [golden[f'gt/{k}'].float().reshape(5, 1, *golden[f'gt/{k}'].shape[1:]) for k in TRAJ]
    gt = [g.expand(5, 3, *g.shape[2:]) for g in gt]
    action = space.traj_to_action(*gt)
    assert action.shape == (5, 3, 64, 2)
    assert action.dtype == torch.float32
    assert torch.equal(action[:, 1], golden['f32/action'])
    xyz, rot = space.action_to_traj(action, gt[0], gt[1])
    assert xyz.shape == (5, 3, 64, 3)
    assert rot.shape == (5, 3, 64, 3, 3)
    assert space.is_within_bounds(action).shape == (5, 3)
    # float64 inputs run in float64 even though the buffers are float32.
    assert space.traj_to_action(*[g.double() for g in gt]).dtype == torch.float64


def test_autocast_does_not_lower_precision(golden):
    space = make_space()
    gt = [golden[f'gt/{k}'].float() for k in TRAJ]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        action = space.traj_to_action(*gt)
    assert torch.equal(action, golden['f32/action'])


def test_wrong_future_length_and_action_shape():
    space = make_space()
    xyz, rot = straight_history(5.0, torch.float32)
    with pytest.raises(ValueError, match='64'):
        space.traj_to_action(xyz, rot, torch.zeros(63, 3), torch.eye(3).expand(63, 3, 3))
    with pytest.raises(ValueError, match='64'):
        space.action_to_traj(torch.zeros(32, 2), xyz, rot)


def test_normalize_denormalize_inverse_and_bounds():
    space = make_space(torch.float64)
    action = torch.randn(4, 64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(space.normalize(*space.denormalize(action)), action, atol=1e-12)
    accel, curvature = space.denormalize(action)
    assert torch.allclose(accel, action[..., 0] * 0.6810426736454882 + 0.02902694707164455)
    assert space.is_within_bounds(action).all()
    too_sharp = space.normalize(torch.zeros(64, dtype=torch.float64),
                                torch.full((64,), 0.34, dtype=torch.float64))
    assert not space.is_within_bounds(too_sharp)


def test_buffers_and_gradient():
    model = torch.nn.Module()
    model.action_space = make_space()
    state = model.state_dict()
    assert sorted(state) == ['action_space.accel_mean', 'action_space.accel_std',
                             'action_space.curvature_mean', 'action_space.curvature_std']
    assert all(v.shape == () and v.dtype == torch.float32 for v in state.values())
    assert UnicycleAccelCurvatureActionSpace().curvature_bounds == (-0.2, 0.2)
    xyz, rot = straight_history(5.0, torch.float32)
    action = torch.zeros(64, 2, requires_grad=True)
    model.action_space.action_to_traj(action, xyz, rot)[0].sum().backward()
    assert action.grad is not None
    assert action.grad.abs().sum() > 0


def test_cholesky_retry_is_per_problem():
    # [[1, 1], [1, 1]] + 1e-12 I is singular in float32: the ridge must climb to ~1e-7.
    gram = torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[2.0, 0.5], [0.5, 1.0]]])
    rhs = torch.tensor([[2.0, 2.0], [1.0, 1.0]])
    x = cholesky_solve_ridge(gram, rhs, 1e-12)
    assert torch.isfinite(x).all()
    assert torch.allclose(x[0].sum(), torch.tensor(2.0), atol=1e-5)
    # The healthy problem keeps its own (tiny) ridge: solved as if alone.
    assert torch.equal(x[1], cholesky_solve_ridge(gram[1:], rhs[1:], 1e-12)[0])


def test_singular_solve_is_retried_and_bad_input_terminates():
    space = make_space(torch.float64, kappa_ridge=0.0, kappa_lambda=0.0)
    xyz, rot = straight_history(0.0)
    fut_rot = torch.eye(3, dtype=torch.float64).expand(64, 3, 3)
    # Standing still: arc length 0, so the curvature system is all zeros without a ridge.
    action = space.traj_to_action(xyz, rot, torch.zeros(64, 3, dtype=torch.float64), fut_rot)
    assert torch.isfinite(action).all()
    bad = xyz.clone()
    bad[3, 0] = float('nan')
    assert torch.isnan(space.estimate_t0_states(bad, rot)['v'])  # NaN in, NaN out, no hang
    with pytest.raises(ValueError, match='positive definite'):
        cholesky_solve_ridge(torch.tensor([[-1e30]]), torch.ones(1), 1e-4)
