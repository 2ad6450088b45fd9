"""The supervised objectives of AR1 (spec §9.1, §9.2), as modules an engine can wrap.

DDP and FSDP synchronise gradients through a module's `forward`, so each objective is an
`nn.Module` holding the network whose forward(batch) returns (loss, logged scalars).

- `VlmObjective` (stage 1): next-token cross-entropy on the supervised tokens, averaged
  separately over the trajectory tokens and the other tokens (CoC text, delimiters, end of turn)
  and summed, in float32 with an empty set counting 0, as the official `TrainableReasoningVLA`.
  Logits are computed only where a label is, not over the whole sequence (at the release
  vocabulary of 155,697 that saves gigabytes per sequence, for the same loss).
- `ExpertObjective` (stage 2): flow matching of the normalised ground-truth action with the
  official time distribution. The backbone runs without gradient (frozen VLM, knowledge
  insulation); its cache is cut after `<|traj_future_start|>` and the expert's 64 action tokens
  attend to that prefix and to each other bidirectionally, with the mask and positions
  inference uses. The official trainer passes no mask and so trains them causally while it
  samples bidirectionally (spec §12.2); `action_attention='causal'` reproduces that for
  comparison only.
"""
from typing import Dict, Optional, Tuple

import torch
from torch import nn
from transformers import DynamicCache

from ar1_ros.model.network import AR1Network, drop_tail
from ar1_ros.model.tokens import TokenIds
from ar1_ros.training.sequences import SftBatch, is_trajectory_token

Tensor = torch.Tensor
ACTION_ATTENTION = ('bidirectional', 'causal')


def _backbone(net: AR1Network, batch: SftBatch, cache: Optional[DynamicCache] = None):
    """Run the backbone's decoder over a batch; return its output (last_hidden_state (B,L,H))."""
    return net.vlm.model(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask,
        position_ids=batch.position_ids, pixel_values=batch.pixel_values.to(net.vlm.dtype),
        image_grid_thw=batch.image_grid_thw, past_key_values=cache, use_cache=cache is not None)


def _mean_or_zero(values: Tensor) -> Tensor:
    """Mean of a 1-D tensor, 0 when it is empty (the official NaN -> 0)."""
    return values.mean() if values.numel() else values.sum()


class VlmObjective(nn.Module):
    """Stage 1: CE_trajectory + CE_others over the supervised tokens (spec §9.1)."""

    def __init__(self, net: AR1Network, ids: TokenIds, traj_weight: float = 1.0,
                 other_weight: float = 1.0):
        super().__init__()
        self.net, self.ids = net, ids
        self.traj_weight, self.other_weight = float(traj_weight), float(other_weight)

    def token_losses(self, batch: SftBatch) -> Tuple[Tensor, Tensor]:
        """Return (per-token CE (n,) float32, targets (n,)) of the supervised tokens."""
        hidden = _backbone(self.net, batch).last_hidden_state
        # Token i+1 is predicted from position i.
        chosen = batch.labels_mask[:, 1:]
        logits = self.net.vlm.lm_head(hidden[:, :-1][chosen]).float()
        targets = batch.input_ids[:, 1:][chosen]
        return nn.functional.cross_entropy(logits, targets, reduction='none'), targets

    def forward(self, batch: SftBatch) -> Tuple[Tensor, Dict[str, float]]:
        """Return (loss, logs) for one batch."""
        losses, targets = self.token_losses(batch)
        traj = is_trajectory_token(targets, self.ids)
        traj_loss, other_loss = _mean_or_zero(losses[traj]), _mean_or_zero(losses[~traj])
        loss = self.traj_weight * traj_loss + self.other_weight * other_loss
        return loss, {'loss': loss.item(), 'ce_trajectory': traj_loss.item(),
                      'ce_other': other_loss.item(), 'supervised_tokens': float(targets.numel())}


class ExpertObjective(nn.Module):
    """Stage 2: flow-matching MSE of the expert on the frozen backbone's prefix (spec §9.2)."""

    def __init__(self, net: AR1Network, action_attention: str = 'bidirectional'):
        super().__init__()
        if action_attention not in ACTION_ATTENTION:
            raise ValueError(f'action_attention must be one of {ACTION_ATTENTION}, '
                             f'got {action_attention!r}')
        self.net, self.action_attention = net, action_attention

    def prefix_cache(self, batch: SftBatch) -> DynamicCache:
        """Run the backbone without gradient; keep its cache up to the longest prefix."""
        cache = DynamicCache(config=self.net.vlm.config.text_config)
        with torch.no_grad():
            _backbone(self.net, batch, cache)
        drop_tail(cache, int(batch.stop_index.max()) + 1)
        return cache

    def conditioning(self, batch: SftBatch, prefix: int, dtype: torch.dtype) -> tuple:
        """Return the action tokens' positions (3, B, N) and additive mask (B, 1, N, prefix+N).

        Row b sees its own prefix [0, stop_b] and the N action tokens, which sit right after its
        `<|traj_future_start|>` (that token's position + 1 + j on all three rope axes).
        """
        n = self.net.action_dims[0]
        rows = torch.arange(batch.input_ids.shape[0], device=batch.input_ids.device)
        stop_pos = batch.position_ids[0, rows, batch.stop_index]
        steps = torch.arange(1, n + 1, device=stop_pos.device)
        positions = (stop_pos[:, None] + steps[None]).expand(3, -1, -1).contiguous()
        slots = torch.arange(prefix + n, device=stop_pos.device)
        hidden = (slots[None] > batch.stop_index[:, None]) & (slots[None] < prefix)
        hidden = hidden[:, None, None, :].expand(-1, 1, n, -1)
        if self.action_attention == 'causal':
            later = torch.ones(n, n, dtype=torch.bool, device=slots.device).triu(1)
            hidden = hidden.clone()
            hidden[..., prefix:] |= later
        mask = torch.zeros(hidden.shape, dtype=dtype, device=slots.device)
        return positions, mask.masked_fill(hidden, torch.finfo(dtype).min)

    def forward(self, batch: SftBatch, noise: Optional[Tensor] = None,
                t: Optional[Tensor] = None) -> Tuple[Tensor, Dict[str, float]]:
        """Return (loss, logs); noise (B, 64, 2) and t (B,) may be given (tests, replays)."""
        cache = self.prefix_cache(batch)
        prefix = cache.get_seq_length()
        x = batch.action.float()
        x_t, t, target = self.net.diffusion.construct_training_data(x, noise=noise, t=t)
        # The mask joins the attention scores in the cache's dtype (bf16 under autocast).
        positions, mask = self.conditioning(batch, prefix, cache.layers[0].keys.dtype)
        pred = self.net.expert_velocity(x_t, t, cache, positions, mask)
        loss = self.net.diffusion.loss(pred, target)
        return loss, {'loss': loss.item(), 'flow_t_mean': t.mean().item()}
