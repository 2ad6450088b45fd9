"""Distributed helpers (2-rank torchrun with gloo on CPU: DDP and FSDP2), samplers, tracking."""
import json
import os
from pathlib import Path
import subprocess
import sys

import pytest
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
import torch
import torch.distributed as dist

from ar1_ros.training.distributed import (
    DistContext,
    all_gather_bytes,
    all_reduce_mean,
    barrier,
    distributed_sampler,
    full_state_dict,
    init_distributed,
    is_main,
    seed_everything,
    shutdown,
    wrap_model,
)
from ar1_ros.training.optim import build_optimizer
from ar1_ros.training.schedule import lr_factor
from ar1_ros.training.tracking import Tracker

from .dist_worker import OPTIM, batch, toy_model, train_step

WORKER = Path(__file__).with_name('dist_worker.py')
CPU = torch.device('cpu')


@pytest.fixture(scope='module')
def torchrun(tmp_path_factory):
    """Run dist_worker.py on 2 ranks once; return its output folder."""
    out = tmp_path_factory.mktemp('torchrun')
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc-per-node', '2',
         '--standalone', str(WORKER), str(out)],
        env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def _reports(out):
    return [json.loads((out / f'rank{r}.json').read_text()) for r in (0, 1)]


def _assert_close(actual, expected, atol):
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, atol=atol, rtol=0, msg=name)


def test_ddp_step_equals_one_process_on_the_whole_batch(torchrun):
    model = toy_model()
    x, y = batch()
    train_step(model, build_optimizer(model, **OPTIM), x, y)
    reference = model.state_dict()
    rank0 = load_file(torchrun / 'ddp_rank0.safetensors')
    rank1 = load_file(torchrun / 'ddp_rank1.safetensors')
    _assert_close(rank1, rank0, atol=0)
    _assert_close(rank0, reference, atol=1e-6)
    _assert_close(load_file(torchrun / 'ddp_full.safetensors'), reference, atol=1e-6)
    # Optimizer names are the unwrapped ones (no DDP 'module.' prefix).
    assert sorted(_reports(torchrun)[0]['ddp_names']) == sorted(reference)


def test_fsdp2_on_cpu_shards_and_matches_ddp(torchrun):
    reports = _reports(torchrun)
    # FSDP2 shards dim 0: 8-row weights split 4/4, the 1-row head weight 1/0.
    assert [r['fsdp']['sharded_dim0'] for r in reports] == [[4, 4, 4, 4, 1, 1],
                                                            [4, 4, 4, 4, 0, 0]]
    _assert_close(load_file(torchrun / 'fsdp_full.safetensors'),
                  load_file(torchrun / 'ddp_full.safetensors'), atol=1e-6)


def test_fsdp2_resume_restores_sharded_optimizer_and_rank_rngs(torchrun):
    _assert_close(load_file(torchrun / 'fsdp_step2_resumed.safetensors'),
                  load_file(torchrun / 'fsdp_step2.safetensors'), atol=0)
    factor = lr_factor(1, warmup_steps=1, total_steps=10, min_ratio=0.01)
    for report in _reports(torchrun):
        assert report['fsdp']['rng_restored']
        assert report['fsdp']['rng_same']
        assert report['fsdp']['lr'] == pytest.approx([5e-3 * factor] * 2 + [1e-2 * factor] * 2)
    assert sorted(os.listdir(torchrun / 'fsdp_state')) == ['optimizer.safetensors',
                                                           'trainer_state.json']


def test_collectives_and_sampler_across_ranks(torchrun):
    reports = _reports(torchrun)
    for report in reports:
        assert report['world_size'] == 2
        assert report['backend'] == 'gloo'
        assert report['mean'] == 1.5
        assert report['gathered'] == ['r', 'rr']
        assert report['epoch1_from2'] == report['epoch1'][2:]
    assert sorted(reports[0]['epoch1'] + reports[1]['epoch1']) == list(range(10))


def test_single_process_without_torchrun(monkeypatch):
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        monkeypatch.delenv(name, raising=False)
    ctx = init_distributed('cpu')
    assert ctx == DistContext(0, 1, 0, CPU, 'gloo')
    assert not dist.is_initialized()
    assert is_main(ctx)
    assert all_reduce_mean(2.5, ctx) == 2.5
    assert all_gather_bytes(b'abc', ctx) == [b'abc']
    barrier(ctx)
    model = toy_model()
    for strategy in ('ddp', 'fsdp', 'none'):
        assert wrap_model(model, ctx, strategy) is model
    state = full_state_dict(model, ctx)
    with torch.no_grad():
        model[2].weight.add_(1.0)
    assert not torch.equal(state['2.weight'], model[2].weight)
    assert full_state_dict(model, DistContext(1, 2, 1, CPU, 'gloo')) is None
    shutdown(ctx)
    with pytest.raises(ValueError, match='strategy'):
        wrap_model(model, ctx, 'zero3')
    with pytest.raises(ValueError, match='no submodule of class'):  # checked before sharding
        wrap_model(model, DistContext(0, 2, 0, CPU, 'gloo'), 'fsdp', shard_modules=('Blok',))
    with pytest.raises(ValueError, match='device_pref'):
        init_distributed('tpu')
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='no CUDA'):
            init_distributed('cuda')


def test_sampler_is_seeded_per_epoch_and_resumable():
    one = DistContext(0, 1, 0, CPU, 'gloo')
    sampler = distributed_sampler(list(range(12)), one, shuffle=True, seed=5)
    orders = []
    for epoch in (0, 1, 0):
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
    assert orders[0] == orders[2] != orders[1]
    assert sorted(orders[0]) == list(range(12))
    sampler.set_epoch(1, start=5)
    assert list(sampler) == orders[1][5:]
    assert len(sampler) == 7
    with pytest.raises(ValueError, match='start'):
        sampler.set_epoch(1, start=13)
    plain = distributed_sampler(list(range(5)), one, shuffle=False, seed=0)
    assert list(plain) == [0, 1, 2, 3, 4]
    shares = [list(distributed_sampler(list(range(10)), DistContext(r, 3, r, CPU, 'gloo'),
                                       shuffle=True, seed=5)) for r in range(3)]
    assert [len(s) for s in shares] == [4, 4, 4]  # padded with repeats to split evenly
    assert set(sum(shares, [])) == set(range(10))


def test_seed_everything_differs_per_rank():
    draws = []
    for rank in (0, 0, 1):
        seed_everything(11, rank)
        draws.append(torch.rand(2).tolist())
    assert draws[0] == draws[1] != draws[2]


def test_tracker_writes_tensorboard_scalars(tmp_path):
    with Tracker(tmp_path / 'tb', enabled=True, total_steps=3, desc='sft',
                 show_progress=True) as tracker:
        for step in range(3):
            tracker.log(step, {'train/loss': 1.0 / (step + 1), 'train/lr': 1e-4})
            tracker.advance()
        assert tracker.bar.n == 3
    events = EventAccumulator(str(tmp_path / 'tb'))
    events.Reload()
    assert set(events.Tags()['scalars']) == {'train/loss', 'train/lr'}
    loss = events.Scalars('train/loss')
    assert [e.step for e in loss] == [0, 1, 2]
    assert [e.value for e in loss] == pytest.approx([1.0, 0.5, 1 / 3])
    silent = Tracker(tmp_path / 'other', enabled=False, total_steps=3, desc='sft',
                     show_progress=False)
    silent.log(0, {'train/loss': 1.0})
    silent.advance()
    silent.close()
    assert not (tmp_path / 'other').exists()
