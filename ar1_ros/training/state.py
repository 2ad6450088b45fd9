"""Trainer state for exact resume: optimizer, scheduler, counters and every RNG; no pickle.

A state folder holds two files, written by `save_trainer_state`:

- optimizer.safetensors: `state/<param name>/<key>` for every optimizer state tensor (AdamW's
  exp_avg, exp_avg_sq and the 0-d step), full (unsharded) and on CPU; `rng/<rank>/torch_cpu`
  and `rng/<rank>/torch_cuda` (uint8; the rank's current CUDA device); metadata save_id.
- trainer_state.json: step, epoch, batch_in_epoch, scheduler state, param group
  hyperparameters with their parameter names, parameter shapes, python and numpy RNG states
  per rank, the caller's `extra`, and the same save_id, which ties the two files together.

Keys are parameter names (the optimizer groups' 'names', see training.optim), not indices, so
a resume with a different trainable set fails with a StateError naming the parameters instead
of loading moments into the wrong tensors.
"""
import dataclasses
import json
import os
from pathlib import Path
import random
import shutil
from typing import Dict, List, Optional, Tuple
import uuid

import numpy as np
from safetensors import safe_open
from safetensors.torch import load, save, save_file
import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor, distribute_tensor

from .distributed import DistContext, all_gather_bytes, barrier, is_main

TRAINER_STATE = 'trainer_state.json'
OPTIMIZER_STATE = 'optimizer.safetensors'
FORMAT = 1
# How an optimizer runs, not what it learned: the resuming process keeps its own choice.
_IMPLEMENTATION_KEYS = ('foreach', 'fused', 'capturable', 'differentiable')
_SINGLE = DistContext(0, 1, 0, torch.device('cpu'), 'gloo')


class StateError(ValueError):
    """A trainer state folder is missing, corrupt, or does not fit the optimizer."""


@dataclasses.dataclass(frozen=True)
class TrainerState:
    """Counters restored by `load_trainer_state`.

    rng_restored is False when the RNGs could not be restored (saved with another world size,
    or on CUDA and resumed without): the run goes on with the caller's seeding, not bitwise.
    """

    step: int
    epoch: int
    batch_in_epoch: int
    extra: dict
    rng_restored: bool = True


def _named_params(optimizer: torch.optim.Optimizer) -> List[Tuple[str, torch.Tensor]]:
    named = []
    for index, group in enumerate(optimizer.param_groups):
        names = group.get('names')
        if names is None or len(names) != len(group['params']):
            raise StateError(f"optimizer param group {index} lacks matching 'names' "
                             '(build it with training.optim.build_optimizer)')
        named.extend(zip(names, group['params'], strict=True))
    return named


def _rng_blob() -> bytes:
    """Return this process's RNG states as safetensors bytes (python/numpy in the metadata)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    states = {'python': [version, list(internal), gauss],
              'numpy': [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    tensors = {'torch_cpu': torch.get_rng_state()}
    if torch.cuda.is_available():
        # The current device only: the one this rank computes on (others may be other ranks').
        tensors['torch_cuda'] = torch.cuda.get_rng_state()
    return save(tensors, metadata={'json': json.dumps(states)})


def _restore_rng(states: dict, tensors: Dict[str, torch.Tensor]) -> bool:
    version, internal, gauss = states['python']
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = states['numpy']
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors['torch_cpu'])
    cuda = tensors.get('torch_cuda')
    if cuda is None or not torch.cuda.is_available():
        return cuda is None
    torch.cuda.set_rng_state(cuda)
    return True


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> Dict[str, torch.Tensor]:
    tensors = {}
    for name, param in _named_params(optimizer):
        for key, value in optimizer.state.get(param, {}).items():
            if not torch.is_tensor(value):
                raise StateError(f'optimizer state {name}/{key} is not a tensor: {value!r}')
            # FSDP2 shards are gathered (a collective: every rank runs this loop in order).
            full = value.full_tensor() if isinstance(value, DTensor) else value
            tensors[f'state/{name}/{key}'] = full.detach().to('cpu', copy=True).contiguous()
    return tensors


def _payload(optimizer, scheduler, counters: dict, rng: List[dict], extra: dict) -> dict:
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items() if k != 'params'}
              for g in optimizer.param_groups]
    shapes = {name: list(param.shape) for name, param in _named_params(optimizer)}
    return {'format': FORMAT, **counters, 'scheduler': scheduler.state_dict(),
            'optimizer': {'param_groups': groups, 'shapes': shapes}, 'rng': rng,
            'extra': extra}


def _write_atomic(folder: Path, tensors: Dict[str, torch.Tensor], payload: dict) -> None:
    """Write both files into a temporary folder, then move them into place.

    A new folder is renamed as a whole. An existing one (it may hold the model weights too)
    gets the two files replaced one by one, JSON last; the shared save_id lets a load detect
    the pair a crash between the two moves would leave.
    """
    tmp = folder.parent / f'.{folder.name}.tmp-{uuid.uuid4().hex[:8]}'
    tmp.mkdir(parents=True)
    try:
        save_file(tensors, tmp / OPTIMIZER_STATE, metadata={'save_id': payload['save_id']})
        (tmp / TRAINER_STATE).write_text(json.dumps(payload))
        for name in (OPTIMIZER_STATE, TRAINER_STATE):
            with open(tmp / name, 'rb') as f:
                os.fsync(f.fileno())
        if not folder.exists():
            os.rename(tmp, folder)
            return
        for name in (OPTIMIZER_STATE, TRAINER_STATE):
            os.replace(tmp / name, folder / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_save(ctx: DistContext, extra: dict) -> DistContext:
    """Refuse a save that would race between ranks or write extra it cannot read back."""
    if ctx.world_size == 1 and dist.is_initialized() and dist.get_world_size() > 1:
        raise StateError('several ranks are running: pass ctx so that only rank 0 writes')
    try:
        json.dumps(extra)
    except (TypeError, ValueError) as error:
        raise StateError(f'extra must be JSON-serializable: {error}') from error
    return ctx


def save_trainer_state(folder, *, optimizer: torch.optim.Optimizer,
                       scheduler: torch.optim.lr_scheduler.LRScheduler, step: int, epoch: int,
                       batch_in_epoch: int, extra: dict,
                       ctx: Optional[DistContext] = None) -> None:
    """Save everything but the model weights needed to resume bitwise after `step` steps.

    Under torchrun every rank must call it with its ctx (shards and RNG states are gathered);
    rank 0 writes. Returns after the files are in place on every rank.

    Args:
        folder: target folder (str or Path); created, or its two state files replaced.
        optimizer: optimizer from training.optim.build_optimizer (groups carry 'names').
        scheduler: the lr scheduler stepped with it.
        step: optimizer steps taken.
        epoch: current epoch (0-based).
        batch_in_epoch: batches of `epoch` already consumed.
        extra: JSON-serializable caller data (e.g. best metric, config hash).
        ctx: distributed context; None for a single process.

    Raises:
        StateError: extra is not JSON-serializable, or the optimizer lacks 'names'.
    """
    ctx = _check_save(ctx or _SINGLE, extra)
    tensors = _optimizer_tensors(optimizer)
    blobs = all_gather_bytes(_rng_blob(), ctx)
    if is_main(ctx):
        rng = []
        for rank, blob in enumerate(blobs):
            rank_tensors = load(blob)
            tensors.update({f'rng/{rank}/{k}': v for k, v in rank_tensors.items()})
            rng.append(json.loads(_blob_metadata(blob)['json']))
        counters = {'step': step, 'epoch': epoch, 'batch_in_epoch': batch_in_epoch,
                    'save_id': uuid.uuid4().hex, 'world_size': ctx.world_size}
        _write_atomic(Path(folder), tensors, _payload(optimizer, scheduler, counters, rng, extra))
    barrier(ctx)


def _blob_metadata(blob: bytes) -> Dict[str, str]:
    # safetensors layout: 8-byte little-endian header length, then the JSON header.
    size = int.from_bytes(blob[:8], 'little')
    return json.loads(blob[8:8 + size])['__metadata__']


def _read(folder: Path) -> Tuple[dict, Dict[str, torch.Tensor]]:
    for name in (TRAINER_STATE, OPTIMIZER_STATE):
        if not (folder / name).is_file():
            raise StateError(f'no {name} in {folder}: not a trainer state folder')
    try:
        payload = json.loads((folder / TRAINER_STATE).read_text())
        with safe_open(folder / OPTIMIZER_STATE, 'pt') as f:
            save_id = (f.metadata() or {}).get('save_id')
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    except Exception as error:  # json, safetensors and struct errors alike mean: corrupt
        raise StateError(f'corrupt trainer state in {folder}: {error}') from error
    if not isinstance(payload, dict) or payload.get('format') != FORMAT:
        raise StateError(f'{folder / TRAINER_STATE}: not format {FORMAT}')
    if payload.get('save_id') != save_id:
        raise StateError(f'{folder}: {TRAINER_STATE} and {OPTIMIZER_STATE} come from different '
                         'saves (a save was interrupted); use another checkpoint')
    return payload, tensors


def _check_fit(saved: dict, named: List[Tuple[str, torch.Tensor]], optimizer) -> None:
    shapes = {name: list(param.shape) for name, param in named}
    only_saved = sorted(set(saved['shapes']) - set(shapes))
    only_now = sorted(set(shapes) - set(saved['shapes']))
    if only_saved or only_now:
        raise StateError(f'trainable parameters differ from the saved state: '
                         f'{len(only_saved)} only saved {only_saved[:4]}, '
                         f'{len(only_now)} only in the optimizer {only_now[:4]}')
    wrong = [f'{n}: saved {saved["shapes"][n]}, now {s}' for n, s in shapes.items()
             if saved['shapes'][n] != s]
    if wrong:
        raise StateError(f'parameter shapes differ from the saved state: {wrong[:4]}')
    if [g['names'] for g in saved['param_groups']] != [g['names'] for g in optimizer.param_groups]:
        raise StateError('param groups differ from the saved state (lr_multipliers or the '
                         'weight decay split changed)')


def _as_param(value: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    if isinstance(param, DTensor) and value.dim() > 0 and value.shape == param.shape:
        # Every rank read the full tensor: split locally (no scatter), like the parameter.
        return distribute_tensor(value.to(param.device), param.device_mesh, param.placements,
                                 src_data_rank=None)
    return value


def _restore_optimizer(optimizer, named, tensors: Dict[str, torch.Tensor], saved: dict) -> None:
    state = {}
    for index, (name, param) in enumerate(named):
        prefix = f'state/{name}/'
        entry = {k[len(prefix):]: _as_param(v, param) for k, v in tensors.items()
                 if k.startswith(prefix)}
        if entry:
            state[index] = entry
    groups, start = [], 0
    for now, old in zip(optimizer.param_groups, saved['param_groups'], strict=True):
        group = {**old, **{k: now[k] for k in _IMPLEMENTATION_KEYS if k in now}}
        group['params'] = list(range(start, start + len(now['params'])))
        start += len(now['params'])
        groups.append(group)
    # torch's own loader: moves each value to its parameter's device/dtype, 'step' by policy.
    optimizer.load_state_dict({'state': state, 'param_groups': groups})


def load_trainer_state(folder, *, optimizer: torch.optim.Optimizer,
                       scheduler: torch.optim.lr_scheduler.LRScheduler,
                       ctx: Optional[DistContext] = None) -> TrainerState:
    """Restore optimizer, scheduler and RNG states saved by `save_trainer_state`.

    Under torchrun every rank calls it (each reads the folder, so it must be on a file system
    every node sees) and gets its own RNG states back when the world size is unchanged.

    Args:
        folder: the state folder (str or Path).
        optimizer: a fresh optimizer over the same trainable parameters, same groups.
        scheduler: a fresh scheduler on that optimizer.
        ctx: distributed context; None for a single process.

    Returns:
        The counters and extra saved with the state.

    Raises:
        StateError: missing or corrupt files, or a different trainable set, shape or grouping.
    """
    ctx = ctx or _SINGLE
    payload, tensors = _read(Path(folder))
    try:
        named = _named_params(optimizer)
        scheduler_state = dict(payload['scheduler'])  # checked before anything is restored
        _check_fit(payload['optimizer'], named, optimizer)
        _restore_optimizer(optimizer, named, tensors, payload['optimizer'])
        scheduler.load_state_dict(scheduler_state)
        restored = len(payload['rng']) == ctx.world_size and _restore_rng(
            payload['rng'][ctx.rank], {k.split('/')[-1]: v for k, v in tensors.items()
                                       if k.startswith(f'rng/{ctx.rank}/')})
        return TrainerState(int(payload['step']), int(payload['epoch']),
                            int(payload['batch_in_epoch']), payload['extra'], restored)
    except (KeyError, TypeError, IndexError, AttributeError) as error:
        raise StateError(f'corrupt trainer state in {folder}: missing or bad {error}') from error
