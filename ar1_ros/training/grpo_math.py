"""The math of GRPO post-training (spec §9.3): advantages, clipped surrogate, log-probabilities.

- Advantages are group-relative: each prompt's G completions are compared with each other,
  A_i = (r_i - mean) / (std + eps). The std is the population std (ddof 0), as in
  Cosmos-RL's `GRPO.compute_advantage` (np.std), the trainer of the official RL recipe: it
  is defined for any G >= 1, and the sample std (TRL) would scale the advantages by
  sqrt((G - 1) / G), 0.957 at G = 12. `scale='none'` only centres them (Dr. GRPO, Cosmos-RL's
  `unbiased_advantage`).
- The loss is PPO's clipped surrogate per token with asymmetric bounds (clip-higher, official
  eps_low 0.2, eps_high 0.28), the sequence advantage on every completion token, optionally
  a dual clip for negative advantages (official `lower_bound_ratio` 10.0) and a k3 KL penalty
  to a reference policy (official kl_beta 0: no reference).
- Log-probabilities are taken in float32 whatever the logits' dtype.
"""
from typing import Dict, Optional, Tuple

import torch

Tensor = torch.Tensor
SCALES = ('std', 'none')
TOKEN_MEANS = ('sequence', 'token')


def _work_dtype(*tensors: Tensor) -> torch.dtype:
    """Return float64 if any tensor is float64, else float32 (half precision is promoted)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _rewards_2d(rewards) -> Tensor:
    """Return rewards (P, G) as a float tensor; ValueError unless 2-D and finite."""
    rewards = torch.as_tensor(rewards)
    if rewards.ndim != 2:
        raise ValueError(f'rewards must be (P, G), got {tuple(rewards.shape)}')
    if not bool(torch.isfinite(rewards).all()):
        raise ValueError('rewards must be finite')
    return rewards.to(_work_dtype(rewards))


def group_keep_mask(rewards) -> Tensor:
    """Return (P,) bool: True for the groups of rewards (P, G) that carry a learning signal.

    A group whose G rewards are all equal (any G = 1 group) has zero advantages and so no
    gradient; a trainer may drop it and sample another (DAPO's dynamic sampling).
    """
    rewards = _rewards_2d(rewards)
    return rewards.amax(dim=-1) > rewards.amin(dim=-1)


def group_advantages(rewards, eps: float = 1e-6, scale: str = 'std') -> Tensor:
    """Return group-relative advantages of rewards (P, G), P prompts with G completions each.

    Args:
        rewards: (P, G) rewards. Array or tensor.
        eps: added to the std (scale 'std').
        scale: 'std': (r - mean) / (population std + eps); 'none': r - mean.

    Returns:
        Tensor (P, G), float64 for float64 rewards, else float32. A group with equal rewards
        (std 0: group_keep_mask False) gets exactly zero: rounding in its mean would
        otherwise be divided by eps into noise.

    Raises:
        ValueError: if rewards is not 2-D or not finite, or scale is unknown.

    """
    if scale not in SCALES:
        raise ValueError(f'scale must be one of {SCALES}, got {scale!r}')
    work = _rewards_2d(rewards)
    keep = group_keep_mask(work)
    centred = work - work.mean(dim=-1, keepdim=True)
    if scale == 'std':
        centred = centred / (work.std(dim=-1, correction=0, keepdim=True) + eps)
    return torch.where(keep[:, None], centred, torch.zeros_like(centred))


def _check_loss_inputs(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
                       ref_logp: Optional[Tensor], kl_beta: float, token_mean: str) -> None:
    """Raise ValueError unless the grpo_loss inputs have consistent shapes and options."""
    if logp.ndim != 2 or old_logp.shape != logp.shape or mask.shape != logp.shape:
        raise ValueError(f'logp, old_logp and mask must all be (N, T), got {tuple(logp.shape)}, '
                         f'{tuple(old_logp.shape)}, {tuple(mask.shape)}')
    if advantages.shape != logp.shape[:1]:
        raise ValueError(f'advantages must be (N,) = {tuple(logp.shape[:1])}, got '
                         f'{tuple(advantages.shape)}')
    if ref_logp is not None and ref_logp.shape != logp.shape:
        raise ValueError(f'ref_logp must be {tuple(logp.shape)}, got {tuple(ref_logp.shape)}')
    if kl_beta != 0.0 and ref_logp is None:
        raise ValueError('kl_beta != 0 needs ref_logp')
    if token_mean not in TOKEN_MEANS:
        raise ValueError(f'token_mean must be one of {TOKEN_MEANS}, got {token_mean!r}')


def _reduce(values: Tensor, mask: Tensor, token_mean: str) -> Tensor:
    """Return the masked mean of values (N, T): per sequence then over sequences, or per token.

    'sequence' averages only the sequences with at least one token; no token at all gives 0.
    """
    values = torch.where(mask, values, torch.zeros_like(values))
    weights = mask.to(values.dtype)
    if token_mean == 'token':
        return values.sum() / weights.sum().clamp(min=1.0)
    counts = weights.sum(dim=-1)
    per_sequence = values.sum(dim=-1) / counts.clamp(min=1.0)
    present = (counts > 0).to(values.dtype)
    return (per_sequence * present).sum() / present.sum().clamp(min=1.0)


def _k3(logp: Tensor, ref_logp: Tensor, mask: Tensor) -> Tensor:
    """Return the k3 estimate of KL(pi || ref) per token, exp(d) - d - 1 with d = ref - logp."""
    diff = torch.where(mask, ref_logp.detach().to(logp.dtype) - logp, torch.zeros_like(logp))
    return torch.exp(diff) - diff - 1.0


def _clipped_surrogate(ratio: Tensor, adv: Tensor, eps_low: float, eps_high: float,
                       dual_clip: Optional[float]) -> Tuple[Tensor, Tensor]:
    """Return the per-token surrogate (N, T) and where its clipped branch is taken (bool).

    ratio (N, T), adv (N, 1). A clipped token has no gradient: the ratio left the trust region
    in the direction its advantage pushes.
    """
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * adv)
    if dual_clip is not None:
        surrogate = torch.where(adv < 0, torch.maximum(surrogate, dual_clip * adv), surrogate)
    clipped = ((adv > 0) & (ratio > 1.0 + eps_high)) | ((adv < 0) & (ratio < 1.0 - eps_low))
    return surrogate, clipped


def grpo_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
              eps_low: float = 0.2, eps_high: float = 0.28, ref_logp: Optional[Tensor] = None,
              kl_beta: float = 0.0, token_mean: str = 'sequence',
              dual_clip: Optional[float] = None) -> Tuple[Tensor, Dict[str, Tensor]]:
    """Return the GRPO loss to minimise, -mean surrogate + kl_beta mean k3, and statistics.

    Surrogate per token: min(ratio A, clip(ratio, 1 - eps_low, 1 + eps_high) A), ratio =
    exp(logp - old_logp); with dual_clip c (official 10.0) at least c A where A < 0. Means:
    'sequence' (GRPO: 1/|o_i| per completion, then over completions) or 'token' (DAPO and
    Cosmos-RL's default: over all tokens of the batch). Raises ValueError on bad shapes.

    Args:
        logp: (N, T) log-probabilities of the sampled tokens under the policy (with grad).
        old_logp: (N, T) the same under the sampling policy (no gradient is taken).
        advantages: (N,) advantage of each completion.
        mask: (N, T) bool, True on completion tokens; other positions may hold anything.
        eps_low, eps_high: clip bounds 1 - eps_low <= ratio <= 1 + eps_high.
        ref_logp: (N, T) reference log-probabilities, or None; kl_beta != 0 needs it.
        kl_beta: weight of the k3 KL estimate exp(d) - d - 1, d = ref_logp - logp.
        token_mean: 'sequence' or 'token'; dual_clip: c > 1, or None (off).

    Returns:
        (loss 0-d float32 (float64 for float64 logp), stats): detached 0-d tensors over the
        masked tokens: 'policy_loss' (no KL), 'clip_fraction' (share of clipped tokens, which
        get no gradient), 'ratio_mean', 'kl' (k3 token mean; 0 without ref_logp).

    """
    _check_loss_inputs(logp, old_logp, advantages, mask, ref_logp, kl_beta, token_mean)
    mask, logp = mask.bool(), logp.to(_work_dtype(logp))
    adv = advantages.detach().to(device=logp.device, dtype=logp.dtype)[:, None]
    # Masked positions may hold -inf or NaN: replaced before exp, as NaN * 0 is NaN.
    ratio = torch.exp(torch.where(mask, logp - old_logp.detach().to(logp.dtype), 0.0))
    surrogate, clipped = _clipped_surrogate(ratio, adv, eps_low, eps_high, dual_clip)
    policy_loss = -_reduce(surrogate, mask, token_mean)
    kl = _k3(logp, ref_logp, mask) if ref_logp is not None else torch.zeros_like(logp)
    loss = policy_loss + kl_beta * _reduce(kl, mask, token_mean) if kl_beta else policy_loss
    return loss, {'policy_loss': policy_loss.detach(),
                  'clip_fraction': _reduce(clipped.to(logp.dtype), mask, 'token').detach(),
                  'ratio_mean': _reduce(ratio, mask, 'token').detach(),
                  'kl': _reduce(kl, mask, 'token').detach()}


def sequence_logprobs(logits: Tensor, targets: Tensor, temperature: float = 1.0) -> Tensor:
    """Return log softmax(logits / temperature) at the targets, computed in float32.

    Args:
        logits: (N, L, V) logits, any float dtype (bf16 is promoted; float64 is kept).
        targets: (N, L) token ids, logits[:, l] scoring targets[:, l]; negative ids (e.g. the
            -100 of ignored labels) give 0.
        temperature: divides the logits (the policy uses 1.0, the rollout sampled at 0.6).

    Returns:
        Tensor (N, L) float32 (float64 for float64 logits) log-probabilities.

    Raises:
        ValueError: if temperature <= 0 or the shapes disagree.

    """
    if not temperature > 0:
        raise ValueError(f'temperature must be positive, got {temperature}')
    if logits.ndim != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(f'need logits (N, L, V) and targets (N, L), got '
                         f'{tuple(logits.shape)} and {tuple(targets.shape)}')
    scaled = logits.to(_work_dtype(logits)) / temperature
    ids = targets.clamp(min=0).long().unsqueeze(-1)
    picked = scaled.gather(-1, ids).squeeze(-1) - torch.logsumexp(scaled, dim=-1)
    return torch.where(targets >= 0, picked, torch.zeros_like(picked))
