"""LoRA adapters (peft) on the backbone's language model, merged away when a checkpoint is saved.

Adapters go into `vlm.model.language_model` only: the vision tower and the expert are left as
they are (the vision tower is trained, if at all, with its own learning-rate multiplier). A
saved checkpoint must load in the node with the official tensor names, so `merged_state_dict`
folds W + scale * B @ A back into each adapted weight; the adapter tensors themselves are kept
in the trainer state for resuming.
"""
import contextlib
from typing import Dict, Iterator

from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
import torch

from ar1_ros.model.network import AR1Network
from ar1_ros.training.config import LoraSection

ADAPTER = 'default'
_BASE = '.base_layer'


def add_lora(net: AR1Network, section: LoraSection) -> int:
    """Inject LoRA adapters into the backbone's language model; return the adapted layers.

    Only adapter weights require grad afterwards (peft freezes the rest of the language model).
    """
    config = LoraConfig(r=section.r, lora_alpha=section.alpha, lora_dropout=section.dropout,
                        target_modules=list(section.target_modules), bias='none')
    language = net.vlm.model.language_model
    try:
        inject_adapter_in_model(config, language, adapter_name=ADAPTER)
    except ValueError as exc:
        raise ValueError(f'lora.target_modules {list(section.target_modules)}: {exc}') from exc
    layers = [m for m in language.modules() if isinstance(m, LoraLayer)]
    for layer in layers:  # adapters train in float32 even on a bf16 backbone
        layer.lora_A.float()
        layer.lora_B.float()
    return len(layers)


def has_lora(net: torch.nn.Module) -> bool:
    """Return True if any LoRA adapter is present in `net`."""
    return any(isinstance(m, LoraLayer) for m in net.modules())


@contextlib.contextmanager
def adapters_disabled(net: torch.nn.Module) -> Iterator[None]:
    """Run the base model: every adapter switched off inside the block (the GRPO reference)."""
    layers = [m for m in net.modules() if isinstance(m, LoraLayer)]
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer in layers:
            layer.enable_adapters(True)


def adapter_state(net: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """Return the adapter tensors only, by parameter name (for the trainer state)."""
    return {n: p.detach() for n, p in net.named_parameters() if '.lora_' in n}


def merged_state_dict(state: Dict[str, torch.Tensor], scaling: float) -> Dict[str, torch.Tensor]:
    """Return a full state dict with adapters folded in, under the official names.

    `<layer>.base_layer.weight` becomes `<layer>.weight` = W + scaling * B @ A (computed in
    float32 from the state itself, so it works on weights gathered from any engine); adapter
    tensors are dropped. Without adapters the state is returned unchanged. scaling = alpha / r.
    """
    merged = {}
    for key, value in state.items():
        if '.lora_' in key:
            continue
        if key.endswith(_BASE + '.weight'):
            layer = key[:-len(_BASE + '.weight')]
            down = state[f'{layer}.lora_A.{ADAPTER}.weight'].float()
            up = state[f'{layer}.lora_B.{ADAPTER}.weight'].float()
            value = (value.float() + scaling * (up @ down)).to(value.dtype)
        merged[key.replace(_BASE + '.', '.')] = value
    return merged
