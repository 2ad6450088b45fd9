"""GRPO post-training of the backbone (spec §9.3), as a module an engine can wrap.

Per prompt (the inference prompt of one dataset sample): sample a group of completions
(grpo_rollout), decode each one's 128 trajectory tokens with the future tokenizer, score them
(training.rewards: the official ADE-gated trajectory + comfort reward, plus the consistency of
the CoC's decision with the trajectory's own meta-action), turn the group's rewards into
advantages and take the clipped policy-gradient loss (training.grpo_math). One policy update
per rollout (the official `mu_iterations=1`): the old log-probabilities are the current ones,
detached, so the ratio is 1 and clipping matters only with more iterations.
With LoRA, the reference policy of the KL term is the backbone with its adapters switched off;
without LoRA, kl_beta must be 0 (the official value): no second copy of the backbone is kept.
"""
import dataclasses
from typing import Dict, List, Tuple

import numpy as np
import torch
from torch import nn

from ar1_ros.model.inference import Preprocessor
from ar1_ros.model.network import AR1Network
from ar1_ros.model.prompt import decode_reasoning
from ar1_ros.model.rope import mrope_positions
from ar1_ros.runtime.presentation import parse_decision
from ar1_ros.training import grpo_math, rewards
from ar1_ros.training.config import GrpoSection
from ar1_ros.training.grpo_rollout import (
    Completions,
    future_bins,
    phase_mask,
    reasoning_ids,
    sample_group,
)
from ar1_ros.training.lora import adapters_disabled, has_lora

Tensor = torch.Tensor


@dataclasses.dataclass
class GrpoPrompt:
    """One prompt and its sample's ground truth.

    input_ids (1, L) with the history fused, pixel_values and image_grid_thw as the backbone
    takes them; the sample's history (16, 3) / (16, 3, 3) and future (64, 3) in the t0 frame.
    """

    input_ids: Tensor
    pixel_values: Tensor
    image_grid_thw: Tensor
    history_xyz: Tensor
    history_rot: Tensor
    future_xyz: Tensor


def build_prompt(parts, pre: Preprocessor, sample) -> GrpoPrompt:
    """Build the inference prompt of a dataset sample (data.dataset_shards.TrainingSample)."""
    xyz = torch.as_tensor(np.asarray(sample.ego_history_xyz), dtype=torch.float32)
    rot = torch.as_tensor(np.asarray(sample.ego_history_rot), dtype=torch.float32)
    images = torch.as_tensor(np.asarray(sample.images))
    hist_ids = pre.history_token_ids(xyz, parts.hist_tokenizer)
    ids, pixels, grid = pre.prompt(images.reshape(-1, *images.shape[-3:]), hist_ids)
    future = torch.as_tensor(np.asarray(sample.ego_future_xyz), dtype=torch.float32)
    return GrpoPrompt(ids, pixels, grid, xyz, rot, future)


class GrpoObjective(nn.Module):
    """forward(prompts) -> (loss, logs) for a list of GrpoPrompt."""

    def __init__(self, net: AR1Network, pre: Preprocessor, section: GrpoSection,
                 generator: torch.Generator = None):
        super().__init__()
        if section.kl_beta > 0 and not has_lora(net):
            raise ValueError('grpo.kl_beta > 0 needs lora.enabled (the reference policy is the '
                             'backbone without its adapters)')
        self.net, self.pre, self.section, self.generator = net, pre, section, generator
        self.weights = rewards.RewardWeights(
            traj_l2=section.traj_l2_weight, comfort=section.comfort_weight,
            consistency=section.consistency_weight)

    def rollout(self, prompt: GrpoPrompt) -> Tuple[Completions, Dict[str, Tensor]]:
        """Sample one group and score it; returns (completions, reward terms (G,))."""
        device = self.net.action_out_proj.weight.device
        ids = self.pre.ids
        was_training = self.net.vlm.training
        self.net.vlm.eval()
        try:
            done = sample_group(
                self.net.vlm, prompt.input_ids.to(device),
                prompt.pixel_values.to(device, self.net.vlm.dtype),
                prompt.image_grid_thw.to(device), self.section.group_size, ids,
                n_future=int(self.net.config.tokens_per_future_traj),
                max_reasoning=self.section.max_reasoning_tokens,
                temperature=self.section.temperature, generator=self.generator)
        finally:
            self.net.vlm.train(was_training)
        return done, self.score(done, prompt)

    def score(self, done: Completions, prompt: GrpoPrompt) -> Dict[str, Tensor]:
        """Reward terms of each completion of a group (G,)."""
        group = done.tokens.shape[0]
        hist_xyz = prompt.history_xyz[None].expand(group, -1, -1).cpu()
        hist_rot = prompt.history_rot[None].expand(group, -1, -1, -1).cpu()
        bins = future_bins(done, self.pre.ids).cpu()
        tokenizer = self.net.traj_tokenizer
        xyz, rot = tokenizer.decode(bins, hist_xyz, hist_rot)
        accel, curvature = tokenizer.action_space.denormalize(
            tokenizer.bins_to_action(bins, hist_xyz.dtype))
        texts = [decode_reasoning(self.pre.tokenizer, row + [self.pre.ids.cot_end])
                 for row in reasoning_ids(done)]
        v0 = float(tokenizer.action_space.estimate_t0_states(hist_xyz[:1], hist_rot[:1])['v'])
        ade = rewards.trajectory_reward(xyz[..., :2].float(), prompt.future_xyz[:, :2].cpu())
        comfort = rewards.comfort_score(xyz.float(), rot.float())
        consistency = rewards.consistency_score([parse_decision(t) for t in texts],
                                                accel.float(), curvature.float(), v0)
        total = rewards.aggregate_reward(ade, comfort, consistency, self.weights)
        return {'reward': total, 'ade': ade, 'comfort': comfort, 'consistency': consistency}

    def policy_logprobs(self, prompt: GrpoPrompt, done: Completions) -> Tensor:
        """Log-probabilities (G, T) of the completion tokens under the sampling masks."""
        device = self.net.action_out_proj.weight.device
        group, length = done.tokens.shape
        prompt_len = prompt.input_ids.shape[1]
        ids = torch.cat([prompt.input_ids.to(device).expand(group, -1), done.tokens], 1)
        positions, delta = mrope_positions(prompt.input_ids, prompt.image_grid_thw,
                                           self.net.vlm.config.image_token_id,
                                           self.net.vlm.config.vision_config.spatial_merge_size)
        tail = torch.arange(prompt_len, prompt_len + length) + delta
        positions = torch.cat([positions, tail.expand(3, 1, -1)], 2).expand(3, group, -1)
        attention = torch.cat([torch.ones(group, prompt_len, dtype=torch.long, device=device),
                               (done.phase != 2).long()], 1)
        out = self.net.vlm.model(
            input_ids=ids, attention_mask=attention, position_ids=positions.to(device),
            pixel_values=prompt.pixel_values.to(device, self.net.vlm.dtype).repeat(group, 1),
            image_grid_thw=prompt.image_grid_thw.to(device).repeat(group, 1))
        hidden = out.last_hidden_state[:, prompt_len - 1:-1]
        logits = phase_mask(self.net.vlm.lm_head(hidden).float(), done.phase, self.pre.ids)
        return grpo_math.sequence_logprobs(logits, done.tokens, self.section.temperature)

    def forward(self, prompts: List[GrpoPrompt]) -> Tuple[Tensor, Dict[str, float]]:
        """Roll out, score and return the mean GRPO loss over the prompts, with logs."""
        groups = [self.rollout(p) for p in prompts]
        rewards_pg = torch.stack([terms['reward'] for _, terms in groups])
        advantages = grpo_math.group_advantages(rewards_pg)
        losses, logs = [], {}
        for (done, terms), prompt, adv in zip(groups, prompts, advantages, strict=True):
            logp = self.policy_logprobs(prompt, done)
            mask = done.sampled & (done.phase != 2)
            ref = self._reference_logprobs(prompt, done)
            loss, stats = grpo_math.grpo_loss(
                logp, logp.detach(), adv.to(logp.device), mask, eps_low=self.section.eps_low,
                eps_high=self.section.eps_high, ref_logp=ref, kl_beta=self.section.kl_beta,
                token_mean=self.section.token_mean)
            losses.append(loss)
            for key, value in {**stats, **{k: v.mean() for k, v in terms.items()}}.items():
                logs[key] = logs.get(key, 0.0) + float(value) / len(prompts)
        loss = torch.stack(losses).mean()
        logs['loss'] = loss.item()
        return loss, logs

    def _reference_logprobs(self, prompt: GrpoPrompt, done: Completions):
        if self.section.kl_beta <= 0:
            return None
        with torch.no_grad(), adapters_disabled(self.net):
            return self.policy_logprobs(prompt, done)
