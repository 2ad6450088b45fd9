"""The expert's flow steps under torch.compile, with the prefix padded to fixed buckets.

`backend.expert_engine: compiled`. The prefix length changes every cycle (the CoC length
varies), and a compiled graph (and a CUDA graph with `reduce-overhead` on GPUs) is specialised
to its shapes. Padding the cached keys and values to the next multiple of `bucket` tokens, with
the padded slots masked, gives a handful of shapes that are each compiled once; the masked
slots get exactly zero attention weight (exp(dtype min - max) underflows to 0), so the plan is
the eager one. The first cycle of each bucket pays the compilation (tens of seconds).
"""
from typing import Callable, Dict, Tuple

import torch

from ar1_ros.model.network import AR1Network
from ar1_ros.model.onnx_expert import ExpertStep

Tensor = torch.Tensor
DEFAULT_BUCKET = 128


def pad_prefix(keys: Tensor, values: Tensor, mask: Tensor, bucket: int) -> Tuple[Tensor, ...]:
    """Pad keys/values (L, B, KVH, P, D) to P' = ceil(P / bucket) * bucket and mask the padding.

    mask (B, 1, N, P + N) becomes (B, 1, N, P' + N): the N action-token columns stay last.
    """
    length = keys.shape[3]
    extra = -length % bucket
    if extra == 0:
        return keys, values, mask
    pad = (0, 0, 0, extra)
    keys = torch.nn.functional.pad(keys, pad)
    values = torch.nn.functional.pad(values, pad)
    hidden = torch.full((*mask.shape[:-1], extra), torch.finfo(mask.dtype).min,
                        dtype=mask.dtype, device=mask.device)
    mask = torch.cat([mask[..., :length], hidden, mask[..., length:]], dim=-1)
    return keys, values, mask


class CompiledExpert:
    """expert_step factory (see model.inference.flow_actions) running a compiled ExpertStep."""

    def __init__(self, net: AR1Network, bucket: int = DEFAULT_BUCKET):
        if bucket < 1:
            raise ValueError(f'bucket must be >= 1, got {bucket}')
        device = net.action_out_proj.weight.device
        # CUDA graphs replay the whole step without Python or launch overhead on GPUs.
        mode = 'reduce-overhead' if device.type == 'cuda' else 'default'
        self.step = torch.compile(ExpertStep(net), mode=mode, dynamic=False)
        self.bucket = bucket
        self.compiled_shapes: Dict[Tuple[int, int], int] = {}  # (batch, padded prefix) -> uses

    def __call__(self, keys: Tensor, values: Tensor, position_ids: Tensor,
                 mask: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
        """Return velocity_fn(x, t) for one cycle's prefix."""
        keys, values, mask = pad_prefix(keys, values, mask, self.bucket)
        shape = (int(keys.shape[1]), int(keys.shape[3]))
        self.compiled_shapes[shape] = self.compiled_shapes.get(shape, 0) + 1

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            return self.step(x, t, keys, values, position_ids, mask)

        return velocity
