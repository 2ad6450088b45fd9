"""Run AR1's expert.onnx (see ar1_ros.model.onnx_expert) as a TensorRT 10 engine on the GPU.

`build_engine` turns the ONNX file into a serialized engine with one optimization profile over
batch and prefix length; `TrtExpertStep` runs one flow-matching velocity evaluation on torch CUDA
tensors, enqueued on torch's current stream; `trt_velocity_fn` adapts it to
`FlowMatching.sample`, with the prefix cast and placed on the GPU once, not per Euler step.

tensorrt is imported inside the functions that need it, so this module imports anywhere; without
TensorRT or a CUDA device they raise `TensorRTUnavailable`.
"""
import os
from pathlib import Path
import tempfile
from typing import Callable, Dict, Sequence, Tuple, Union

import numpy as np
import torch

from ar1_ros.model.onnx_expert import check_step_shapes

ArrayLike = Union[np.ndarray, torch.Tensor]
Shape = Tuple[int, ...]
# Same names and order as ar1_ros.model.onnx_expert.EXPERT_INPUTS (checked by the tests).
EXPERT_INPUTS = ('x', 't', 'past_keys', 'past_values', 'position_ids', 'mask')
PRECISIONS = ('fp16', 'bf16', 'fp32')
_FALLBACK = "set backend.expert_engine to 'onnx' or 'torch'"
# TensorRT DataType names -> torch dtypes, for the types our exports use.
_TORCH_TYPES = {'FLOAT': torch.float32, 'HALF': torch.float16, 'BF16': torch.bfloat16,
                'INT64': torch.int64, 'INT32': torch.int32}


class TensorRTUnavailable(RuntimeError):  # noqa: N818 (the name callers catch)
    """TensorRT cannot run here: the module is not installed or no CUDA device is visible."""


def _import_tensorrt():
    """Return the tensorrt module; raise TensorRTUnavailable saying what is missing."""
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTUnavailable(
            f'TensorRT is not available: the tensorrt Python module is not installed ({exc}). '
            f'Install TensorRT 10.x for this CUDA version, or {_FALLBACK}') from exc
    if not torch.cuda.is_available():
        raise TensorRTUnavailable('TensorRT is not available: no CUDA device is visible to '
                                  f'torch. Run on a machine with an NVIDIA GPU, or {_FALLBACK}')
    return tensorrt


def tensorrt_available() -> bool:
    """Return True if tensorrt imports and torch sees a CUDA device."""
    try:
        _import_tensorrt()
    except TensorRTUnavailable:
        return False
    return True


def expert_shapes(kv_dims: Sequence[int], batch: int, prefix: int,
                  tokens: int = 64) -> Dict[str, Shape]:
    """Return every expert input's shape at one (batch, prefix), L/KVH/D from `kv_dims`."""
    layers, heads, dim = kv_dims[0], kv_dims[2], kv_dims[4]
    cache = (layers, batch, heads, prefix, dim)
    return {'x': (batch, tokens, 2), 't': (batch, 1, 1), 'past_keys': cache,
            'past_values': cache, 'position_ids': (3, batch, tokens),
            'mask': (batch, 1, tokens, prefix + tokens)}


def profile_shapes(kv_dims: Sequence[int], max_batch: int, max_prefix: int, opt_prefix: int,
                   tokens: int = 64) -> Dict[str, Tuple[Shape, Shape, Shape]]:
    """Return {input: (min, opt, max)}: batch 1..max_batch (opt 1), prefix 1..max_prefix."""
    if max_batch < 1 or not 1 <= opt_prefix <= max_prefix:
        raise ValueError(f'need max_batch >= 1 and 1 <= opt_prefix <= max_prefix, got '
                         f'max_batch={max_batch}, opt_prefix={opt_prefix}, '
                         f'max_prefix={max_prefix}')
    points = [expert_shapes(kv_dims, b, p, tokens)
              for b, p in ((1, 1), (1, opt_prefix), (max_batch, max_prefix))]
    return {name: tuple(point[name] for point in points) for name in EXPERT_INPUTS}


def _parse(parser, network, onnx_path: Path) -> Dict[str, Shape]:
    """Parse `onnx_path` (external weights next to it) into `network`; return input shapes.

    Every parser error is reported; a file without the expert step's inputs is refused. The
    parser holds the weights the network refers to: keep it alive until the engine is built.
    """
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f'TensorRT could not parse {onnx_path} ({len(errors)} errors):\n'
                           + '\n'.join(errors))
    inputs = {network.get_input(i).name: tuple(network.get_input(i).shape)
              for i in range(network.num_inputs)}
    if sorted(inputs) != sorted(EXPERT_INPUTS):
        raise ValueError(f'{onnx_path} has inputs {sorted(inputs)}, not an expert step '
                         f'{list(EXPERT_INPUTS)}: export it with `ar1 export-onnx`')
    return inputs


def _set_precision(trt, config, precision: str) -> None:
    """Enable fp16 / bf16 kernels, or keep fp32 strict (TF32 off, for parity checks)."""
    if precision == 'fp16':
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == 'bf16':
        config.set_flag(trt.BuilderFlag.BF16)
    else:
        config.clear_flag(trt.BuilderFlag.TF32)


def _write_atomically(path: Path, data) -> None:
    """Write `data` to a temporary file next to `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _check_build_arguments(onnx_path: Path, precision: str) -> None:
    """Raise ValueError for an unknown precision, FileNotFoundError for a missing file."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    if not onnx_path.is_file():
        raise FileNotFoundError(f'ONNX file {onnx_path} not found')


def build_engine(onnx_path: Union[str, Path], engine_path: Union[str, Path], *,
                 max_batch: int = 8, max_prefix: int = 4096, opt_prefix: int = 3100,
                 precision: str = 'fp16') -> Path:
    """Build a TensorRT engine for expert.onnx and write it to `engine_path` atomically.

    Args:
        onnx_path: expert.onnx from `ar1 export-onnx` (its .data file next to it, if any).
        engine_path: where the serialized engine goes (parent folders are created).
        max_batch: largest batch B; the profile spans 1..max_batch, optimized for 1.
        max_prefix, opt_prefix: the profile spans prefixes 1..max_prefix, tuned for opt_prefix.
        precision: 'fp16' or 'bf16' (those kernels allowed) or 'fp32' (TF32 off too).

    Returns:
        Path: `engine_path`.

    Raises:
        TensorRTUnavailable: tensorrt is not installed or no CUDA device is visible.

    """
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    _check_build_arguments(onnx_path, precision)
    trt = _import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch always
    parser = trt.OnnxParser(network, logger)  # owns the weights until the build is done
    inputs = _parse(parser, network, onnx_path)
    config = builder.create_builder_config()
    _set_precision(trt, config, precision)
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in profile_shapes(inputs['past_keys'], max_batch, max_prefix,
                                                 opt_prefix, tokens=inputs['x'][1]).items():
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f'TensorRT failed to build an engine from {onnx_path} '
                           '(its log above says why)')
    _write_atomically(engine_path, memoryview(serialized))
    return engine_path


class TrtExpertStep:
    """A TensorRT expert.onnx engine: velocity (B, 64, 2) = expert(x, t | prefix K/V, ...).

    One execution context: calls from several threads at once must be serialized by the caller.
    """

    def __init__(self, engine_path: Union[str, Path]):
        """Deserialize the engine at `engine_path` and create its execution context.

        Raises:
            FileNotFoundError: no file at `engine_path`.
            TensorRTUnavailable: tensorrt is not installed or no CUDA device is visible.

        """
        self.path = Path(engine_path)
        if not self.path.is_file():
            raise FileNotFoundError(f'TensorRT engine {self.path} not found')
        trt = _import_tensorrt()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f'could not load {self.path}: built by another TensorRT version '
                               'or for another GPU? Build it again with build_engine')
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.dtypes = {n: _TORCH_TYPES[self.engine.get_tensor_dtype(n).name] for n in names}
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if sorted(set(names) - set(outputs)) != sorted(EXPERT_INPUTS) or len(outputs) != 1:
            raise ValueError(f'{self.path} has tensors {names}, not an expert step engine')
        self.output_name = outputs[0]

    def prepare(self, name: str, value: ArrayLike, device: torch.device) -> torch.Tensor:
        """Return input `name` as a contiguous tensor of the engine's dtype on `device`."""
        tensor = torch.as_tensor(value)
        return tensor.to(device=device, dtype=self.dtypes[name]).contiguous()

    def _bind_input(self, name: str, tensor: torch.Tensor) -> None:
        """Set input `name`'s shape and address; ValueError if outside the engine's profile."""
        shape = tuple(tensor.shape)
        if not self.context.set_input_shape(name, shape):
            low, _, high = (tuple(s) for s in self.engine.get_tensor_profile_shape(name, 0))
            raise ValueError(f'{name} {shape} is outside the profile of {self.path.name} '
                             f'({low} to {high}): build it again with a larger max_batch / '
                             'max_prefix')
        self.context.set_tensor_address(name, tensor.data_ptr())

    def __call__(self, x: ArrayLike, t: ArrayLike, keys: ArrayLike, values: ArrayLike,
                 position_ids: ArrayLike, mask: ArrayLike) -> torch.Tensor:
        """Return the velocity (B, 64, 2) float32 on the current CUDA device.

        Args:
            x: (B, 64, 2) noisy actions; t: (B, 1, 1) flow times.
            keys, values: (L, B, KVH, P, D) the backbone's prefix cache, stacked over layers.
            position_ids: (3, B, 64) int64; mask: (B, 1, 64, P + 64) additive.

        Returns:
            torch.Tensor: (B, 64, 2) float32, computed on torch's current CUDA stream.

        """
        check_step_shapes(x.shape, keys.shape, values.shape, mask.shape)
        device = torch.device('cuda', torch.cuda.current_device())
        feeds = dict(zip(EXPERT_INPUTS, (x, t, keys, values, position_ids, mask), strict=True))
        tensors = {name: self.prepare(name, value, device) for name, value in feeds.items()}
        for name, tensor in tensors.items():
            self._bind_input(name, tensor)
        shape = tuple(self.context.get_tensor_shape(self.output_name))
        output = torch.empty(shape, dtype=self.dtypes[self.output_name], device=device)
        self.context.set_tensor_address(self.output_name, output.data_ptr())
        # Inputs freed after return stay valid: torch's allocator orders reuse on this stream.
        if not self.context.execute_async_v3(torch.cuda.current_stream(device).cuda_stream):
            raise RuntimeError(f'TensorRT could not run {self.path.name} (see its log)')
        return output.float()


def trt_velocity_fn(step: TrtExpertStep, keys: ArrayLike, values: ArrayLike,
                    position_ids: ArrayLike, mask: ArrayLike
                    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Adapt `step` to `FlowMatching.sample(velocity_fn, x0)`: velocity_fn(x, t) -> torch.

    The prefix, positions and mask are cast and moved to the current CUDA device once; each
    Euler step then only converts x and t, and nothing goes through host memory.
    """
    device = torch.device('cuda', torch.cuda.current_device())
    given = (keys, values, position_ids, mask)
    prefix = [step.prepare(n, v, device) for n, v in zip(EXPERT_INPUTS[2:], given, strict=True)]

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return step(x, t, *prefix).to(x.device)

    return velocity
