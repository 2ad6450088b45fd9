"""fp8 inference through torchao: the language model's linear layers run float8 matmuls.

model = load_fp8(checkpoint_dir, device='cuda')   # FP8UnsupportedError before reading anything

The checkpoint is read in bfloat16 as usual (nothing changes on disk), then every nn.Linear of
`vlm.model.language_model` is converted by torchao's Float8DynamicActivationFloat8WeightConfig
(per-row float8 e4m3 weights, activations quantized per row at each call, scaled matmul on the
GPU's fp8 tensor cores). Left in bfloat16, none of it measured on a GPU yet: the vision encoder
(its patch embedding is a Conv3d, outside torchao's linear path; its blocks would be a separate,
measured step), the lm_head (its logits pick every reasoning token, where rounding could flip a
near tie) and the expert and action projections (they write the trajectory itself, and their
matmuls are small, 64 action tokens per sample and step, where quantizing the activations at
every call costs much of what fp8 saves; the onnx/tensorrt engines are the expert's speed path).

fp8 matmuls need CUDA compute capability >= 8.9 (Ada, Hopper, Blackwell). torchao is imported
only here, lazily, so CPU users of ar1_ros.model never import it.
"""
from pathlib import Path
from typing import Optional, Tuple, Union

import torch

from ar1_ros.model.api import AR1Model

TORCHAO_VERSION = '0.18.0'
MIN_CAPABILITY = (8, 9)
PathLike = Union[str, Path]


class FP8UnsupportedError(RuntimeError):
    """fp8 was asked for where it cannot run: no CUDA GPU, one older than sm89, or no torchao."""


def check_fp8_support(device: Union[str, torch.device]) -> None:
    """Raise FP8UnsupportedError unless `device` is a CUDA GPU of capability >= 8.9 with torchao.

    The message names the device, its name and capability, and what fp8 needs.
    """
    device = torch.device(device)
    need = f'a CUDA GPU of compute capability >= {MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]}'
    if device.type != 'cuda':
        raise FP8UnsupportedError(f'backend.dtype fp8 needs {need} (Ada, Hopper or newer); '
                                  f'device {str(device)!r} is not a CUDA device')
    if not torch.cuda.is_available():
        raise FP8UnsupportedError(f'backend.dtype fp8 needs {need}; device {str(device)!r} '
                                  'was requested but CUDA is not available')
    capability = tuple(torch.cuda.get_device_capability(device))
    if capability < MIN_CAPABILITY:
        name = torch.cuda.get_device_name(device)
        raise FP8UnsupportedError(
            f'backend.dtype fp8 needs {need}; device {str(device)!r} ({name}) has compute '
            f'capability {capability[0]}.{capability[1]}: use bfloat16')
    _torchao()


def _torchao() -> Tuple:
    """Return torchao's (quantize_, Float8DynamicActivationFloat8WeightConfig, PerRow)."""
    try:
        from torchao.quantization import (
            Float8DynamicActivationFloat8WeightConfig,
            PerRow,
            quantize_,
        )
    except ImportError as exc:
        raise FP8UnsupportedError(f'backend.dtype fp8 needs torchao; pip install '
                                  f'torchao=={TORCHAO_VERSION} ({exc})') from exc
    return quantize_, Float8DynamicActivationFloat8WeightConfig, PerRow


def fp8_config():
    """Return torchao's config for the fp8 path: dynamic per-row float8 activations and weights.

    Per row rather than per tensor: one outlier channel then costs only its own row's
    precision. set_inductor_config False: torchao would otherwise change torch.compile's global
    settings, which backend.compile_decode and the compiled expert were measured with.
    """
    _, config, per_row = _torchao()
    return config(granularity=per_row(), set_inductor_config=False)


def quantize_language_model(network: torch.nn.Module, config=None) -> int:
    """Convert the nn.Linear layers of network.vlm.model.language_model with torchao `config`.

    config: a torchao AOBaseConfig, fp8_config() when None. Returns how many layers were
    converted; RuntimeError if a linear layer was left as it was (torchao silently skips
    weights whose dimensions are not multiples of 16), so a half-converted model never runs.
    """
    quantize_ = _torchao()[0]
    language = network.vlm.model.language_model
    quantize_(language, fp8_config() if config is None else config)
    linears = [(name, module) for name, module in language.named_modules()
               if isinstance(module, torch.nn.Linear)]
    # A converted weight is a torchao tensor subclass; a skipped one is still a plain tensor.
    left = [name for name, module in linears if type(module.weight.data) is torch.Tensor]
    if left:
        raise RuntimeError(f'torchao left {len(left)} of {len(linears)} language model linear '
                           f'layers unconverted (dimensions not multiples of 16?): {left[:3]}')
    return len(linears)


def load_fp8(path: PathLike, device: Union[str, torch.device] = 'cuda',
             vlm_path: Optional[PathLike] = None) -> AR1Model:
    """AR1Model.from_pretrained in bfloat16, then quantize_language_model; see the module doc.

    Raises FP8UnsupportedError (before reading the checkpoint) where fp8 cannot run, and whatever
    AR1Model.from_pretrained raises (CheckpointError, OSError).
    """
    check_fp8_support(device)
    model = AR1Model.from_pretrained(path, dtype=torch.bfloat16, device=device,
                                     vlm_path=vlm_path)
    quantize_language_model(model.network)
    return model
