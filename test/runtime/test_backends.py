import dataclasses
from pathlib import Path
import time

import numpy as np
import pytest
import torch

from ar1_ros.model.fp8 import FP8UnsupportedError
from ar1_ros.runtime.backends import BackendSettings, InferenceBackend, create_backend
from ar1_ros.runtime.backends import torch_backend as torch_backend_module
from ar1_ros.runtime.backends.fake import FakeBackend
from ar1_ros.runtime.backends.torch_backend import TorchBackend, cycle_seed
from ar1_ros.runtime.config import ValidatorConfig
from ar1_ros.runtime.types import NS_PER_S
from ar1_ros.runtime.validator import validate_all

from .observations import make_observation

TINY = Path(__file__).resolve().parents[1] / 'fixtures' / 'ar1_tiny'
TORCH = BackendSettings(kind='torch', checkpoint=str(TINY / 'checkpoint'),
                        vlm_path=str(TINY / 'base_vlm'), num_samples=2,
                        max_reasoning_tokens=8)


def _images(observation):
    return np.stack([np.stack([f.rgb() for f in cam]) for cam in observation.frames])


@pytest.mark.parametrize(('field', 'value'), [
    ('kind', 'onnx'), ('device', 'gpu'), ('device', 'cuda:x'), ('dtype', 'float64'),
    ('num_samples', 0), ('num_samples', 1.5), ('num_flow_steps', -1),
    ('max_reasoning_tokens', 0), ('greedy', 'yes'), ('reasoning', 1), ('compile_decode', 'no'),
    ('temperature', 0.0),
    ('temperature', float('nan')), ('top_p', 0.0), ('top_p', 1.5), ('seed', 0.5),
    ('fake_mode', 'explode'), ('fake_delay_s', -1.0), ('checkpoint', None),
    ('preprocess_device', 'cuda'), ('preprocess_device', None),
])
def test_settings_reject_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f'backend {field} '):
        BackendSettings(**{field: value})


def test_settings_accept_valid_values():
    settings = BackendSettings(kind='fake', device='cuda:1', dtype='bfloat16', num_samples=3,
                               num_flow_steps=5, greedy=True, temperature=1, top_p=1.0,
                               seed=-3, fake_mode='swerve', fake_delay_s=0,
                               preprocess_device='cpu')
    assert settings.device == 'cuda:1'
    assert settings.seed == -3
    assert settings.preprocess_device == 'cpu'
    assert BackendSettings().preprocess_device == 'model'
    assert BackendSettings(device='cuda:1', dtype='fp8').dtype == 'fp8'


@pytest.mark.parametrize('kind', ['torch', 'fake'])
def test_settings_refuse_fp8_on_a_cpu_device(kind):
    with pytest.raises(ValueError, match="backend dtype fp8 needs a CUDA device of compute "
                                         r"capability >= 8\.9, got device 'cpu'"):
        BackendSettings(kind=kind, device='cpu', dtype='fp8')


# ---- fake backend (test double) ---------------------------------------------------------------

def test_create_backend_builds_the_fake_test_double():
    backend = create_backend(BackendSettings(kind='fake'))
    assert isinstance(backend, FakeBackend)
    assert isinstance(backend, InferenceBackend)
    assert 'test double' in backend.name
    assert backend.model_id == 'fake-test-double'


def test_fake_nominal_plan_keeps_speed_with_gentle_curvature():
    observation = make_observation(speed=8.0)
    backend = FakeBackend(BackendSettings(kind='fake', num_samples=3))
    out = backend.infer(_images(observation), observation)
    assert out.trajectory_xyz.shape == (3, 64, 3)
    assert out.trajectory_xyz.dtype == np.float64
    assert out.trajectory_rot.shape == (3, 64, 3, 3)
    assert out.actions.shape == (3, 64, 2)
    np.testing.assert_allclose(out.actions[:, :, 0], 0.0)
    np.testing.assert_allclose(out.actions[:, 0, 1], [0.002, 0.003, 0.004])
    # 64 steps at 8 m/s on a 500 m radius: 51.2 m of arc, barely off the x axis.
    arc = np.sum(np.linalg.norm(np.diff(out.trajectory_xyz[0], axis=0), axis=1))
    assert arc + np.linalg.norm(out.trajectory_xyz[0, 0]) == pytest.approx(51.2, rel=1e-4)
    assert out.reasoning == ['FAKE BACKEND (test double): keep lane at 8.0 m/s'] * 3
    assert len(out.token_counts) == 3
    assert out.dt == 0.1
    assert all(v.ok for v in validate_all(out, 8.0, ValidatorConfig()))
    assert all(v >= 0 for v in out.timings.values())


def test_fake_is_deterministic():
    observation = make_observation()
    backend = FakeBackend(BackendSettings(kind='fake'))
    a, b = (backend.infer(_images(observation), observation) for _ in range(2))
    np.testing.assert_array_equal(a.trajectory_xyz, b.trajectory_xyz)


def test_fake_modes_fail_in_their_way():
    observation = make_observation(speed=5.0)
    images = _images(observation)
    with pytest.raises(RuntimeError, match='fake backend fault'):
        FakeBackend(BackendSettings(kind='fake', fake_mode='raise')).infer(images, observation)
    nan = FakeBackend(BackendSettings(kind='fake', fake_mode='nan')).infer(images, observation)
    assert np.isnan(nan.trajectory_xyz).all()
    assert not validate_all(nan, 5.0, ValidatorConfig())[0].ok
    swerve = FakeBackend(BackendSettings(kind='fake', fake_mode='swerve')).infer(
        images, observation)
    verdict = validate_all(swerve, 5.0, ValidatorConfig())[0]
    assert not verdict.ok
    assert verdict.reasons[0].startswith('curvature 1 1/m')


def test_fake_delay_sleeps():
    observation = make_observation(cameras=1)
    backend = FakeBackend(BackendSettings(kind='fake', fake_delay_s=0.2))
    start = time.monotonic()
    backend.infer(_images(observation), observation)
    assert time.monotonic() - start >= 0.2


def test_images_must_match_the_observation():
    observation = make_observation()
    backend = FakeBackend(BackendSettings(kind='fake'))
    images = _images(observation)
    with pytest.raises(ValueError, match=r'\(4, 4, H, W, 3\)'):
        backend.infer(images[:3], observation)
    with pytest.raises(ValueError, match='uint8'):
        backend.infer(images.astype(np.float32), observation)


def test_fake_refuses_work_after_close():
    observation = make_observation()
    backend = FakeBackend(BackendSettings(kind='fake'))
    backend.close()
    with pytest.raises(RuntimeError, match='after close'):
        backend.infer(_images(observation), observation)


# ---- torch backend (tiny real checkpoint) -----------------------------------------------------

@pytest.fixture(scope='module')
def torch_backend():
    backend = create_backend(TORCH)
    yield backend
    backend.close()


def test_torch_output_shapes_and_types(torch_backend):
    observation = make_observation()
    out = torch_backend.infer(_images(observation), observation)
    assert isinstance(torch_backend, TorchBackend)
    assert torch_backend.model_id == 'checkpoint'
    for array, shape in ((out.trajectory_xyz, (2, 64, 3)), (out.trajectory_rot, (2, 64, 3, 3)),
                         (out.actions, (2, 64, 2))):
        assert array.shape == shape
        assert array.dtype == np.float64
        assert np.isfinite(array).all()
    assert len(out.reasoning) == 2
    assert all(isinstance(t, str) for t in out.reasoning)
    assert all(isinstance(n, int) and 1 <= n <= 9 for n in out.token_counts)
    assert out.dt == pytest.approx(0.1)
    assert {'preprocess', 'reasoning', 'flow_matching', 'postprocess'} <= set(out.timings)
    assert 'total' not in out.timings
    assert all(v >= 0 for v in out.timings.values())


def test_torch_matches_predict_with_the_cycle_seed(torch_backend):
    observation = make_observation()
    out = torch_backend.infer(_images(observation), observation)
    history = observation.history
    direct = torch_backend.model.predict(
        _images(observation), history.xyz, history.rot, num_samples=2,
        max_reasoning_tokens=8, temperature=0.6, top_p=0.98,
        generator=torch.Generator().manual_seed(cycle_seed(0, observation.t0_ns)))
    np.testing.assert_array_equal(out.trajectory_xyz, direct.trajectory_xyz.double().numpy())
    assert out.reasoning == direct.reasoning
    assert out.token_counts == [len(ids) for ids in direct.token_ids]


@pytest.mark.parametrize('where', ['cpu', 'model'])
def test_torch_passes_preprocess_device_to_predict(torch_backend, monkeypatch, where):
    seen = []
    predict = torch_backend.model.predict

    def spy(*args, **kwargs):
        seen.append(kwargs['preprocess_device'])
        return predict(*args, **kwargs)

    monkeypatch.setattr(torch_backend.model, 'predict', spy)
    monkeypatch.setattr(torch_backend, 'settings',
                        dataclasses.replace(TORCH, preprocess_device=where))
    observation = make_observation()
    assert torch_backend.infer(_images(observation), observation).trajectory_xyz.shape[0] == 2
    assert seen == [where]


def test_torch_same_seed_and_t0_repeat_other_ones_differ(torch_backend):
    def run(t0_ns, seed=0):
        observation = make_observation(t0_ns=t0_ns)
        torch_backend.settings = dataclasses.replace(TORCH, seed=seed)
        try:
            return torch_backend.infer(_images(observation), observation)
        finally:
            torch_backend.settings = TORCH

    first, again = run(10 * NS_PER_S), run(10 * NS_PER_S)
    np.testing.assert_array_equal(first.trajectory_xyz, again.trajectory_xyz)
    assert first.reasoning == again.reasoning
    for other in (run(10 * NS_PER_S + 1), run(10 * NS_PER_S, seed=1)):
        assert not np.array_equal(first.trajectory_xyz, other.trajectory_xyz)


def test_cycle_seed_depends_on_seed_and_t0_only():
    seeds = {cycle_seed(s, t) for s in (0, 1, -1) for t in (0, 1, 10**18)}
    assert len(seeds) == 9
    assert cycle_seed(3, 42) == cycle_seed(3, 42)
    assert all(0 <= s < 2 ** 63 for s in seeds)


def test_torch_missing_checkpoint_names_the_path(tmp_path):
    missing = tmp_path / 'no_such_checkpoint'
    with pytest.raises(FileNotFoundError, match='no_such_checkpoint'):
        create_backend(dataclasses.replace(TORCH, checkpoint=str(missing)))
    with pytest.raises(FileNotFoundError, match='not set'):
        create_backend(dataclasses.replace(TORCH, checkpoint=''))
    with pytest.raises(FileNotFoundError, match='no_vlm'):
        create_backend(dataclasses.replace(TORCH, vlm_path=str(tmp_path / 'no_vlm')))


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without CUDA')
def test_torch_cuda_without_cuda_is_refused():
    with pytest.raises(RuntimeError, match='CUDA is not available'):
        create_backend(dataclasses.replace(TORCH, device='cuda'))


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without CUDA')
def test_torch_fp8_without_cuda_says_what_fp8_needs():
    with pytest.raises(FP8UnsupportedError,
                       match=r"fp8 needs a CUDA GPU .*'cuda' was requested but CUDA is not"):
        create_backend(dataclasses.replace(TORCH, device='cuda', dtype='fp8'))


def test_torch_fp8_on_an_older_gpu_is_refused_before_loading(monkeypatch):
    import torchao.quantization  # noqa: F401 - imported for real first, never under the fake
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda device=None: (8, 6))
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda device=None: 'Fake A10')

    def load(*args):
        raise AssertionError('the model was loaded before the fp8 check')
    monkeypatch.setattr(torch_backend_module, 'load_model', load)
    with pytest.raises(FP8UnsupportedError,
                       match=r"'cuda:0' \(Fake A10\) has compute capability 8\.6"):
        create_backend(dataclasses.replace(TORCH, device='cuda:0', dtype='fp8'))


def test_torch_refuses_work_after_close():
    backend = TorchBackend(dataclasses.replace(TORCH, num_samples=1))
    backend.close()
    observation = make_observation()
    with pytest.raises(RuntimeError, match='after close'):
        backend.infer(_images(observation), observation)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_torch_on_cuda_repeats_per_seed_and_t0():
    backend = create_backend(dataclasses.replace(TORCH, device='cuda'))
    try:
        observation = make_observation()
        first, again = (backend.infer(_images(observation), observation) for _ in range(2))
        assert first.trajectory_xyz.shape == (2, 64, 3)
        assert first.trajectory_xyz.dtype == np.float64
        np.testing.assert_array_equal(first.trajectory_xyz, again.trajectory_xyz)
    finally:
        backend.close()
