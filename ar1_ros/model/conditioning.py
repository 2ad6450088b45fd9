"""Where the action tokens sit and what they see in the backbone's KV cache (spec §6.3).

Each sample's 64 action tokens attend to the cached prefix up to and including its first
`<|traj_future_start|>` and to each other (bidirectionally); cached slots after that token
(text generated after the stop, or padding of rows that stopped earlier) are masked. They take
the positions text would have right after `<|traj_future_start|>`.
"""
import dataclasses

import torch


@dataclasses.dataclass
class ExpertConditioning:
    """Offsets (S,), positions (3, S, N), additive mask (S, 1, N, cache + N), stop found (S,)."""

    offsets: torch.Tensor
    position_ids: torch.Tensor
    mask: torch.Tensor
    found: torch.Tensor


def expert_conditioning(sequences: torch.Tensor, cache_len: int, stop_id: int, rope_delta: int,
                        n_tokens: int, dtype: torch.dtype = torch.float32) -> ExpertConditioning:
    """Build the expert's positions and mask from generated sequences (S, L+G).

    A row without the stop token falls back to its last token (as the official code does,
    which only logs a warning); `found` tells the caller so it can report it.
    """
    rows, length = sequences.shape
    is_stop = sequences == stop_id
    found = is_stop.any(dim=1)
    first = is_stop.int().argmax(dim=1)
    last = torch.full_like(first, length - 1)
    offsets = torch.where(found, first, last) + 1
    steps = torch.arange(n_tokens, device=sequences.device)
    position_ids = (steps[None, :] + offsets[:, None] + rope_delta).expand(3, rows, n_tokens)
    slots = torch.arange(cache_len + n_tokens, device=sequences.device)
    hidden = (slots[None, :] >= offsets[:, None]) & (slots[None, :] < cache_len)
    mask = torch.zeros(rows, 1, n_tokens, cache_len + n_tokens, dtype=dtype,
                       device=sequences.device)
    mask.masked_fill_(hidden[:, None, None, :], torch.finfo(dtype).min)
    return ExpertConditioning(offsets, position_ids.contiguous(), mask, found)
