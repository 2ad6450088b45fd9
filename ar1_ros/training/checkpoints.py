"""Training checkpoints: an official AR1 model folder plus what resuming needs.

    OUT/checkpoints/step-0000100/
        model/        config.json + safetensors (+ base_vlm/): AR1Model.from_pretrained and the
                      node load it unchanged (LoRA adapters merged, model.dtype)
        trainable.safetensors   the trained tensors in float32, under the training names
        state/        optimizer, scheduler, counters, RNG (training.state)
    OUT/latest        the name of the newest complete checkpoint

A checkpoint is written to `step-N.partial` and renamed when complete, so an interrupted save
never becomes `latest`; older checkpoints beyond `keep_last` are removed.
"""
from pathlib import Path
import shutil
from typing import Dict, List, Optional

from safetensors.torch import load_file, save_file
import torch

from ar1_ros.model.api import AR1Model
from ar1_ros.model.checkpoint import check_shapes
from ar1_ros.training.lora import merged_state_dict

LATEST = 'latest'
MODEL = 'model'
TRAINABLE = 'trainable.safetensors'
STATE = 'state'


class ResumeError(ValueError):
    """A run cannot be resumed from its output folder; the message says why."""


def checkpoint_name(step: int) -> str:
    """Return the folder name of the checkpoint after `step` optimizer steps."""
    return f'step-{step:07d}'


def partial_folder(out_dir: Path, step: int) -> Path:
    """Return the folder a checkpoint is written to before it is complete."""
    return Path(out_dir) / 'checkpoints' / f'{checkpoint_name(step)}.partial'


def write_model(folder: Path, model: AR1Model, net_state: Dict[str, torch.Tensor],
                trainable: List[str], lora_scaling: Optional[float]) -> None:
    """Write model/ (official format) and trainable.safetensors from a full state (rank 0)."""
    official = merged_state_dict(net_state, lora_scaling) if lora_scaling else net_state
    check_official(model.network, official)
    dtype = model.network.vlm.dtype
    official = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in official.items()}
    model.save_pretrained(folder / MODEL, state=official, check=False)
    tensors = {name: net_state[name].float().contiguous() for name in trainable}
    save_file(tensors, str(folder / TRAINABLE), metadata={'format': 'pt'})


def check_official(net: torch.nn.Module, state: Dict[str, torch.Tensor]) -> None:
    """Raise CheckpointError unless state has the official names and shapes of net.

    The official layout is net's own with any LoRA adapter removed and its base weight under
    the original name.
    """
    official = {k.replace('.base_layer.', '.'): tuple(v.shape)
                for k, v in net.state_dict().items() if '.lora_' not in k}
    check_shapes(net, {k: tuple(v.shape) for k, v in state.items()}, expected=official)


def publish(out_dir: Path, step: int, keep_last: int) -> Path:
    """Rename the partial checkpoint to its final name, point `latest` at it, prune old ones."""
    root = Path(out_dir) / 'checkpoints'
    final = root / checkpoint_name(step)
    if final.exists():
        shutil.rmtree(final)
    partial_folder(out_dir, step).rename(final)
    tmp = Path(out_dir) / f'{LATEST}.tmp'
    tmp.write_text(final.name + '\n')
    tmp.replace(Path(out_dir) / LATEST)
    done = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.endswith('.partial'))
    for old in done[:-keep_last]:
        shutil.rmtree(old)
    return final


def latest_checkpoint(out_dir: Path) -> Optional[Path]:
    """Return the newest complete checkpoint of a run, or None when it has none."""
    marker = Path(out_dir) / LATEST
    if not marker.is_file():
        return None
    folder = Path(out_dir) / 'checkpoints' / marker.read_text().strip()
    if not (folder / TRAINABLE).is_file() or not (folder / STATE).is_dir():
        raise ResumeError(f'{marker} names {folder}, which is incomplete or missing')
    return folder


def load_trainable(folder: Path, net: torch.nn.Module, trainable: List[str]) -> None:
    """Copy a checkpoint's trained tensors into net; the trainable set must be the same."""
    try:
        tensors = load_file(str(Path(folder) / TRAINABLE))
    except (OSError, ValueError) as exc:
        raise ResumeError(f'{folder / TRAINABLE}: cannot read ({exc})') from exc
    missing, extra = sorted(set(trainable) - set(tensors)), sorted(set(tensors) - set(trainable))
    if missing or extra:
        raise ResumeError(f"{folder}: trained tensors differ from this run's trainable set "
                          f'(missing {missing[:3]}, unexpected {extra[:3]}): was the stage or '
                          'LoRA setting changed?')
    params = dict(net.named_parameters())
    with torch.no_grad():
        for name in trainable:
            if tuple(tensors[name].shape) != tuple(params[name].shape):
                raise ResumeError(f'{folder}: {name} has shape {tuple(tensors[name].shape)}, '
                                  f'the model {tuple(params[name].shape)}')
            params[name].copy_(tensors[name])
