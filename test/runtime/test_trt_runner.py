"""TensorRT runner for expert.onnx: import without TensorRT, helpful refusals, shapes, parity.

Most tests run anywhere: the missing module is simulated through sys.modules, and the build and
load logic runs against a small stand-in for the tensorrt module that records the calls. The
last test builds a real engine from the tiny checkpoint's export and needs TensorRT and a GPU.
"""
import importlib.util
import subprocess
import sys
from types import ModuleType, SimpleNamespace

from model.golden import BASE_VLM, CHECKPOINT
import pytest
import torch

from ar1_ros.cli.main import main
from ar1_ros.model.flow_matching import FlowMatching
from ar1_ros.model.onnx_expert import EXPERT_INPUTS as EXPORTED_INPUTS
from ar1_ros.runtime import trt_runner
from ar1_ros.runtime.onnx_runner import OnnxExpertStep, max_abs_error, onnx_velocity_fn
from ar1_ros.runtime.trt_runner import (
    EXPERT_INPUTS,
    TensorRTUnavailable,
    TrtExpertStep,
    build_engine,
    check_step_shapes,
    profile_shapes,
    tensorrt_available,
    trt_velocity_fn,
)

TINY_KV = (2, 1, 2, 10, 32)  # tiny checkpoint: L = 2, KVH = 2, D = 32


class _Recorder:
    """A stand-in for the tensorrt module's builder and runtime objects; records calls."""

    WARNING = 'warning'

    def __init__(self, parse_ok=True, built=b'serialized engine', names=EXPERT_INPUTS):
        self.parse_ok, self.built, self.names = parse_ok, built, names
        self.flags, self.cleared, self.profile, self.parsed = [], [], {}, None

    def module(self) -> ModuleType:
        trt = ModuleType('tensorrt')
        trt.Logger = lambda severity: severity
        trt.Logger.WARNING = self.WARNING
        trt.Builder = trt.Runtime = lambda logger: self
        trt.OnnxParser = lambda network, logger: self
        trt.BuilderFlag = SimpleNamespace(FP16='FP16', BF16='BF16', TF32='TF32')
        trt.TensorIOMode = SimpleNamespace(INPUT='in', OUTPUT='out')
        return trt

    # Builder, network, parser, config and profile in one.
    def create_network(self, flags):
        self.num_inputs = len(self.names)
        return self

    def get_input(self, i):
        shape = {'past_keys': (2, -1, 2, -1, 32), 'x': (-1, 64, 2)}.get(self.names[i], (-1,))
        return SimpleNamespace(name=self.names[i], shape=shape)

    def parse_from_file(self, path):
        self.parsed, self.num_errors = path, 0 if self.parse_ok else 2
        return self.parse_ok

    def get_error(self, i):
        return f'In node {i} (parseGraph): UNSUPPORTED_NODE: op {i}'

    create_builder_config = create_optimization_profile = create_execution_context = (
        lambda self: self)

    def set_flag(self, flag):
        self.flags.append(flag)

    def clear_flag(self, flag):
        self.cleared.append(flag)

    def set_shape(self, name, low, opt, high):
        self.profile[name] = (low, opt, high)

    def add_optimization_profile(self, profile):
        return 0

    def build_serialized_network(self, network, config):
        return self.built

    # Runtime and engine in one.
    def deserialize_cuda_engine(self, data):
        self.num_io_tensors = len(self.names) + 1
        return self

    def get_tensor_name(self, i):
        return (*self.names, 'velocity')[i]

    def get_tensor_dtype(self, name):
        return SimpleNamespace(name='INT64' if name == 'position_ids' else 'FLOAT')

    def get_tensor_mode(self, name):
        return 'out' if name == 'velocity' else 'in'


@pytest.fixture
def fake_trt(monkeypatch):
    def install(**kwargs):
        recorder = _Recorder(**kwargs)
        monkeypatch.setitem(sys.modules, 'tensorrt', recorder.module())
        monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
        return recorder
    return install


@pytest.fixture
def onnx_file(tmp_path):
    path = tmp_path / 'expert.onnx'
    path.write_bytes(b'not parsed without TensorRT')
    return path


def test_module_imports_without_tensorrt():
    # A fresh interpreter where `import tensorrt` fails, whatever this machine has installed.
    code = ('import sys; sys.modules["tensorrt"] = None; '
            'from ar1_ros.runtime import trt_runner as m; '
            'assert "tensorrt" not in vars(m) and not m.tensorrt_available(); print("ok")')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.strip() == 'ok', result.stderr
    assert EXPERT_INPUTS == EXPORTED_INPUTS


def test_available_needs_the_module_and_a_cuda_device(monkeypatch):
    monkeypatch.setitem(sys.modules, 'tensorrt', ModuleType('tensorrt'))
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert not tensorrt_available()
    with pytest.raises(TensorRTUnavailable, match='no CUDA device is visible'):
        trt_runner._import_tensorrt()
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert tensorrt_available()


@pytest.mark.skipif(importlib.util.find_spec('tensorrt') is not None,
                    reason='TensorRT is installed here')
def test_tensorrt_is_not_available_on_this_machine():
    assert not tensorrt_available()


def test_missing_tensorrt_is_explained(monkeypatch, onnx_file, tmp_path):
    monkeypatch.setitem(sys.modules, 'tensorrt', None)
    message = r"tensorrt Python module is not installed.*expert_engine to 'onnx' or 'torch'"
    with pytest.raises(TensorRTUnavailable, match=message):
        build_engine(onnx_file, tmp_path / 'expert.plan')
    with pytest.raises(TensorRTUnavailable, match=message):
        TrtExpertStep(onnx_file)
    assert not (tmp_path / 'expert.plan').exists()


def test_missing_files_and_bad_arguments_are_named(tmp_path, onnx_file):
    with pytest.raises(FileNotFoundError, match='ONNX file .*nothing.onnx not found'):
        build_engine(tmp_path / 'nothing.onnx', tmp_path / 'e.plan')
    with pytest.raises(FileNotFoundError, match='TensorRT engine .*e.plan not found'):
        TrtExpertStep(tmp_path / 'e.plan')
    with pytest.raises(ValueError, match="precision must be one of .* got 'int8'"):
        build_engine(onnx_file, tmp_path / 'e.plan', precision='int8')


@pytest.mark.parametrize(('shapes', 'message'), [
    (((1, 64), TINY_KV, TINY_KV, (1, 1, 64, 74)), r'x \(1, 64\) must be \(B, 64, 2\)'),
    (((1, 64, 2), TINY_KV, TINY_KV[:4], (1, 1, 64, 74)), r'and values \(2, 1, 2, 10\) must'),
    (((1, 64, 2), TINY_KV[:4], TINY_KV[:4], (1, 1, 64, 74)), r'must both be \(L, B, KVH'),
    (((2, 64, 2), TINY_KV, TINY_KV, (2, 1, 64, 74)), 'the batch is 1, not 2'),
    (((1, 64, 2), TINY_KV, TINY_KV, (1, 1, 64, 75)), r'mask \(1, 1, 64, 75\) must be'),
    (((1, 64, 2), TINY_KV, TINY_KV, (2, 1, 64, 74)), r'mask \(2, 1, 64, 74\) must be'),
    (((1, 64, 2), TINY_KV, TINY_KV, (64, 74)), 'for x .* and prefix length 10'),
])
def test_check_step_shapes_refuses(shapes, message):
    with pytest.raises(ValueError, match=message):
        check_step_shapes(*shapes)


def test_check_step_shapes_accepts_consistent_shapes():
    check_step_shapes((1, 64, 2), TINY_KV, TINY_KV, (1, 1, 64, 74))
    check_step_shapes([3, 64, 2], (36, 3, 8, 3300, 128), (36, 3, 8, 3300, 128), (3, 1, 64, 3364))


def test_profile_spans_batch_and_prefix():
    shapes = profile_shapes((36, -1, 8, -1, 128), max_batch=4, max_prefix=4096, opt_prefix=3300)
    assert list(shapes) == list(EXPERT_INPUTS)
    assert shapes['past_keys'] == ((36, 1, 8, 1, 128), (36, 1, 8, 3300, 128),
                                   (36, 4, 8, 4096, 128))
    assert shapes['mask'] == ((1, 1, 64, 65), (1, 1, 64, 3364), (4, 1, 64, 4160))
    assert shapes['position_ids'] == ((3, 1, 64), (3, 1, 64), (3, 4, 64))
    with pytest.raises(ValueError, match='1 <= opt_prefix <= max_prefix'):
        profile_shapes((36, -1, 8, -1, 128), max_batch=4, max_prefix=100, opt_prefix=3300)


@pytest.mark.parametrize(('precision', 'flags', 'cleared'), [
    ('fp16', ['FP16'], []), ('bf16', ['BF16'], []), ('fp32', [], ['TF32'])])
def test_build_engine_writes_the_engine(fake_trt, onnx_file, tmp_path, precision, flags,
                                        cleared):
    trt = fake_trt()
    engine = tmp_path / 'engines' / 'expert.plan'
    assert build_engine(onnx_file, engine, max_batch=2, max_prefix=300, opt_prefix=200,
                        precision=precision) == engine
    assert engine.read_bytes() == b'serialized engine'
    assert [p.name for p in engine.parent.iterdir()] == ['expert.plan']  # no temporary left
    assert (trt.parsed, trt.flags, trt.cleared) == (str(onnx_file), flags, cleared)
    assert trt.profile['mask'] == ((1, 1, 64, 65), (1, 1, 64, 264), (2, 1, 64, 364))
    assert trt.profile['past_values'][2] == (2, 2, 2, 300, 32)


def test_build_engine_reports_every_parser_error(fake_trt, onnx_file, tmp_path):
    fake_trt(parse_ok=False)
    with pytest.raises(RuntimeError, match=r'could not parse .* \(2 errors\):\n.*node 0.*\n.*'
                                           'node 1'):
        build_engine(onnx_file, tmp_path / 'expert.plan')
    assert not (tmp_path / 'expert.plan').exists()


def test_build_engine_refuses_other_files_and_failed_builds(fake_trt, onnx_file, tmp_path):
    fake_trt(names=('pixel_values',))
    with pytest.raises(ValueError, match=r"inputs \['pixel_values'\], not an expert step"):
        build_engine(onnx_file, tmp_path / 'expert.plan')
    fake_trt(built=None)
    with pytest.raises(RuntimeError, match='failed to build an engine'):
        build_engine(onnx_file, tmp_path / 'expert.plan')
    assert not (tmp_path / 'expert.plan').exists()


def test_step_loads_and_validates_before_touching_the_gpu(fake_trt, onnx_file):
    fake_trt()
    step = TrtExpertStep(onnx_file)
    assert step.output_name == 'velocity'
    assert (step.dtypes['past_keys'], step.dtypes['position_ids']) == (torch.float32,
                                                                      torch.int64)
    keys = torch.zeros(TINY_KV)
    with pytest.raises(ValueError, match=r'mask \(1, 1, 64, 75\) must be'):
        step(torch.zeros(1, 64, 2), torch.zeros(1, 1, 1), keys, keys,
             torch.zeros(3, 1, 64, dtype=torch.int64), torch.zeros(1, 1, 64, 75))
    fake_trt(names=EXPERT_INPUTS[:5])
    with pytest.raises(ValueError, match='not an expert step engine'):
        TrtExpertStep(onnx_file)


def _random_inputs(batch: int, prefix: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    keys, values = (torch.randn(2, batch, 2, prefix, 32, generator=gen) for _ in range(2))
    mask = torch.zeros(batch, 1, 64, prefix + 64)
    mask[..., : prefix // 3] = torch.finfo(torch.float32).min  # hide part of the prefix
    positions = (prefix + torch.arange(64)).expand(3, batch, 64).contiguous()
    return (torch.randn(batch, 64, 2, generator=gen), torch.rand(batch, 1, 1, generator=gen),
            keys, values, positions, mask)


@pytest.mark.skipif(not tensorrt_available(), reason='needs TensorRT and a CUDA GPU')
def test_engine_matches_onnxruntime(tmp_path):
    assert main(['export-onnx', '--checkpoint', str(CHECKPOINT), '--vlm-path', str(BASE_VLM),
                 '--out', str(tmp_path), '--parts', 'expert']) == 0
    engine = build_engine(tmp_path / 'expert.onnx', tmp_path / 'expert.plan', max_batch=4,
                          max_prefix=512, opt_prefix=266, precision='fp32')
    step = TrtExpertStep(engine)
    reference = OnnxExpertStep(tmp_path / 'expert.onnx', providers=['CPUExecutionProvider'])
    for seed, (batch, prefix) in enumerate(((1, 41), (3, 300), (4, 512))):
        inputs = _random_inputs(batch, prefix, seed)
        got = step(*(a.cuda() for a in inputs))
        assert (got.device.type, got.dtype, tuple(got.shape)) == ('cuda', torch.float32,
                                                                  (batch, 64, 2))
        assert max_abs_error(reference(*inputs), got) <= 1e-3
    x, _, *prefix = _random_inputs(2, 100, 7)
    expected = FlowMatching().sample(onnx_velocity_fn(reference, *prefix), x)
    actions = FlowMatching().sample(trt_velocity_fn(step, *(a.cuda() for a in prefix)), x.cuda())
    assert actions.device.type == 'cuda'
    assert max_abs_error(expected, actions) <= 1e-3
    too_long = _random_inputs(1, 600, 0)
    with pytest.raises(ValueError, match=r'past_keys .* is outside the profile'):
        step(*too_long)
