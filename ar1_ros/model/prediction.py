"""The result of `AR1Model.predict` and the checks on its inputs."""
import dataclasses
from typing import Dict, List, Optional, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]
N_HISTORY = 16
# Where predict resizes and normalises the images: 'cpu' (the official pipeline's place) or
# 'model' (the weights' device, a GPU's speed); None means 'cpu'.
PREPROCESS_DEVICES = ('cpu', 'model')


@dataclasses.dataclass
class Prediction:
    """Trajectories and reasoning for S samples, in the ego frame at t0.

    trajectory_xyz (S, 64, 3) m, trajectory_rot (S, 64, 3, 3), actions (S, 64, 2) as
    (acceleration m/s², curvature 1/m); point i is at t0 + (i+1)·dt. reasoning: S CoC strings;
    token_ids: S lists of generated ids; timings: seconds per stage (monotonic clock);
    stop_found (S,): False where a sample never produced `<|traj_future_start|>` and the
    expert conditioned on everything generated (the official fallback).
    """

    trajectory_xyz: torch.Tensor
    trajectory_rot: torch.Tensor
    actions: torch.Tensor
    reasoning: List[str]
    token_ids: List[List[int]]
    timings: Dict[str, float]
    stop_found: List[bool]
    normalized_actions: Optional[torch.Tensor] = None  # (S, 64, 2) flow-matching output


def as_tensor(value: ArrayLike, name: str) -> torch.Tensor:
    """Convert a numpy array or tensor to a CPU tensor; other types raise TypeError."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    raise TypeError(f'{name} must be a numpy array or torch tensor, got {type(value).__name__}')


def check_images(images: ArrayLike) -> torch.Tensor:
    """Validate images uint8 (n_cameras, n_frames, H, W, 3); return them as (N, H, W, 3)."""
    images = as_tensor(images, 'images')
    if images.dtype != torch.uint8:
        raise ValueError(f'images must be uint8 RGB, got {images.dtype}')
    if images.ndim != 5 or images.shape[-1] != 3:
        raise ValueError(
            f'images must be (n_cameras, n_frames, H, W, 3), got {tuple(images.shape)}')
    if images.shape[0] < 1 or images.shape[1] < 1:
        raise ValueError(f'images has no camera or no frame: {tuple(images.shape)}')
    return images.reshape(-1, *images.shape[2:])


def check_history(xyz: ArrayLike, rot: ArrayLike) -> tuple:
    """Validate the ego history (16, 3) and (16, 3, 3) in the t0 frame; return float32 tensors."""
    xyz = as_tensor(xyz, 'ego_history_xyz').to(torch.float32)
    rot = as_tensor(rot, 'ego_history_rot').to(torch.float32)
    if tuple(xyz.shape) != (N_HISTORY, 3):
        raise ValueError(f'ego_history_xyz must be ({N_HISTORY}, 3), got {tuple(xyz.shape)}')
    if tuple(rot.shape) != (N_HISTORY, 3, 3):
        raise ValueError(f'ego_history_rot must be ({N_HISTORY}, 3, 3), got {tuple(rot.shape)}')
    if not (torch.isfinite(xyz).all() and torch.isfinite(rot).all()):
        raise ValueError('ego history contains NaN or infinite values')
    return xyz, rot


def check_noise(noise: Optional[ArrayLike], num_samples: int,
                dims: tuple) -> Optional[torch.Tensor]:
    """Validate optional initial flow noise (num_samples, 64, 2); return float32 or None."""
    if noise is None:
        return None
    noise = as_tensor(noise, 'noise').to(torch.float32)
    if tuple(noise.shape) != (num_samples, *dims):
        raise ValueError(f'noise must be ({num_samples}, {dims[0]}, {dims[1]}), '
                         f'got {tuple(noise.shape)}')
    if not torch.isfinite(noise).all():
        raise ValueError('noise contains NaN or infinite values')
    return noise


def check_preprocess_device(value: Optional[str]) -> str:
    """Return 'cpu' for None or 'cpu', 'model' for 'model'; ValueError naming the choices."""
    if value is None:
        return 'cpu'
    if value not in PREPROCESS_DEVICES:
        raise ValueError(f'preprocess_device must be None or one of {PREPROCESS_DEVICES}, '
                         f'got {value!r}')
    return value
