"""One flow-matching step of the action expert as an ONNX-exportable module.

`ExpertStep(net)(x, t, past_keys, past_values, position_ids, mask)` is
`AR1Network.expert_velocity` with the backbone's prefix KV cache passed as two stacked tensors
instead of a DynamicCache, so an engine (onnxruntime, TensorRT) can run the 10 Euler steps of
flow matching while the prefix stays in its own memory. The cache is rebuilt inside forward and
`expert_velocity` itself runs: same code, same numbers.
"""
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn
from transformers import DynamicCache

from ar1_ros.model.network import AR1Network
from ar1_ros.model.onnx_export import ExportSpec, export_onnx

EXPERT_INPUTS = ('x', 't', 'past_keys', 'past_values', 'position_ids', 'mask')
EXPERT_OUTPUTS = ('velocity',)
# Prefix lengths the dynamic axis admits: a prefix of 1 token up to far beyond any AR1 prompt
# (16 images of 180 tokens + text + 256 reasoning tokens is about 3,300).
MAX_PREFIX = 65536
MAX_BATCH = 256


def check_step_shapes(x_shape: Sequence[int], kv_shape: Sequence[int],
                      values_shape: Sequence[int], mask_shape: Sequence[int]) -> None:
    """Raise ValueError unless the expert step's inputs have consistent shapes.

    Args:
        x_shape: (B, 64, 2); kv_shape, values_shape: (L, B, KVH, P, D) both;
        mask_shape: (B, 1, 64, P + 64).

    """
    x_shape, kv_shape = tuple(x_shape), tuple(kv_shape)
    values_shape, mask_shape = tuple(values_shape), tuple(mask_shape)
    if len(x_shape) != 3:
        raise ValueError(f'x {x_shape} must be (B, 64, 2)')
    if values_shape != kv_shape or len(kv_shape) != 5:
        raise ValueError(f'keys {kv_shape} and values {values_shape} must both be '
                         '(L, B, KVH, P, D)')
    if kv_shape[1] != x_shape[0]:
        raise ValueError(f'keys {kv_shape} must be (L, B, KVH, P, D) for x {x_shape}: the '
                         f'batch is {kv_shape[1]}, not {x_shape[0]}')
    if len(mask_shape) != 4 or mask_shape[-1] != kv_shape[3] + x_shape[1] \
            or mask_shape[0] != x_shape[0]:
        raise ValueError(f'mask {mask_shape} must be (B, 1, 64, P + 64) for x '
                         f'{x_shape} and prefix length {kv_shape[3]}')


class ExpertStep(nn.Module):
    """The expert's velocity for actions x given the backbone prefix as stacked K/V tensors."""

    def __init__(self, net: AR1Network):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, t: torch.Tensor, past_keys: torch.Tensor,
                past_values: torch.Tensor, position_ids: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """Return the flow-matching velocity.

        Args:
            x: (B, 64, 2) float32 noisy normalised actions.
            t: (B, 1, 1) float32 flow time.
            past_keys: (L, B, KVH, P, D) the backbone's cached keys (L expert layers), in the
                weights' dtype.
            past_values: (L, B, KVH, P, D) the cached values.
            position_ids: (3, B, 64) int64 mRoPE positions of the action tokens.
            mask: (B, 1, 64, P + 64) additive float mask (0 = attend, dtype min = hidden).

        Returns:
            torch.Tensor: velocity (B, 64, 2) float32.

        """
        cache = DynamicCache()
        for layer in range(len(self.net.expert.layers)):
            cache.update(past_keys[layer], past_values[layer], layer)
        return self.net.expert_velocity(x, t, cache, position_ids, mask)


def stack_cache(cache: DynamicCache) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return a DynamicCache's keys and values stacked over layers, each (L, B, KVH, P, D)."""
    keys = torch.stack([layer.keys for layer in cache.layers])
    values = torch.stack([layer.values for layer in cache.layers])
    return keys, values


def expert_example(net: AR1Network, batch: int = 2, prefix: int = 24,
                   generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
    """Synthetic ExpertStep inputs (named as EXPERT_INPUTS) for export and export-time checks.

    Keys/values are unit normal; positions continue after the prefix; the last quarter of the
    prefix is masked, as text generated after `<|traj_future_start|>` is.
    """
    config, dtype = net.expert.config, net.expert.norm.weight.dtype
    steps, dims = net.action_dims
    kv_shape = (config.num_hidden_layers, batch, config.num_key_value_heads, prefix,
                config.head_dim)
    position_ids = (torch.arange(steps) + prefix).expand(3, batch, steps).contiguous()
    mask = torch.zeros(batch, 1, steps, prefix + steps, dtype=dtype)
    mask[..., prefix - prefix // 4:prefix] = torch.finfo(dtype).min
    example = {'x': torch.randn(batch, steps, dims, generator=generator),
               't': torch.rand(batch, 1, 1, generator=generator),
               'past_keys': torch.randn(*kv_shape, generator=generator).to(dtype),
               'past_values': torch.randn(*kv_shape, generator=generator).to(dtype),
               'position_ids': position_ids, 'mask': mask}
    device = net.action_out_proj.weight.device
    return {name: value.to(device) for name, value in example.items()}


def export_expert(net: AR1Network, path: Path, example: Dict[str, torch.Tensor]) -> Path:
    """Export ExpertStep(net) to `path` with dynamic batch B and prefix length P.

    Args:
        net: the AR1 network (float32 or float16 weights).
        path: destination .onnx file.
        example: inputs as from `expert_example` (B >= 2 and P >= 2, so that neither axis is
            specialised to 1 by the tracer).

    Returns:
        Path: `path`.

    """
    batch = torch.export.Dim('batch', min=1, max=MAX_BATCH)
    prefix = torch.export.Dim('prefix', min=1, max=MAX_PREFIX)
    kv = {1: batch, 3: prefix}
    spec = ExportSpec(
        EXPERT_INPUTS, EXPERT_OUTPUTS,
        {'x': {0: batch}, 't': {0: batch}, 'past_keys': kv, 'past_values': kv,
         'position_ids': {1: batch}, 'mask': {0: batch, 3: prefix + net.action_dims[0]}},
        output_dims={'velocity': ['batch', *net.action_dims]},
        metadata={'ar1.part': 'expert', 'ar1.action_dims': ','.join(map(str, net.action_dims))})
    args = tuple(example[name] for name in EXPERT_INPUTS)
    return export_onnx(ExpertStep(net), args, path, spec)
