"""Action in-projection: noisy (accel, curvature) + flow time -> expert input embeddings.

Module and parameter names follow the official `PerWaypointActionInProjV2` so that its tensors
(`action_in_proj.encoder.trunk.N.*`, `.sinus.K.freqs`, `.timestep_fourier_encoder.freqs`,
`.norm.*`) load unchanged.
"""
import math
from typing import Sequence

import torch
from torch import nn


class RMSNorm(nn.Module):
    """RMS normalisation computed in float32, then scaled by a learned weight (eps 1e-5)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise the last dimension of x (..., dim)."""
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


class FourierEncoder(nn.Module):
    """Features sqrt(2)·[sin(2πfx), cos(2πfx)] for `dim/2` log-spaced f in [1, max_freq]."""

    def __init__(self, dim: int, max_freq: float = 100.0):
        super().__init__()
        freqs = torch.logspace(0, math.log10(max_freq), steps=dim // 2)
        self.out_dim = dim
        # Persistent, as in the R1 release (its checkpoint stores the buffer).
        self.register_buffer('freqs', freqs[None, :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode x (...) -> (..., dim)."""
        arg = x[..., None] * self.freqs * 2 * torch.pi
        return torch.cat([torch.sin(arg), torch.cos(arg)], -1) * math.sqrt(2)


def _mlp(num_in: int, num_layers: int, hidden: int, out: int) -> nn.Sequential:
    """Linear-SiLU, then (num_layers-1) x [RMSNorm-Linear-SiLU], then RMSNorm-Linear(out)."""
    if num_layers < 1:
        raise ValueError(f'num_enc_layers must be >= 1, got {num_layers}')
    layers = [nn.Linear(num_in, hidden), nn.SiLU()]
    for _ in range(num_layers - 1):
        layers += [RMSNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU()]
    layers += [RMSNorm(hidden), nn.Linear(hidden, out)]
    return nn.Sequential(*layers)


class _Encoder(nn.Module):
    """Holder so that the MLP's tensors are named `encoder.trunk.N` as in the release."""

    def __init__(self, trunk: nn.Sequential):
        super().__init__()
        self.trunk = trunk


class PerWaypointActionInProjV2(nn.Module):
    """Per waypoint: Fourier(accel) | Fourier(curvature) | Fourier(t) -> MLP -> LayerNorm."""

    def __init__(self, in_dims: Sequence[int], out_dim: int, num_enc_layers: int = 4,
                 hidden_size: int = 1024, max_freq: float = 100.0, num_fourier_feats: int = 20):
        super().__init__()
        self.in_dims = tuple(in_dims)
        self.out_dim = out_dim
        self.sinus = nn.ModuleList(
            FourierEncoder(num_fourier_feats, max_freq) for _ in range(self.in_dims[-1]))
        self.timestep_fourier_encoder = FourierEncoder(num_fourier_feats, max_freq)
        num_in = num_fourier_feats * (self.in_dims[-1] + 1)
        self.encoder = _Encoder(_mlp(num_in, num_enc_layers, hidden_size, out_dim))
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Project actions x (B, T, C) at flow times t (B, 1, 1) to embeddings (B, T, out_dim).

        Features are computed in float32 (as the official code does) and the MLP runs in the
        weights' dtype, so bf16 weights need no autocast here.
        """
        batch, steps, _ = x.shape
        x = x.float()
        feats = [enc(x[:, :, i]) for i, enc in enumerate(self.sinus)]
        t_feats = self.timestep_fourier_encoder(t.float().reshape(batch, -1)[:, -1:])
        feats.append(t_feats.expand(batch, steps, -1))
        feats = torch.cat(feats, dim=-1).to(self.norm.weight.dtype)
        return self.norm(self.encoder.trunk(feats.flatten(0, 1)).reshape(batch, steps, -1))
