"""Shared machinery of AR1's ONNX exports (expert step, vision encoder) with torch.onnx.

The dynamo exporter (`torch.export` + onnxscript) is used: it traces transformers 5's Qwen3-VL
modules with SDPA attention and a DynamicCache as they are, keeps symbolic batch/prefix/image
axes, and the TorchScript exporter is deprecated. This module imports torch only; running the
files (onnxruntime) belongs to `ar1_ros.runtime.onnx_runner`.
"""
import contextlib
import dataclasses
import logging
from pathlib import Path
from typing import Iterator, Mapping, Sequence, Tuple, Union
import warnings

import torch

# Opset 20: the newest that both onnxruntime 1.2x and TensorRT 10's ONNX parser take; it has a
# native Gelu (vision MLPs) so no erf decomposition is needed.
OPSET = 20
EXPORT_DTYPES = {'float32': torch.float32, 'float16': torch.float16}


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """How to export one module.

    input_names / output_names: ONNX graph names, in forward-argument / output order.
    dynamic_shapes: torch.export dynamic shapes keyed by input name.
    output_dims: output name -> axis names; overrides the exporter's generated symbols
        (e.g. '8*s92') so readers of the file see 'tokens' or 'batch'.
    metadata: stored in the model's metadata_props (read back by onnxruntime).
    """

    input_names: Sequence[str]
    output_names: Sequence[str]
    dynamic_shapes: Mapping[str, Mapping[int, object]]
    output_dims: Mapping[str, Sequence[Union[int, str]]] = dataclasses.field(
        default_factory=dict)
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)


def export_onnx(module: torch.nn.Module, args: Tuple[torch.Tensor, ...], path: Path,
                spec: ExportSpec) -> Path:
    """Export `module(*args)` to the ONNX file `path` (opset OPSET) and return the path.

    Weights go into the file itself below 2 GB and into `<path>.data` above (the real expert
    and vision tower), which onnxruntime and trtexec read from the same folder; a `.data` file
    left by an earlier export to the same path is removed first.

    Args:
        module: torch module in eval mode; its forward takes `args` positionally.
        args: example inputs (tensors), one per `spec.input_names`.
        path: destination .onnx file; its folder must exist.
        spec: names, dynamic axes and metadata.

    Returns:
        Path: `path`.

    """
    shapes = {name: dict(spec.dynamic_shapes.get(name, {})) for name in spec.input_names}
    with torch.no_grad(), _quiet_exporter():
        program = torch.onnx.export(
            module.eval(), args, None, input_names=list(spec.input_names),
            output_names=list(spec.output_names), dynamic_shapes=shapes,
            opset_version=OPSET, dynamo=True, optimize=True, verbose=False)
    graph = program.model.graph
    for value in graph.outputs:
        if value.name in spec.output_dims:
            # The shape class of the exporter's IR takes ints and strings (symbolic axes).
            value.shape = type(value.shape)(list(spec.output_dims[value.name]))
    program.model.metadata_props.update({k: str(v) for k, v in spec.metadata.items()})
    external_data(path).unlink(missing_ok=True)
    program.save(str(path))
    return Path(path)


def external_data(path: Path) -> Path:
    """Return where the weights of the ONNX file `path` go when it is over 2 GB."""
    return Path(f'{path}.data')


def export_dtype(name: str) -> torch.dtype:
    """Return the torch dtype of an export dtype name ('float32' or 'float16').

    bfloat16 is refused: numpy (hence onnxruntime's Python API) has no bfloat16 and
    onnxruntime's CPU kernels lack it, so such a file could not be checked here.
    """
    if name not in EXPORT_DTYPES:
        raise ValueError(f'export dtype must be one of {sorted(EXPORT_DTYPES)}, got {name!r}')
    return EXPORT_DTYPES[name]


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence exporter notes that do not concern AR1.

    They are: torchvision ops it cannot register, FutureWarnings raised inside torch.export,
    and its note that a dynamic axis name is shared. Errors still propagate.
    """
    logger = logging.getLogger('torch.onnx')
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', FutureWarning)
            warnings.filterwarnings('ignore', message='# The axis name', category=UserWarning)
            yield
    finally:
        logger.setLevel(level)
