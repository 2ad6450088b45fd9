"""Where the torch backend runs the expert's flow steps: eager, compiled, ONNX or TensorRT.

`backend.expert_engine` picks it. The exported files come from `ar1 export-onnx` (expert.onnx)
and, for TensorRT, an engine built from it (runtime.trt_runner.build_engine); by default they
are looked up in `<checkpoint>/onnx/`. The backbone (vision, prefill, reasoning) always runs in
torch; only the 10 expert passes per cycle change engine, reading the same prefix cache.
"""
import functools
from pathlib import Path
from typing import Callable, Optional

from ar1_ros.runtime.backends.base import EXPERT_ENGINES

DEFAULT_FILES = {'onnx': 'expert.onnx', 'tensorrt': 'expert.engine'}


def expert_file(engine: str, configured: str, checkpoint: Path) -> Path:
    """Return the engine file: the configured path, else <checkpoint>/onnx/<default name>."""
    return Path(configured) if configured else Path(checkpoint) / 'onnx' / DEFAULT_FILES[engine]


def make_expert_step(engine: str, configured: str, checkpoint: Path,
                     net=None) -> Optional[Callable]:
    """Return the expert_step factory AR1Model.predict takes, or None for torch.

    'compiled' needs the loaded network (net). Raises FileNotFoundError naming the file and the
    command that makes it; TensorRT raises runtime.trt_runner.TensorRTUnavailable where it is
    not installed or there is no GPU.
    """
    if engine not in EXPERT_ENGINES:
        raise ValueError(f'backend expert_engine must be one of {EXPERT_ENGINES}, got {engine!r}')
    if engine == 'torch':
        return None
    if engine == 'compiled':
        from ar1_ros.runtime.backends.compiled_expert import CompiledExpert
        return CompiledExpert(net)
    path = expert_file(engine, configured, checkpoint)
    if not path.is_file():
        make = (f'ar1 export-onnx --checkpoint {checkpoint} --out {path.parent} --parts expert'
                if engine == 'onnx' else
                'runtime.trt_runner.build_engine(expert.onnx, expert.engine) on the target GPU')
        raise FileNotFoundError(f'backend expert_engine {engine}: {path} does not exist; make '
                                f'it with: {make}')
    if engine == 'onnx':
        from ar1_ros.runtime.onnx_runner import OnnxExpertStep, onnx_velocity_fn
        return functools.partial(onnx_velocity_fn, OnnxExpertStep(path))
    from ar1_ros.runtime.trt_runner import TrtExpertStep, trt_velocity_fn
    return functools.partial(trt_velocity_fn, TrtExpertStep(path))
