"""The model a training run starts from, and which of its parameters each stage trains.

| stage  | trains                                   | frozen                   |
|--------|------------------------------------------|--------------------------|
| vlm    | the backbone (or its LoRA adapters)      | expert, action projections |
| expert | expert, action_in_proj, action_out_proj  | the backbone (no grad)   |
| grpo   | the backbone (or its LoRA adapters)      | expert, action projections |

Trainable parameters are kept in float32 (master weights) whatever `model.dtype` the frozen
ones use; bf16 autocast does the mixed precision on devices that support it.
"""
from typing import List

import torch

from ar1_ros.model.api import AR1Model
from ar1_ros.training.config import TrainConfig
from ar1_ros.training.lora import add_lora

TRAINABLE_PREFIXES = {
    'vlm': ('vlm.',),
    'expert': ('expert.', 'action_in_proj.', 'action_out_proj.'),
    'grpo': ('vlm.',),
}


def pick_device(name: str) -> torch.device:
    """Return the training device: 'auto' is CUDA when available, else CPU."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    return torch.device(name)


def load_start_model(config: TrainConfig, device: torch.device) -> AR1Model:
    """Load the released AR1 checkpoint, or build a new AR1 around a base VLM."""
    section = config.model
    dtype = getattr(torch, section.dtype)
    if section.checkpoint is not None:
        return AR1Model.from_pretrained(section.checkpoint, dtype=dtype, device=device,
                                        vlm_path=section.vlm_path)
    from ar1_ros.model.factory import new_ar1_model  # noqa: PLC0415 - only for new models
    return new_ar1_model(section.base_vlm, dtype=dtype, device=device,
                         expert_cfg=section.expert_cfg, overrides=section.overrides,
                         random_vlm=section.random_vlm, seed=config.train.seed)


def prepare_trainable(model: AR1Model, config: TrainConfig) -> List[str]:
    """Set requires_grad and train/eval modes for the stage; return the trainable names."""
    net = model.network
    net.requires_grad_(False).eval()
    if config.lora.enabled:
        add_lora(net, config.lora)
    else:
        for name, param in net.named_parameters():
            param.requires_grad_(name.startswith(TRAINABLE_PREFIXES[config.stage]))
    names = [n for n, p in net.named_parameters() if p.requires_grad]
    if not names:
        raise ValueError(f'stage {config.stage}: no trainable parameter')
    for param in net.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()
    for prefix in TRAINABLE_PREFIXES[config.stage]:
        net.get_submodule(prefix.rstrip('.')).train()
    if config.train.gradient_checkpointing and config.stage != 'expert':
        net.vlm.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={'use_reentrant': False})
    return names


def autocast_dtype(config: TrainConfig, device: torch.device):
    """Return the autocast dtype (torch.bfloat16) or None for plain float32."""
    precision = config.train.precision
    if precision == 'auto':
        supported = device.type == 'cuda' and torch.cuda.is_bf16_supported()
        precision = 'bf16' if supported else 'fp32'
    if precision == 'bf16' and device.type == 'cpu':
        raise ValueError('train.precision bf16 needs a GPU here (CPU autocast is slow and '
                         'not what the release used); use fp32 or auto')
    if precision == 'fp32' and config.model.dtype != 'float32':
        # Frozen bf16 weights next to float32 trainable ones only mix under autocast.
        raise ValueError(f'model.dtype {config.model.dtype} needs train.precision bf16 (on a '
                         'GPU); on the CPU use model.dtype float32')
    return torch.bfloat16 if precision == 'bf16' else None
