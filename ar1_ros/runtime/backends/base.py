"""The inference backend contract and its settings, shared by the node and offline evaluation.

A backend turns decoded images (C, F, H, W, 3) and an Observation into a BackendOutput. The
real one runs AR1Model (torch_backend); the fake one is a deterministic test double. Both are
built from one BackendSettings by `create_backend`, which imports torch only when needed.
"""
import dataclasses
import math
import numbers
import re
from typing import Protocol, runtime_checkable

import numpy as np

from ar1_ros.runtime.types import BackendOutput, Observation

BACKEND_KINDS = ('torch', 'fake')
# 'fp8': bfloat16 weights with the language model's linear layers in float8 (torchao), CUDA
# compute capability >= 8.9 only; checked when the model loads (ar1_ros.model.fp8).
DTYPES = ('float32', 'bfloat16', 'float16', 'fp8')
FAKE_MODES = ('nominal', 'raise', 'nan', 'swerve')
EXPERT_ENGINES = ('torch', 'compiled', 'onnx', 'tensorrt')
# model.prediction.PREPROCESS_DEVICES, spelled out: this module must not import torch.
PREPROCESS_DEVICES = ('cpu', 'model')
_DEVICE = re.compile(r'^(cpu|cuda(:\d+)?)$')


@runtime_checkable
class InferenceBackend(Protocol):
    """What the worker needs from a backend.

    name: a human-readable kind ('torch', 'fake (test double)'); model_id: what produced the
    plans (checkpoint folder name), published with every result.
    """

    name: str
    model_id: str

    def infer(self, images: np.ndarray, observation: Observation) -> BackendOutput:
        """Run one cycle on images uint8 (C, F, H, W, 3) in the observation's camera order."""

    def close(self) -> None:
        """Release the model and its memory; the backend is unusable afterwards."""


def _require(condition: bool, field: str, message: str) -> None:
    if not condition:
        raise ValueError(f'backend {field} {message}')


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


@dataclasses.dataclass(frozen=True)
class BackendSettings:
    """How to build and run a backend; validated on construction (ValueError naming the field).

    kind: 'torch' (AR1Model) or 'fake' (test double). checkpoint: checkpoint folder; vlm_path:
    backbone folder ('' = resolved from the checkpoint). device: 'cpu', 'cuda' or 'cuda:N';
    dtype: 'float32', 'bfloat16', 'float16' or 'fp8' (bfloat16 with the language model's linear
    layers in float8; a CUDA device only, capability >= 8.9 checked at load). num_samples >= 1
    trajectories per cycle; num_flow_steps: Euler steps (0 = checkpoint default);
    max_reasoning_tokens >= 1; reasoning False plans without a CoC (trajectory-only prompt, no
    decoding); expert_engine 'torch', 'compiled', 'onnx' or 'tensorrt' runs the expert's flow
    steps (expert_file: the exported file, '' = <checkpoint>/onnx/); compile_decode: reasoning
    decoded on a static cache under torch.compile; preprocess_device: images resized and
    normalised on the 'cpu' (the official pipeline, bit for bit) or on the 'model' device (a
    GPU's float32 resize, within 1 grey level at the release ratio; the same as 'cpu' on a CPU);
    greedy, temperature > 0 and 0 < top_p <= 1 drive the reasoning sampler; seed: with t0 it
    fixes every random draw of a cycle. fake_mode ('nominal', 'raise', 'nan', 'swerve') and
    fake_delay_s (>= 0, seconds slept per cycle) only affect the fake backend.
    """

    kind: str = 'torch'
    checkpoint: str = ''
    vlm_path: str = ''
    device: str = 'cpu'
    dtype: str = 'float32'
    num_samples: int = 1
    num_flow_steps: int = 0
    max_reasoning_tokens: int = 256
    reasoning: bool = True
    expert_engine: str = 'torch'
    expert_file: str = ''
    compile_decode: bool = False
    preprocess_device: str = 'model'
    greedy: bool = False
    temperature: float = 0.6
    top_p: float = 0.98
    seed: int = 0
    fake_mode: str = 'nominal'
    fake_delay_s: float = 0.0

    def __post_init__(self):
        _require(self.kind in BACKEND_KINDS, 'kind', f'must be one of {BACKEND_KINDS}, '
                 f'got {self.kind!r}')
        for name in ('checkpoint', 'vlm_path'):
            _require(isinstance(getattr(self, name), str), name, 'must be a string')
        _require(isinstance(self.device, str) and bool(_DEVICE.match(self.device)), 'device',
                 f"must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        _require(self.dtype in DTYPES, 'dtype', f'must be one of {DTYPES}, got {self.dtype!r}')
        # Known without torch: torchao's fp8 path runs on CUDA GPUs only, so a CPU device is a
        # parameter error, reported before any load is tried.
        _require(self.dtype != 'fp8' or self.device.startswith('cuda'), 'dtype',
                 'fp8 needs a CUDA device of compute capability >= 8.9, got device '
                 f'{self.device!r}')
        for name, low in (('num_samples', 1), ('num_flow_steps', 0),
                          ('max_reasoning_tokens', 1)):
            value = getattr(self, name)
            _require(_is_int(value) and value >= low, name,
                     f'must be an integer >= {low}, got {value!r}')
        for name in ('greedy', 'reasoning', 'compile_decode'):
            _require(isinstance(getattr(self, name), bool), name, 'must be a bool')
        _require(_is_real(self.temperature) and self.temperature > 0, 'temperature',
                 f'must be > 0, got {self.temperature!r}')
        _require(_is_real(self.top_p) and 0 < self.top_p <= 1, 'top_p',
                 f'must be in (0, 1], got {self.top_p!r}')
        _require(_is_int(self.seed), 'seed', f'must be an integer, got {self.seed!r}')
        _require(self.expert_engine in EXPERT_ENGINES, 'expert_engine',
                 f'must be one of {EXPERT_ENGINES}, got {self.expert_engine!r}')
        _require(isinstance(self.expert_file, str), 'expert_file', 'must be a string')
        _require(self.preprocess_device in PREPROCESS_DEVICES, 'preprocess_device',
                 f'must be one of {PREPROCESS_DEVICES}, got {self.preprocess_device!r}')
        _require(self.fake_mode in FAKE_MODES, 'fake_mode',
                 f'must be one of {FAKE_MODES}, got {self.fake_mode!r}')
        _require(_is_real(self.fake_delay_s) and self.fake_delay_s >= 0, 'fake_delay_s',
                 f'must be >= 0, got {self.fake_delay_s!r}')


def check_images(images: np.ndarray, observation: Observation) -> None:
    """Raise ValueError unless images is uint8 (C, F, H, W, 3) matching the observation.

    C must be the number of cameras and F the number of frames per camera the observation
    selected, so a backend never runs on images stacked for another observation.
    """
    frames = len(observation.frames[0]) if observation.frames else 0
    expected = (len(observation.camera_names), frames)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise ValueError(f'images must be a uint8 numpy array, got '
                         f'{getattr(images, "dtype", type(images).__name__)}')
    if images.ndim != 5 or images.shape[-1] != 3 or images.shape[:2] != expected:
        raise ValueError(f'images must be ({expected[0]}, {expected[1]}, H, W, 3) for this '
                         f'observation, got {images.shape}')


def create_backend(settings: BackendSettings) -> InferenceBackend:
    """Build the backend `settings.kind` names (loads the model for 'torch')."""
    # Imported here: the fake backend (tests, CI) must not pay for importing torch.
    if settings.kind == 'fake':
        from ar1_ros.runtime.backends.fake import FakeBackend
        return FakeBackend(settings)
    from ar1_ros.runtime.backends.torch_backend import TorchBackend
    return TorchBackend(settings)
