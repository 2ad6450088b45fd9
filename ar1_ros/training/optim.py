"""AdamW with per-module lr multipliers and decoupled weight decay on matrices only.

Groups are keyed by (lr multiplier, decayed or not); each group keeps the names of its
parameters ('names'), so optimizer state can be saved and checked by name (training.state).

Weight decay rule: a trainable parameter with ndim >= 2 decays, one with ndim < 2 does not.
So biases and norm scales (RMSNorm/LayerNorm weights, all 1-D) are never pulled towards 0,
which would shift activations rather than regularize; embeddings and linear/conv kernels
(>= 2-D) decay. This is what transformers' Trainer does by default (it excludes biases and
LayerNorm-family weights, keeps embeddings) without a list of layer types to maintain.
"""
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import torch

from .distributed import unwrap


def _multiplier(name: str, lr_multipliers: Mapping[str, float]) -> float:
    """Return the multiplier of the longest prefix that matches `name` on a dot boundary."""
    # Dot boundary: 'vlm.model.visual' matches 'vlm.model.visual.blocks.0.w', not '...visual2'.
    hits = [p for p in lr_multipliers if name == p or name.startswith(p.rstrip('.') + '.')]
    return float(lr_multipliers[max(hits, key=len)]) if hits else 1.0


def param_groups(named_params: Iterable[Tuple[str, torch.nn.Parameter]], *, lr: float,
                 weight_decay: float, lr_multipliers: Mapping[str, float]) -> List[dict]:
    """Split trainable parameters into AdamW groups by lr multiplier and weight decay.

    Args:
        named_params: (name, parameter) pairs, e.g. `model.named_parameters()`; parameters with
            requires_grad False are left out.
        lr: peak learning rate for multiplier 1.0.
        weight_decay: decoupled weight decay for parameters with ndim >= 2 (0.0 for the rest).
        lr_multipliers: name prefix -> lr factor, e.g. {'vlm.model.visual': 0.1}; the longest
            matching prefix wins; unmatched parameters get 1.0.

    Returns:
        Groups in first-seen order, each {'params': [...], 'names': [...], 'lr': lr x mult,
        'lr_multiplier': mult, 'weight_decay': wd}; empty combinations are omitted.
    """
    groups: Dict[Tuple[float, bool], dict] = {}
    for name, param in named_params:
        if not param.requires_grad:
            continue
        mult = _multiplier(name, lr_multipliers)
        decay = param.ndim >= 2
        group = groups.setdefault((mult, decay), {
            'params': [], 'names': [], 'lr': lr * mult, 'lr_multiplier': mult,
            'weight_decay': weight_decay if decay else 0.0})
        group['params'].append(param)
        group['names'].append(name)
    return list(groups.values())


def build_optimizer(model: torch.nn.Module, *, lr: float, weight_decay: float,
                    betas: Tuple[float, float], eps: float, lr_multipliers: Mapping[str, float],
                    fused: Optional[bool] = None) -> torch.optim.AdamW:
    """Return AdamW over the model's trainable parameters, grouped by `param_groups`.

    Names are those of the unwrapped model (no DDP 'module.' or torch.compile '_orig_mod.'
    prefix), so state saved under one strategy resumes under another.

    Args:
        model: the model, plain or wrapped by DDP / torch.compile (FSDP2 keeps names).
        lr: peak learning rate for multiplier 1.0.
        weight_decay: decoupled weight decay on parameters with ndim >= 2.
        betas: AdamW (beta1, beta2).
        eps: AdamW epsilon.
        lr_multipliers: name prefix -> lr factor (see `param_groups`).
        fused: use the fused kernel; None: fused exactly when every parameter is on CUDA.

    Returns:
        The optimizer; each group carries 'names' and 'lr_multiplier'.

    Raises:
        ValueError: when the model has no trainable parameter.
    """
    groups = param_groups(unwrap(model).named_parameters(), lr=lr, weight_decay=weight_decay,
                          lr_multipliers=lr_multipliers)
    if not groups:
        raise ValueError('no trainable parameter: every parameter has requires_grad=False '
                         '(check the freezing / LoRA settings)')
    if fused is None:
        fused = all(p.is_cuda for g in groups for p in g['params'])
    # fused=False still selects torch's default (foreach) path; None lets torch decide too.
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps,
                             weight_decay=weight_decay, fused=fused or None)
