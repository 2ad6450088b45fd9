"""One process or many under torchrun: process group, DDP / FSDP2 wrapping, small collectives.

Everything here is torch's own engine (torch.distributed, DistributedDataParallel, FSDP2's
`fully_shard`, torch.distributed.checkpoint); this module only picks devices and backends and
gives single-process runs the same calls, so a trainer has one code path for 1 and N ranks.
"""
import dataclasses
import gc
import os
import random
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler

STRATEGIES = ('ddp', 'fsdp', 'none')


@dataclasses.dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank among world_size, its device and the backend.

    backend is 'nccl' (CUDA) or 'gloo' (CPU); with world_size 1 there is no process group.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str


def _pick_device(device_pref: str, local_rank: int) -> torch.device:
    if device_pref not in ('auto', 'cuda', 'cpu'):
        raise ValueError(f"device_pref must be 'auto', 'cuda' or 'cpu', not {device_pref!r}")
    if device_pref == 'cuda' and not torch.cuda.is_available():
        raise ValueError("device_pref='cuda' but torch sees no CUDA device")
    if device_pref == 'cpu' or not torch.cuda.is_available():
        return torch.device('cpu')
    # One GPU per process: torchrun's LOCAL_RANK indexes the GPUs of this node.
    device = torch.device('cuda', local_rank)
    torch.cuda.set_device(device)
    return device


def init_distributed(device_pref: str = 'auto') -> DistContext:
    """Read torchrun's environment and join the process group when there are several ranks.

    torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without them (or
    with WORLD_SIZE 1) this is a single process: rank 0, no process group.

    Args:
        device_pref: 'auto' (CUDA when available), 'cuda' (required) or 'cpu'.

    Returns:
        The context; backend 'nccl' on CUDA, 'gloo' on CPU.
    """
    rank = int(os.environ.get('RANK', '0'))
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    device = _pick_device(device_pref, local_rank)
    backend = 'nccl' if device.type == 'cuda' else 'gloo'
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank, world_size, local_rank, device, backend)


def wrap_model(module: torch.nn.Module, ctx: DistContext, strategy: str,
               find_unused_parameters: bool = False, *,
               shard_modules: Tuple[str, ...] = (), **fsdp_kwargs) -> torch.nn.Module:
    """Wrap a model (already on ctx.device) for data-parallel training.

    Args:
        module: the model, its parameters on ctx.device.
        ctx: the distributed context.
        strategy: 'ddp' (DistributedDataParallel), 'fsdp' (FSDP2 `fully_shard`) or 'none'.
        find_unused_parameters: DDP's flag, for graphs that skip parameters on some steps.
        shard_modules: FSDP: class names (e.g. 'Qwen3VLTextDecoderLayer') each sharded as
            one unit, so one block's parameters are gathered at a time; the root comes last.
        **fsdp_kwargs: passed to every `fully_shard` call (e.g. mp_policy, reshard_after_forward).

    Returns:
        The DDP wrapper, the same module sharded in place (FSDP2), or the module unchanged when
        strategy is 'none' or world_size is 1.

    Raises:
        ValueError: on an unknown strategy, or FSDP shard_modules that match no submodule.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f'strategy must be one of {STRATEGIES}, not {strategy!r}')
    if strategy == 'none' or ctx.world_size == 1:
        return module
    if strategy == 'ddp':
        device_ids = [ctx.device.index] if ctx.device.type == 'cuda' else None
        return DistributedDataParallel(module, device_ids=device_ids,
                                       find_unused_parameters=find_unused_parameters)
    from torch.distributed.fsdp import fully_shard
    blocks = [m for m in module.modules()
              if m is not module and type(m).__name__ in set(shard_modules)]
    if shard_modules and not blocks:
        raise ValueError(f'FSDP: no submodule of class {shard_modules} in the model')
    # Innermost first (reverse pre-order): each unit then owns only what no inner unit took.
    for block in reversed(blocks):
        fully_shard(block, **fsdp_kwargs)
    fully_shard(module, **fsdp_kwargs)
    return module


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """Return the user's module under DDP / torch.compile wrappers (FSDP2 shards in place)."""
    while True:
        if isinstance(module, DistributedDataParallel):
            module = module.module
        elif hasattr(module, '_orig_mod'):  # torch.compile's OptimizedModule
            module = module._orig_mod
        else:
            return module


def _is_sharded(module: torch.nn.Module) -> bool:
    from torch.distributed.tensor import DTensor
    return any(isinstance(p, DTensor) for p in module.parameters())


def full_state_dict(module: torch.nn.Module,
                    ctx: DistContext) -> Optional[Dict[str, torch.Tensor]]:
    """Return the full, unwrapped-name CPU state dict on rank 0 and None on the others.

    With FSDP2 this is a collective (every rank must call it): torch.distributed.checkpoint
    gathers the shards onto rank 0's CPU. Otherwise rank 0 copies its own replica.

    Args:
        module: the model as wrapped by `wrap_model` (or plain).
        ctx: the distributed context.

    Returns:
        name -> CPU tensor (a copy, safe to keep while training goes on) on rank 0, else None.
    """
    model = unwrap(module)
    if _is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
        state = get_model_state_dict(model, options=StateDictOptions(
            full_state_dict=True, cpu_offload=True))
        return state if is_main(ctx) else None
    if not is_main(ctx):
        return None
    return {k: v.detach().to('cpu', copy=True) for k, v in model.state_dict().items()}


def all_reduce_mean(value: float, ctx: DistContext) -> float:
    """Return the mean of `value` over all ranks (every rank must call); value itself alone."""
    if ctx.world_size == 1:
        return float(value)
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.item() / ctx.world_size


def all_gather_bytes(data: bytes, ctx: DistContext) -> List[bytes]:
    """Return every rank's `data`, index = rank (a collective; no pickle, unlike *_object)."""
    if ctx.world_size == 1:
        return [bytes(data)]
    local = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.zeros(
        0, dtype=torch.uint8)
    size = torch.tensor([local.numel()], dtype=torch.int64, device=ctx.device)
    sizes = [torch.zeros_like(size) for _ in range(ctx.world_size)]
    dist.all_gather(sizes, size)
    longest = max(int(s.item()) for s in sizes)
    # all_gather needs equal shapes: pad to the longest, cut back per rank.
    padded = torch.zeros(longest, dtype=torch.uint8, device=ctx.device)
    padded[:local.numel()] = local.to(ctx.device)
    gathered = [torch.zeros_like(padded) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, padded)
    return [g[:int(n.item())].cpu().numpy().tobytes()
            for g, n in zip(gathered, sizes, strict=True)]


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op for one process)."""
    if ctx.world_size > 1:
        device_ids = [ctx.device.index] if ctx.backend == 'nccl' else None
        dist.barrier(device_ids=device_ids)


def is_main(ctx: DistContext) -> bool:
    """Return True on rank 0, the rank that writes logs and checkpoints."""
    return ctx.rank == 0


def shutdown(ctx: DistContext) -> None:
    """Wait for every rank, then leave the process group (if this process joined one)."""
    if ctx.world_size > 1 and dist.is_initialized():
        # Free dropped DDP/FSDP wrappers (reference cycles) while their group still exists:
        # left to interpreter exit, their gloo work can abort the process ('terminate called
        # without an active exception', seen about 1 run in 20 on torch 2.13 CPU).
        gc.collect()
        barrier(ctx)
        dist.destroy_process_group()


class ResumableSampler(DistributedSampler):
    """torch's DistributedSampler whose next epoch can start part-way, for mid-epoch resume.

    The order of an epoch depends only on (seed, epoch, rank, world_size), as in
    DistributedSampler; `set_epoch(epoch, start=k)` drops this rank's first k samples of that
    epoch's order, the ones consumed before the checkpoint.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, shuffle: bool,
                 seed: int, drop_last: bool = False):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=seed, drop_last=drop_last)
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's order and skip this rank's first `start` samples of it."""
        if not 0 <= start <= self.num_samples:
            raise ValueError(f'start {start} outside [0, {self.num_samples}]')
        super().set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start


def distributed_sampler(dataset: Dataset, ctx: DistContext, shuffle: bool, seed: int, *,
                        drop_last: bool = False) -> ResumableSampler:
    """Return this rank's sampler: a disjoint 1/world_size share of each epoch's order.

    One process gets the same class with num_replicas 1 (the whole dataset, no padding), so
    set_epoch, seeding and mid-epoch resume behave alike for 1 and N ranks.

    Args:
        dataset: a map-style dataset (len and indexing).
        ctx: the distributed context.
        shuffle: permute each epoch with torch.Generator(seed + epoch); else dataset order.
        seed: the run's seed; must be equal on every rank.
        drop_last: drop the tail instead of padding with repeats to split evenly.

    Returns:
        The sampler; call `set_epoch(epoch[, start])` before each epoch.
    """
    return ResumableSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank,
                            shuffle=shuffle, seed=seed, drop_last=drop_last)


def seed_everything(seed: int, rank: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device) with seed + rank.

    Per-rank seeds make dropout and sampling noise differ between ranks (same seeds would
    draw the same masks on every replica); the data order comes from the sampler's own seed.
    """
    value = seed + rank
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)

