"""Reading and writing AR1 weights in the official format: safetensors, optionally sharded.

Only safetensors are read (never pickle). Every tensor of the model must be present with its
exact shape and no unknown tensor may be present; the one tolerated gap is the 7 buffers that
some releases do not store (normalisation statistics, Fourier frequencies, spec §2.2), which are
then rebuilt from the config.
"""
import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from safetensors import safe_open
from safetensors.torch import save_file
import torch

from ar1_ros.model.config import CheckpointError

SINGLE = 'model.safetensors'
INDEX = 'model.safetensors.index.json'
PICKLE_SUFFIXES = ('.bin', '.pt', '.pth', '.ckpt', '.pkl')
# Buffers some releases omit (Alpamayo 1.5 made them non-persistent); rebuilt from config.
OPTIONAL_BUFFERS = frozenset({
    'action_space.accel_mean', 'action_space.accel_std', 'action_space.curvature_mean',
    'action_space.curvature_std', 'action_in_proj.sinus.0.freqs', 'action_in_proj.sinus.1.freqs',
    'action_in_proj.timestep_fourier_encoder.freqs',
})


def weight_files(folder: Path) -> List[Path]:
    """Return the safetensors files of a checkpoint folder (one file, or the index's shards)."""
    folder = Path(folder)
    if (folder / INDEX).is_file():
        index = json.loads((folder / INDEX).read_text())
        names = sorted(set(index.get('weight_map', {}).values()))
        missing = [n for n in names if not (folder / n).is_file()]
        if not names or missing:
            listed = missing or 'none listed'
            raise CheckpointError(f'{folder / INDEX}: shard files missing: {listed}')
        return [folder / n for n in names]
    if (folder / SINGLE).is_file():
        return [folder / SINGLE]
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise CheckpointError(
            f'{folder}: only pickle weights found ({", ".join(pickles)}); pickle files can run '
            'arbitrary code and are refused: convert them to safetensors first')
    raise CheckpointError(f'{folder}: no {SINGLE} or {INDEX}')


def read_tensors(folder: Path, dtype: torch.dtype,
                 device: Union[str, torch.device] = 'cpu') -> Dict[str, torch.Tensor]:
    """Read all tensors of a checkpoint onto `device`; floating ones are cast to `dtype`."""
    tensors: Dict[str, torch.Tensor] = {}
    for path in weight_files(folder):
        with safe_open(str(path), framework='pt', device=str(device)) as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open is not iterable)
                if name in tensors:
                    raise CheckpointError(f'{path.name}: tensor {name} is stored twice')
                tensor = handle.get_tensor(name)
                tensors[name] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    return tensors


def read_shapes(folder: Path) -> Dict[str, Tuple[Tuple[int, ...], str]]:
    """Return {name: (shape, dtype)} from the safetensors headers only (no tensor data read)."""
    found: Dict[str, Tuple[Tuple[int, ...], str]] = {}
    for path in weight_files(folder):
        with safe_open(str(path), framework='pt') as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open is not iterable)
                piece = handle.get_slice(name)
                found[name] = (tuple(piece.get_shape()), piece.get_dtype())
    return found


def check_shapes(model: torch.nn.Module, shapes: Dict[str, Tuple[int, ...]],
                 expected: Optional[Dict[str, Tuple[int, ...]]] = None) -> None:
    """Raise CheckpointError if names or shapes differ from `model` (optional buffers aside).

    expected: the names and shapes to check against instead of model.state_dict()'s (a model
    whose modules carry LoRA adapters still saves under the official layout).
    """
    if expected is None:
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(shapes) - OPTIONAL_BUFFERS)
    extra = sorted(set(shapes) - set(expected))
    problems = []
    if missing:
        problems.append(f'{len(missing)} missing tensor(s), e.g. {missing[:5]}')
    if extra:
        problems.append(f'{len(extra)} unexpected tensor(s), e.g. {extra[:5]}')
    wrong = [f'{k}: checkpoint {tuple(v)} vs model {expected[k]}'
             for k, v in shapes.items() if k in expected and tuple(v) != expected[k]]
    if wrong:
        problems.append(f'{len(wrong)} shape mismatch(es): {wrong[:5]}')
    if problems:
        raise CheckpointError('checkpoint does not match the model: ' + '; '.join(problems))


def load_into(model: torch.nn.Module, tensors: Dict[str, torch.Tensor]) -> None:
    """Assign checkpoint tensors to `model` after checking names and shapes, all or nothing."""
    check_shapes(model, {k: tuple(v.shape) for k, v in tensors.items()})
    model.load_state_dict(tensors, strict=False, assign=True)


def save_tensors(model: torch.nn.Module, folder: Path, max_shard_bytes: int = 5 * 2**30,
                 state: Optional[Dict[str, torch.Tensor]] = None, check: bool = True) -> None:
    """Write the state dict as `model.safetensors`, or as shards plus an index if it is large.

    state: tensors to write instead of model.state_dict() (a trainer's gathered or merged
    weights); unless check is False (the caller checked them against the official layout,
    e.g. with LoRA layers still in `model`), names and shapes must match the model's.
    """
    if state is None:
        state = model.state_dict()
    elif check:
        check_shapes(model, {k: tuple(v.shape) for k, v in state.items()})
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    shards: List[Dict[str, torch.Tensor]] = [{}]
    size = 0
    for name in sorted(state):
        nbytes = state[name].numel() * state[name].element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = state[name]
        size += nbytes
    metadata = {'format': 'pt'}
    if len(shards) == 1:
        save_file(shards[0], str(Path(folder) / SINGLE), metadata=metadata)
        return
    weight_map = {}
    for i, shard in enumerate(shards, start=1):
        name = f'model-{i:05d}-of-{len(shards):05d}.safetensors'
        save_file(shard, str(Path(folder) / name), metadata=metadata)
        weight_map.update(dict.fromkeys(shard, name))
    total = sum(v.numel() * v.element_size() for v in state.values())
    index = {'metadata': {'total_size': total}, 'weight_map': dict(sorted(weight_map.items()))}
    (Path(folder) / INDEX).write_text(json.dumps(index, indent=2) + '\n')
