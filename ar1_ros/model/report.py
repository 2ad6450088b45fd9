"""Check a checkpoint folder without loading its weights (headers only, model on `meta`).

Lets an engineer verify a downloaded release (tens of GB) in seconds, before taking it to the
vehicle: same checks as `AR1Model.from_pretrained`, no tensor data read, no GPU needed.
"""
import dataclasses
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from ar1_ros.model import checkpoint
from ar1_ros.model.api import build_network
from ar1_ros.model.backbone import resolve_backbone
from ar1_ros.model.config import load_config


@dataclasses.dataclass(frozen=True)
class CheckpointReport:
    """What `check_checkpoint` found; it raises CheckpointError instead of reporting problems."""

    folder: Path
    backbone_type: str
    backbone_folder: Path
    backbone_origin: str
    has_tokenizer: bool
    tensor_count: int
    stored_dtypes: Tuple[str, ...]
    parameters: Dict[str, int]  # per top-level module (vlm, expert, action_in_proj, ...)
    expert: Dict[str, int]  # hidden_size, intermediate_size, heads, layers of the expert


def check_checkpoint(path, vlm_path: Optional[Path] = None) -> CheckpointReport:
    """Validate config, backbone and tensor names/shapes of a checkpoint; return a report."""
    folder = Path(path)
    config = load_config(folder)
    source = resolve_backbone(config.vlm_name_or_path, folder, vlm_path)
    with torch.device('meta'):
        network = build_network(config, source, torch.bfloat16)
    found = checkpoint.read_shapes(folder)
    checkpoint.check_shapes(network, {k: shape for k, (shape, _) in found.items()})
    parameters = {name: sum(p.numel() for p in module.parameters())
                  for name, module in network.named_children()}
    expert = network.expert.config
    return CheckpointReport(
        folder=folder, backbone_type=config.backbone_type, backbone_folder=source.folder,
        backbone_origin=source.origin, has_tokenizer=source.has_tokenizer,
        tensor_count=len(found), stored_dtypes=tuple(sorted({d for _, d in found.values()})),
        parameters=parameters,
        expert={'hidden_size': expert.hidden_size, 'intermediate_size': expert.intermediate_size,
                'num_attention_heads': expert.num_attention_heads,
                'num_hidden_layers': expert.num_hidden_layers})
