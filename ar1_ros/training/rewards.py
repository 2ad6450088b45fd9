"""Rewards of GRPO post-training (spec §9.3, §9.4): trajectory error, comfort, consistency.

The official reward (Cosmos-RL recipe, `rewards/aggregated_reward.py`) is

    r = -0.4 ADE / 3 + 0.1 comfort   if ADE < 3 m,   else r = -1,

with comfort in [-1, 0]. We add a consistency term, weight 0.2 by default: 0 when the
trajectory does what its chain of causation says (data.meta_actions.compatible), -1 when it
does not or when the text states no decision. `RewardWeights.official()` (consistency 0) gives
the official reward. The recipes' reasoning variant is not reproduced: it needs an external
grader and its sign rewards worse reasoning inside the gate (spec §12.9).

All rewards are per completion: a group of G completions of one prompt gives (G,) tensors.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from ar1_ros.data.meta_actions import (
    DEFAULT_RULES,
    MetaActionRules,
    compatible,
    meta_actions_from_controls,
)
from ar1_ros.runtime.comfort import BOUNDS, comfort_checks

Tensor = torch.Tensor


@dataclass(frozen=True)
class RewardWeights:
    """Weights and ADE gate of the aggregated reward.

    Attributes:
        traj_l2: float, weight of -ADE / ade_scale_m (official 0.4).
        comfort: float, weight of the comfort score in [-1, 0] (official 0.1).
        consistency: float, weight of the consistency score in {-1, 0}. Ours, default 0.2;
            the official reward has no such term (use `official()`).
        ade_gate_m: float, a completion with ADE >= this [m] (or NaN) gets reward -1.
        ade_scale_m: float, ADE normaliser [m] (official 3.0).

    """

    traj_l2: float = 0.4
    comfort: float = 0.1
    consistency: float = 0.2
    ade_gate_m: float = 3.0
    ade_scale_m: float = 3.0

    @classmethod
    def official(cls) -> 'RewardWeights':
        """Return the official weights: 0.4 / 0.1, no consistency term."""
        return cls(consistency=0.0)


DEFAULT_WEIGHTS = RewardWeights()


def _float_dtype(*tensors: Tensor) -> torch.dtype:
    """Return float64 if any tensor is float64, else float32 (half inputs are promoted)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _device_of(values) -> Optional[torch.device]:
    """Return the device of a tensor, None (CPU) for other array-likes."""
    return values.device if isinstance(values, Tensor) else None


def trajectory_reward(pred_xy, gt_xy) -> Tensor:
    """Return the official ADE of each predicted trajectory: mean over t of the XY L2 error.

    Args:
        pred_xy: (G, T, 2) predicted positions [m] (xyz (G, T, 3) works: only x, y are used).
        gt_xy: (T, 2) ground-truth positions [m] (or (T, 3)), broadcast over G.

    Returns:
        Tensor (G,) ADE [m], float64 when an input is float64, else float32.

    Raises:
        ValueError: if the time axes differ.

    """
    pred_xy, gt_xy = torch.as_tensor(pred_xy), torch.as_tensor(gt_xy)
    if pred_xy.shape[-2] != gt_xy.shape[-2]:
        raise ValueError(f'pred {tuple(pred_xy.shape)} and gt {tuple(gt_xy.shape)} differ in T')
    dtype = _float_dtype(pred_xy, gt_xy)
    error = pred_xy[..., :2].to(dtype) - gt_xy[..., :2].to(device=pred_xy.device, dtype=dtype)
    return torch.linalg.vector_norm(error, dim=-1).mean(dim=-1)


def comfort_score(xyz, rot, dt: float = 0.1) -> Tensor:
    """Return the official comfort score: mean of the six binary checks (spec §9.4) minus 1.

    The checks are the evaluation's (comfort_checks: finite differences over dt with the last
    value repeated, starting at the first future point, strict bounds), so metrics and reward
    agree. 0 when every check passes, -1/6 per failed check.

    Args:
        xyz: (G, T, 3) positions [m] in the t0 frame. Array or tensor.
        rot: (G, T, 3, 3) rotations.
        dt: step [s] (0.1 s: the 10 Hz of the spec).

    Returns:
        Tensor (G,) float32 in [-1, 0], on xyz's device.

    Raises:
        ValueError: if the shapes are not (G, T, 3) and (G, T, 3, 3).

    """
    device = _device_of(xyz)
    xyz_np = xyz.detach().cpu().double().numpy() if isinstance(xyz, Tensor) else np.asarray(xyz)
    rot_np = rot.detach().cpu().double().numpy() if isinstance(rot, Tensor) else np.asarray(rot)
    if xyz_np.ndim != 3 or rot_np.shape != xyz_np.shape[:2] + (3, 3):
        raise ValueError(f'comfort_score needs xyz (G, T, 3) and rot (G, T, 3, 3), got '
                         f'{xyz_np.shape} and {rot_np.shape}')
    scores = []
    for path, rotations in zip(xyz_np, rot_np, strict=True):
        checks = comfort_checks(path, rotations, dt)
        scores.append(sum(checks[name] for name in BOUNDS) / len(BOUNDS) - 1.0)
    return torch.tensor(scores, dtype=torch.float32, device=device)


def consistency_score(decisions: Sequence[str], accel, curvature, v0: float, dt: float = 0.1,
                      rules: MetaActionRules = DEFAULT_RULES) -> Tensor:
    """Return 0 where a completion's trajectory agrees with its stated decision, else -1.

    A completion without a parsable decision ('' or an unknown one) scores -1 too, so the
    policy is pushed to state one. The trajectory's meta-action comes from its controls
    (data.meta_actions.meta_actions_from_controls), the agreement from `compatible`.

    Args:
        decisions: G decisions, each parse_decision(coc_text) (one of DECISIONS or '').
        accel: (G, 64) accelerations [m/s²] (physical, denormalised). Array or tensor.
        curvature: (G, 64) curvatures [1/m].
        v0: speed at t0 [m/s].
        dt: step [s].
        rules: meta-action thresholds.

    Returns:
        Tensor (G,) float32 with values in {-1, 0}, on accel's device.

    Raises:
        ValueError: if len(decisions) differs from G, or the controls are not (G, N).

    """
    metas = meta_actions_from_controls(accel, curvature, v0, dt, rules)
    if len(decisions) != len(metas):
        raise ValueError(f'{len(decisions)} decisions for {len(metas)} trajectories')
    pairs = zip(decisions, metas, strict=True)
    scores = [0.0 if compatible(decision, meta) is True else -1.0 for decision, meta in pairs]
    return torch.tensor(scores, dtype=torch.float32, device=_device_of(accel))


def aggregate_reward(ade: Tensor, comfort: Tensor, consistency: Optional[Tensor],
                     weights: RewardWeights = DEFAULT_WEIGHTS) -> Tensor:
    """Return the gated reward of each completion.

    r = -w_l2 ADE / scale + w_c comfort + w_k consistency where ADE < gate, else -1.0 (a NaN
    ADE, e.g. an undecodable trajectory, is gated too).

    Args:
        ade: (G,) ADE [m].
        comfort: (G,) comfort score in [-1, 0].
        consistency: (G,) consistency score in {-1, 0}, or None (counts 0; for weight 0).
        weights: weights and gate.

    Returns:
        Tensor (G,) in ade's dtype.

    """
    comfort = comfort.to(ade)
    shaped = -weights.traj_l2 * ade / weights.ade_scale_m + weights.comfort * comfort
    if consistency is not None:
        shaped = shaped + weights.consistency * consistency.to(ade)
    return torch.where(ade < weights.ade_gate_m, shaped, torch.full_like(shaped, -1.0))


@dataclass(frozen=True)
class RewardBreakdown:
    """The per-term rewards of one group, for logging.

    Attributes:
        ade: Tensor (G,) ADE [m].
        comfort: Tensor (G,) comfort score in [-1, 0].
        consistency: Tensor (G,) consistency score in {-1, 0}.
        reward: Tensor (G,) aggregated reward.
        gated: Tensor (G,) bool, True where ADE failed the gate (reward -1).

    """

    ade: Tensor
    comfort: Tensor
    consistency: Tensor
    reward: Tensor
    gated: Tensor

    @classmethod
    def from_terms(cls, ade: Tensor, comfort: Tensor, consistency: Tensor,
                   weights: RewardWeights = DEFAULT_WEIGHTS) -> 'RewardBreakdown':
        """Return the breakdown of the terms (G,) each, the reward from aggregate_reward."""
        return cls(ade=ade, comfort=comfort.to(ade), consistency=consistency.to(ade),
                   reward=aggregate_reward(ade, comfort, consistency, weights),
                   gated=~(ade < weights.ade_gate_m))

    def stats(self, prefix: str = 'reward/') -> Dict[str, float]:
        """Return group means {prefix + name: float}; the ADE mean skips non-finite values."""
        finite = self.ade[torch.isfinite(self.ade)]
        return {f'{prefix}ade': float(finite.mean()) if finite.numel() else float('nan'),
                f'{prefix}comfort': float(self.comfort.float().mean()),
                f'{prefix}consistency': float(self.consistency.float().mean()),
                f'{prefix}total': float(self.reward.float().mean()),
                f'{prefix}gated_fraction': float(self.gated.float().mean())}
