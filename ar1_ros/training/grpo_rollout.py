"""GRPO rollouts: a group of sampled completions (CoC + discrete trajectory) per prompt.

The prompt is the inference prompt (ending in `<|cot_start|>`). Each row is a small state
machine decoded in lockstep with the others:

- reasoning: `<iK>` ids and `<|im_end|>` are masked (as at inference); the row moves on when it
  samples `<|traj_future_start|>`, or is made to after `max_reasoning_tokens`;
- trajectory: only the future-trajectory bins may be sampled, 128 of them (the official
  rollout may emit any token there and zero-fills a short trajectory, spec §5.2);
- then `<|traj_future_end|>` is written and the row is padded.

Tokens the state machine wrote rather than sampled are left out of the policy loss (`sampled`
False). `phase` records which mask applied to each position, so the policy's log-probabilities
are computed under the same masks and temperature the tokens were drawn with: the rollout is
on-policy (unlike the official one at T = 0.6 scored at T = 1, spec §12.10).
"""
import dataclasses
from typing import Optional

import torch

from ar1_ros.model.generation import decode_step, prefill
from ar1_ros.model.tokens import TokenIds

Tensor = torch.Tensor
COT, TRAJ, DONE = 0, 1, 2


@dataclasses.dataclass
class Completions:
    """tokens, phase, sampled: (G, T) int64 / int64 / bool, T = generated length."""

    tokens: Tensor
    phase: Tensor
    sampled: Tensor


def phase_mask(logits: Tensor, phase: Tensor, ids: TokenIds) -> Tensor:
    """Mask logits (..., V) by phase (...): -inf where that phase may not sample.

    Besides the `<iK>` ids and the end of turn, the reasoning may not write vision tokens: a
    sampled `<|image_pad|>` would make the policy's forward expect one image feature more than
    the prompt has (a random or young model does sample them).
    """
    vocab = torch.arange(logits.shape[-1], device=logits.device)
    start = ids.traj_token_start
    is_traj_id = (vocab >= start) & (vocab < start + ids.traj_vocab_size)
    is_future_bin = (vocab >= start) & (vocab < start + ids.future_vocab_size)
    vision = torch.tensor([ids.image_pad, ids.vision_start, ids.vision_end, ids.video_pad],
                          device=logits.device)
    banned_cot = is_traj_id | (vocab == ids.eos) | torch.isin(vocab, vision)
    banned = torch.where((phase == COT)[..., None], banned_cot, ~is_future_bin)
    return logits.masked_fill(banned, float('-inf'))


def _step(logits: Tensor, phase: Tensor, count: Tensor, ids: TokenIds, n_future: int,
          temperature: float, generator: Optional[torch.Generator]) -> tuple:
    """Choose one token per row; return (token, sampled) and advance phase/count in place."""
    scores = phase_mask(logits, phase, ids) / temperature
    drawn = torch.multinomial(scores.softmax(-1), 1, generator=generator).squeeze(-1)
    token = torch.where(phase == DONE, torch.full_like(drawn, ids.pad), drawn)
    finish = (phase == TRAJ) & (count == n_future)
    token = torch.where(finish, torch.full_like(token, ids.traj_future_end), token)
    sampled = (phase != DONE) & ~finish
    count += (phase == TRAJ).long()
    phase[finish] = DONE
    phase[(phase == COT) & (token == ids.traj_future_start)] = TRAJ
    return token, sampled


@torch.no_grad()
def sample_group(vlm, input_ids: Tensor, pixel_values: Tensor, image_grid_thw: Tensor,
                 group: int, ids: TokenIds, n_future: int = 128, max_reasoning: int = 128,
                 temperature: float = 0.6,
                 generator: Optional[torch.Generator] = None) -> Completions:
    """Sample `group` completions of one prompt (1, L); see the module docstring."""
    logits, cache, delta = prefill(vlm, input_ids, pixel_values, image_grid_thw)
    cache.batch_repeat_interleave(group)
    logits = logits.repeat(group, 1)
    phase = torch.full((group,), COT, dtype=torch.long, device=input_ids.device)
    count = torch.zeros_like(phase)
    tokens, phases, sampled = [], [], []
    for step in range(max_reasoning + n_future + 2):
        if step == max_reasoning:  # reasoning budget spent: close it
            logits = logits.clone()
            logits[phase == COT] = float('-inf')
            logits[phase == COT, ids.traj_future_start] = 0.0
        phases.append(phase.clone())
        token, chosen = _step(logits, phase, count, ids, n_future, temperature, generator)
        if step >= max_reasoning:
            chosen &= phases[-1] != COT  # the forced stop was not sampled
        tokens.append(token)
        sampled.append(chosen)
        if bool((phase == DONE).all()):
            break
        logits = decode_step(vlm, token, cache, delta)
    return Completions(torch.stack(tokens, 1), torch.stack(phases, 1), torch.stack(sampled, 1))


def future_bins(completions: Completions, ids: TokenIds, n_future: int = 128) -> Tensor:
    """Return the sampled trajectory bins (G, n_future) of each completion."""
    is_traj = (completions.phase == TRAJ) & completions.sampled
    bins = completions.tokens[is_traj].reshape(completions.tokens.shape[0], n_future)
    return bins - ids.traj_token_start


def reasoning_ids(completions: Completions) -> list:
    """Return each completion's reasoning token ids (the CoC phase, stop token excluded)."""
    rows = []
    for tokens, phase in zip(completions.tokens.tolist(), completions.phase.tolist(),
                             strict=True):
        rows.append([t for t, p in zip(tokens, phase, strict=True) if p == COT][:-1])
    return rows
