"""Flow matching vs the official golden outputs (fixtures README §6) + properties.

Measured: every fixture tensor is reproduced bitwise.  Pure arithmetic (t, x_t, target, the
time grid and dt) is compared exactly; the loss and the Euler runs (tanh, matmul) at 1e-6.
"""
import pytest
import torch

from ar1_ros.model.flow_matching import FlowMatching

from .golden import load

EULER_ATOL = 1e-6


@pytest.fixture(scope='module')
def golden():
    return load('flow_matching')


def release_fm():
    # diffusion_cfg of the fixture checkpoint, without its Hydra `_target_`.
    return FlowMatching(int_method='euler', num_inference_steps=10)


def test_training_data_matches_official(golden):
    meta, t = golden
    fm = release_fm()
    times = fm.sample_t(5, beta_sample=t['beta_sample_s'])
    assert times.dtype == torch.float32
    x_t, t_out, target = fm.construct_training_data(t['x'], noise=t['noise'], t=times)
    assert torch.equal(t_out, t['t'])
    assert torch.equal(x_t, t['x_t'])
    assert torch.equal(target, t['target'])
    loss = fm.loss(t['pred'], target)
    assert loss.shape == ()
    assert abs(loss.item() - t['loss'].item()) <= EULER_ATOL
    assert loss.item() == pytest.approx(meta['loss'], abs=EULER_ATOL)


def field(a):
    def velocity(x, t):
        assert t.shape == (x.shape[0], 1, 1)
        assert t.dtype == torch.float32
        return torch.tanh(x @ a) + 1.5 * t
    return velocity


def test_euler_matches_official(golden):
    t = golden[1]
    fm = release_fm()
    record = []
    x10 = fm.sample(field(t['euler/A']), t['euler/x0'], record=record)
    assert (x10 - t['euler/x_final_10']).abs().max() <= EULER_ATOL
    assert len(record) == 10
    steps = torch.stack([x for x, _, _ in record])
    assert (steps - t['euler/x_steps_10']).abs().max() <= EULER_ATOL
    times = torch.stack([ti[0, 0, 0] for _, ti, _ in record])
    assert torch.equal(times, t['euler/time_steps_10'][:-1])
    # dt comes from the float32 grid, so x_{i+1} - x_i = dt_i v_i with the recorded dt_10.
    for i, (x, _, v) in enumerate(record[:-1]):
        assert torch.equal(x + t['euler/dt_10'][i] * v, record[i + 1][0])
    x5 = fm.sample(field(t['euler/A']), t['euler/x0'], num_steps=5)
    assert (x5 - t['euler/x_final_5']).abs().max() <= EULER_ATOL


def test_grid_dt_is_not_exactly_a_tenth(golden):
    dt = golden[1]['euler/dt_10']
    assert torch.equal(torch.diff(torch.linspace(0, 1, 11)), dt)
    assert not torch.all(dt == torch.tensor(0.1))  # float32 grid differences, as official


def test_beta_sampler_distribution_and_range():
    fm = release_fm()
    t = fm.sample_t(40000, generator=torch.Generator().manual_seed(0))
    assert t.shape == (40000,)
    assert t.dtype == torch.float32
    assert t.min() >= 0
    assert t.max() <= 0.999
    # s ~ Beta(1.5, 1) has CDF s^1.5 and mean 0.6, so E[t] = 0.999 * 0.4 and
    # P(t > 0.5) = P(s < 1 - 0.5 / 0.999).
    assert t.mean().item() == pytest.approx(0.999 * 0.4, abs=0.01)
    expected = (1 - 0.5 / 0.999) ** 1.5
    assert (t > 0.5).float().mean().item() == pytest.approx(expected, abs=0.01)
    again = fm.sample_t(40000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(t, again)


def test_uniform_sampler():
    fm = FlowMatching(train_timestep_sampler='uniform')
    t = fm.sample_t(20000, generator=torch.Generator().manual_seed(0))
    assert t.min() >= 0
    assert t.max() < 1
    assert t.mean().item() == pytest.approx(0.5, abs=0.01)
    assert torch.equal(fm.sample_t(2, beta_sample=torch.tensor([0.25, 0.5])),
                       torch.tensor([0.25, 0.5]))


def test_construct_training_data_draws_and_shapes():
    fm = release_fm()
    x = torch.randn(3, 64, 2)
    x_t, t, target = fm.construct_training_data(x, generator=torch.Generator().manual_seed(1))
    assert x_t.shape == x.shape
    assert t.shape == (3, 1, 1)
    assert target.shape == x.shape
    noise = x - target
    assert torch.allclose(x_t, t * x + (1 - t) * noise, atol=1e-6)
    # At t = 1 the input is the data itself; the target is still x - noise.
    x_t, _, _ = fm.construct_training_data(x, noise=torch.zeros_like(x), t=torch.ones(3))
    assert torch.equal(x_t, x)


def test_constant_field_is_integrated_exactly():
    fm = release_fm()
    x0 = torch.zeros(2, 64, 2)
    out = fm.sample(lambda x, t: torch.ones_like(x), x0, num_steps=7)
    assert torch.allclose(out, torch.ones_like(x0), atol=1e-6)
    assert fm.initial_noise(4).shape == (4, 64, 2)


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match='heun'):
        FlowMatching(int_method='heun')
    with pytest.raises(ValueError, match='logit_normal'):
        FlowMatching(train_timestep_sampler='logit_normal')
    with pytest.raises(ValueError, match='steps'):
        release_fm().sample(lambda x, t: x, torch.zeros(1, 64, 2), num_steps=0)
    FlowMatching(train_ignore_guidance_rate=0.3, inference_guidance_weight=2.0)  # accepted
