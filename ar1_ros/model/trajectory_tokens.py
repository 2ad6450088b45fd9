"""Discrete trajectory tokenizers of AR1 (spec §5): history deltas and future actions.

Both return *bins* in [0, num_bins); the caller adds the token-id offsets (future bins start at
``<i0>``, history bins after the future vocabulary).
"""
import math
from typing import Any, Mapping, Sequence, Tuple

import torch

from .action_space import UnicycleAccelCurvatureActionSpace, work_dtype

Tensor = torch.Tensor


def quantize(value: Tensor, low: Tensor, high: Tensor, num_bins: int) -> Tensor:
    """Map value to int64 bins: clamp(round((value - low) / (high - low) (num_bins - 1))).

    The operation order is the official one and ``torch.round`` rounds half to even, so bins
    match the release exactly, including values that land on a half-bin boundary.
    """
    unit = (value - low) / (high - low)
    return (unit * (num_bins - 1)).round().long().clamp(0, num_bins - 1)


class DeltaTrajectoryTokenizer:
    """History tokenizer: per-step xyz displacement bins, 3 tokens per pose (x y z interleaved).

    Quirk kept on purpose (the released weights expect it): a zero point is prepended, so the
    first "delta" is the absolute oldest position (about -1.5 s x speed) and saturates at bin 0
    above about 2.7 m/s.
    """

    def __init__(self, ego_xyz_min: Sequence[float] = (-4, -4, -10),
                 ego_xyz_max: Sequence[float] = (4, 4, 10), ego_yaw_min: float = -math.pi,
                 ego_yaw_max: float = math.pi, num_bins: int = 1000, predict_yaw: bool = False):
        if predict_yaw:
            raise ValueError('DeltaTrajectoryTokenizer(predict_yaw=True) is not supported: the '
                             'AR1 release tokenizes the history without yaw (predict_yaw=False)')
        if len(ego_xyz_min) != 3 or len(ego_xyz_max) != 3:
            raise ValueError('ego_xyz_min and ego_xyz_max need 3 values (x, y, z)')
        self.ego_xyz_min = tuple(float(v) for v in ego_xyz_min)
        self.ego_xyz_max = tuple(float(v) for v in ego_xyz_max)
        self.ego_yaw_min = float(ego_yaw_min)
        self.ego_yaw_max = float(ego_yaw_max)
        self.num_bins = int(num_bins)
        self.predict_yaw = False

    @property
    def vocab_size(self) -> int:
        """Return the number of distinct bins (num_bins)."""
        return self.num_bins

    def encode(self, hist_xyz: Tensor) -> Tensor:
        """Tokenize ego history positions.

        Args:
            hist_xyz: (..., T, 3) history positions in the t0 frame (T = 16 for AR1).

        Returns:
            torch.Tensor: (..., 3 T) int64 bins, ordered x0 y0 z0 x1 y1 z1 ...

        """
        padded = torch.nn.functional.pad(hist_xyz, (0, 0, 1, 0))
        deltas = padded[..., 1:, :] - padded[..., :-1, :]
        low = torch.tensor(self.ego_xyz_min, dtype=deltas.dtype, device=deltas.device)
        high = torch.tensor(self.ego_xyz_max, dtype=deltas.dtype, device=deltas.device)
        return quantize(deltas, low, high, self.num_bins).flatten(-2)


class DiscreteTrajectoryTokenizer:
    """Future tokenizer: bins of the normalised action (accel, curvature), 2 tokens per step.

    It owns its own action space, built from its own ``action_space_cfg`` (whose normalisation
    may differ from the expert's); keys starting with '_' (Hydra's ``_target_``,
    ``_recursive_``) are ignored.
    """

    def __init__(self, action_space_cfg: Mapping[str, Any], dims_min: Sequence[float],
                 dims_max: Sequence[float], num_bins: int):
        cfg = {k: v for k, v in dict(action_space_cfg).items() if not k.startswith('_')}
        self.action_space = UnicycleAccelCurvatureActionSpace(**cfg)
        channels = self.action_space.get_action_space_dims()[-1]
        if len(dims_min) != channels or len(dims_max) != channels:
            raise ValueError(f'dims_min and dims_max need {channels} values, got '
                             f'{list(dims_min)} and {list(dims_max)}')
        self.dims_min = tuple(float(v) for v in dims_min)
        self.dims_max = tuple(float(v) for v in dims_max)
        self.num_bins = int(num_bins)

    @property
    def vocab_size(self) -> int:
        """Return the number of distinct bins (num_bins)."""
        return self.num_bins

    def _range(self, like: Tensor) -> Tuple[Tensor, Tensor]:
        """Return (dims_min, dims_max) as (2,) tensors in like's dtype and device."""
        return (torch.tensor(self.dims_min, dtype=like.dtype, device=like.device),
                torch.tensor(self.dims_max, dtype=like.dtype, device=like.device))

    def encode(self, hist_xyz: Tensor, hist_rot: Tensor, fut_xyz: Tensor,
               fut_rot: Tensor) -> Tensor:
        """Tokenize a future trajectory through its fitted action.

        Args:
            hist_xyz: (B, T, 3) history positions (t0 frame).
            hist_rot: (B, T, 3, 3) history rotations.
            fut_xyz: (B, 64, 3) future positions.
            fut_rot: (B, 64, 3, 3) future rotations.

        Returns:
            torch.Tensor: (B, 128) int64 bins, interleaved a0 k0 a1 k1 ...

        """
        action = self.action_space.traj_to_action(hist_xyz, hist_rot, fut_xyz, fut_rot)
        low, high = self._range(action)
        return quantize(action, low, high, self.num_bins).flatten(-2)

    def decode(self, bins: Tensor, hist_xyz: Tensor, hist_rot: Tensor) -> Tuple[Tensor, Tensor]:
        """Turn bins back into a trajectory (bin centres -> action -> unicycle rollout).

        Args:
            bins: (B, 128) integer bins, interleaved a0 k0 a1 k1 ...
            hist_xyz: (B, T, 3) history positions (t0 speed is estimated from it).
            hist_rot: (B, T, 3, 3) history rotations.

        Returns:
            tuple: xyz (B, 64, 3) and rot (B, 64, 3, 3).

        """
        action = self.bins_to_action(bins, work_dtype(hist_xyz))
        return self.action_space.action_to_traj(action, hist_xyz, hist_rot)

    def bins_to_action(self, bins: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """Return the normalised action (B, 64, 2) at the bin centres of bins (B, 128)."""
        dims = self.action_space.get_action_space_dims()
        # float32 at least: bf16 cannot hold bin indices up to 2999 exactly.
        action = bins.reshape(*bins.shape[:-1], *dims).to(dtype)
        low, high = self._range(action)
        return action / (self.num_bins - 1) * (high - low) + low
