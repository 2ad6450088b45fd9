"""The AR1 module tree, laid out exactly like the official `AlpamayoR1` state dict.

    vlm              Qwen3-VL (or Qwen2.5-VL) for conditional generation
    expert           the backbone's text model with `expert_cfg` overrides, no token embeddings
    action_space     unicycle (accel, curvature) space; normalisation buffers only
    action_in_proj   Fourier features + MLP -> expert inputs
    action_out_proj  Linear(H_expert, 2) -> flow-matching velocity
`diffusion` (the Euler sampler) and the two trajectory tokenizers hold no tensors: plain
attributes.
"""
import contextlib
from typing import Iterator

import torch
from torch import nn
from transformers import DynamicCache

from ar1_ros.model.backbone import build_expert, build_vlm
from ar1_ros.model.config import AR1Config


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Create parameters on the meta device (no memory, no random init); buffers stay real.

    Buffers such as RoPE inverse frequencies are computed at construction and are not in the
    checkpoint, so they must be real; parameters are all replaced by checkpoint tensors.
    """
    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param) -> None:
        if param is not None:
            param = nn.Parameter(param.to('meta'), requires_grad=param.requires_grad)
        original(module, name, param)

    nn.Module.register_parameter = register
    try:
        yield
    finally:
        nn.Module.register_parameter = original


class AR1Network(nn.Module):
    """All AR1 tensors; inference and training logic live in other modules."""

    def __init__(self, config: AR1Config, vlm_config):
        super().__init__()
        self.config = config
        self.vlm = build_vlm(vlm_config)
        self.expert = build_expert(vlm_config.text_config, config.expert_cfg or {})
        self.action_space = config.build('action_space_cfg')
        # Plain objects (no tensors), as in the official model.
        self.traj_tokenizer = config.build('traj_tokenizer_cfg')
        self.hist_tokenizer = config.build('hist_traj_tokenizer_cfg')
        self.diffusion = config.build('diffusion_cfg')
        hidden = self.expert.config.hidden_size
        dims = (int(self.action_space.n_waypoints), 2)
        self.action_in_proj = config.build('action_in_proj_cfg', in_dims=dims, out_dim=hidden)
        self.action_out_proj = config.build(
            'action_out_proj_cfg', in_features=hidden, out_features=dims[-1])

    @property
    def action_dims(self) -> tuple:
        """(n_waypoints, 2): the shape of one action sample."""
        return (int(self.action_space.n_waypoints), 2)

    def expert_velocity(self, x: torch.Tensor, t: torch.Tensor, cache: DynamicCache,
                        position_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Flow-matching velocity for actions x (B, 64, 2) at times t (B, 1, 1).

        The 64 action tokens run through the expert on top of the backbone's cache (B, ...,
        prefix); their keys/values are appended to it by the attention layers and cropped off
        again, so the cache is unchanged on return. position_ids (3, B, 64); mask is the additive
        float mask (B, 1, 64, prefix + 64).
        """
        prefix = cache.get_seq_length()
        embeds = self.action_in_proj(x, t)
        try:
            out = self.expert(inputs_embeds=embeds, position_ids=position_ids,
                              past_key_values=cache, attention_mask=mask, use_cache=True)
        finally:
            drop_tail(cache, prefix)
        hidden = out.last_hidden_state[:, -x.shape[1]:]
        return self.action_out_proj(hidden).view(x.shape[0], *self.action_dims).float()


def drop_tail(cache: DynamicCache, length: int) -> None:
    """Shorten every layer of `cache` back to `length` positions."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        # transformers 5 crops by a negative count of tokens to remove (4.x took a length).
        cache.crop(-extra)
