"""torchrun worker for test_distributed.py: DDP and FSDP2 steps on a toy model, CPU and gloo.

Usage: python -m torch.distributed.run --nproc-per-node 2 --standalone dist_worker.py OUT
Writes OUT/rank<r>.json and safetensors of the parameters for the test to compare.
"""
import json
from pathlib import Path
import sys

from safetensors.torch import load_file, save_file
import torch

from ar1_ros.training.distributed import (
    all_gather_bytes,
    all_reduce_mean,
    barrier,
    distributed_sampler,
    full_state_dict,
    init_distributed,
    is_main,
    seed_everything,
    shutdown,
    unwrap,
    wrap_model,
)
from ar1_ros.training.optim import build_optimizer
from ar1_ros.training.schedule import build_scheduler
from ar1_ros.training.state import load_trainer_state, save_trainer_state

OPTIM = {'lr': 1e-2, 'weight_decay': 0.1, 'betas': (0.9, 0.95), 'eps': 1e-8,
         'lr_multipliers': {'0': 0.5}}


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)

    def forward(self, x):
        return x + torch.tanh(self.lin(x))


def toy_model():
    torch.manual_seed(1234)
    return torch.nn.Sequential(Block(), Block(), torch.nn.Linear(8, 1))


def batch():
    gen = torch.Generator().manual_seed(7)
    return torch.randn(8, 8, generator=gen), torch.randn(8, 1, generator=gen)


def train_step(model, opt, x, y):
    loss = torch.nn.functional.mse_loss(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def _fsdp(ctx, weights=None):
    model = toy_model()
    if weights is not None:
        model.load_state_dict(weights)
    model = wrap_model(model, ctx, 'fsdp', shard_modules=('Block',))
    opt = build_optimizer(model, **OPTIM)
    return model, opt, build_scheduler(opt, warmup_steps=1, total_steps=10, min_lr=1e-4)


def run_ddp(ctx, out, x, y):
    model = wrap_model(toy_model(), ctx, 'ddp')
    opt = build_optimizer(model, **OPTIM)
    train_step(model, opt, x, y)
    save_file({k: v.detach().clone() for k, v in unwrap(model).state_dict().items()},
              out / f'ddp_rank{ctx.rank}.safetensors')
    full = full_state_dict(model, ctx)
    if is_main(ctx):
        save_file(full, out / 'ddp_full.safetensors')
    return [n for g in opt.param_groups for n in g['names']]


def run_fsdp(ctx, out, x, y):
    model, opt, sched = _fsdp(ctx)
    train_step(model, opt, x, y)
    sched.step()
    full = full_state_dict(model, ctx)
    if is_main(ctx):
        save_file(full, out / 'fsdp_full.safetensors')
    save_trainer_state(out / 'fsdp_state', optimizer=opt, scheduler=sched, step=1, epoch=0,
                       batch_in_epoch=1, extra={}, ctx=ctx)
    after_save = torch.rand(3).tolist()  # this rank's next draws, to see them again on load
    # Resume: fresh sharded model from the saved full weights, state loaded on every rank.
    resumed, ropt, rsched = _fsdp(ctx, load_file(out / 'fsdp_full.safetensors'))
    restored = load_trainer_state(out / 'fsdp_state', optimizer=ropt, scheduler=rsched, ctx=ctx)
    after_load = torch.rand(3).tolist()
    for m, o in ((model, opt), (resumed, ropt)):
        train_step(m, o, x, y)
    first, second = full_state_dict(model, ctx), full_state_dict(resumed, ctx)
    if is_main(ctx):
        save_file(first, out / 'fsdp_step2.safetensors')
        save_file(second, out / 'fsdp_step2_resumed.safetensors')
    return {'rng_restored': restored.rng_restored, 'rng_same': after_save == after_load,
            'lr': [g['lr'] for g in ropt.param_groups], 'sharded_dim0': [
                p.to_local().shape[0] for p in model.parameters()]}


def main(out):
    ctx = init_distributed('cpu')
    seed_everything(0, ctx.rank)
    x, y = batch()
    half = slice(4 * ctx.rank, 4 * ctx.rank + 4)
    report = {'world_size': ctx.world_size, 'backend': ctx.backend,
              'ddp_names': run_ddp(ctx, out, x[half], y[half])}
    barrier(ctx)
    report['fsdp'] = run_fsdp(ctx, out, x[half], y[half])
    report['mean'] = all_reduce_mean(float(ctx.rank + 1), ctx)
    report['gathered'] = [b.decode() for b in all_gather_bytes(b'r' * (ctx.rank + 1), ctx)]
    sampler = distributed_sampler(list(range(10)), ctx, shuffle=True, seed=3)
    sampler.set_epoch(1)
    report['epoch1'] = list(sampler)
    sampler.set_epoch(1, start=2)
    report['epoch1_from2'] = list(sampler)
    (out / f'rank{ctx.rank}.json').write_text(json.dumps(report))
    shutdown(ctx)


if __name__ == '__main__':
    main(Path(sys.argv[1]))
