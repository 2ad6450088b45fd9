"""Trainer state: bitwise resume (dropout and all RNGs), name-keyed files, clear failures."""
import json
from pathlib import Path
import random

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file
import torch

from ar1_ros.training import state as state_module
from ar1_ros.training.distributed import DistContext, seed_everything
from ar1_ros.training.optim import build_optimizer
from ar1_ros.training.schedule import build_scheduler
from ar1_ros.training.state import StateError, TrainerState, load_trainer_state, save_trainer_state

GEN = torch.Generator().manual_seed(5)
XS, YS = torch.randn(6, 4, 6, generator=GEN), torch.randn(6, 4, 1, generator=GEN)


def _net(hidden=16, weights=None):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                              torch.nn.Linear(hidden, hidden), torch.nn.LayerNorm(hidden),
                              torch.nn.Linear(hidden, 1))
    if weights is not None:
        net.load_state_dict(weights)
    return net


def _optim(net, multipliers=None):
    opt = build_optimizer(net, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-8,
                          lr_multipliers={'0': 0.5} if multipliers is None else multipliers)
    return opt, build_scheduler(opt, warmup_steps=2, total_steps=6, min_lr=1e-4)


def _train(net, opt, sched, steps):
    losses = []
    for step in steps:
        # python and numpy RNGs feed the loss too, so their restore is checked as well.
        noise = 1.0 + 0.1 * random.random() + 0.1 * float(np.random.rand())
        loss = torch.nn.functional.mse_loss(net(XS[step] * noise), YS[step])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def _weights(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _save(folder, opt, sched, step=3, extra=None):
    save_trainer_state(folder, optimizer=opt, scheduler=sched, step=step, epoch=1,
                       batch_in_epoch=2, extra={'best': 0.5} if extra is None else extra)


@pytest.fixture
def saved(tmp_path):
    """A 3-step run saved to tmp_path/'ckpt' with its weights; returns (folder, weights)."""
    seed_everything(3, 0)
    net = _net()
    opt, sched = _optim(net)
    _train(net, opt, sched, range(3))
    save_file(_weights(net), tmp_path / 'weights.safetensors')
    _save(tmp_path / 'ckpt', opt, sched)
    return tmp_path / 'ckpt', load_file(tmp_path / 'weights.safetensors')


def test_resume_is_bitwise_identical(tmp_path):
    seed_everything(3, 0)
    net = _net()
    opt, sched = _optim(net)
    losses = _train(net, opt, sched, range(6))
    final = _weights(net)
    # Interrupted: 3 steps, save, 3 more; saving must not disturb the run.
    seed_everything(3, 0)
    net = _net()
    opt, sched = _optim(net)
    first = _train(net, opt, sched, range(3))
    save_file(_weights(net), tmp_path / 'weights.safetensors')
    _save(tmp_path / 'ckpt', opt, sched)
    assert first + _train(net, opt, sched, range(3, 6)) == losses
    # Fresh process state: new model from the step-3 weights, other seeds, loaded state.
    seed_everything(99, 0)
    net = _net(weights=load_file(tmp_path / 'weights.safetensors'))
    opt, sched = _optim(net)
    restored = load_trainer_state(tmp_path / 'ckpt', optimizer=opt, scheduler=sched)
    assert restored == TrainerState(step=3, epoch=1, batch_in_epoch=2, extra={'best': 0.5})
    assert sched.last_epoch == 3
    assert _train(net, opt, sched, range(3, 6)) == losses[3:]
    for name, value in _weights(net).items():
        assert torch.equal(value, final[name]), name


def test_files_are_keyed_by_parameter_name(saved):
    folder, _ = saved
    with safe_open(folder / 'optimizer.safetensors', 'pt') as f:
        keys = set(f.keys())
        step = f.get_tensor('state/0.weight/step')
    assert {'state/0.weight/exp_avg', 'state/0.weight/exp_avg_sq', 'state/5.bias/step',
            'rng/0/torch_cpu'} <= keys
    assert step.shape == ()
    assert step.item() == 3
    payload = json.loads((folder / 'trainer_state.json').read_text())
    assert payload['step'] == 3
    assert payload['extra'] == {'best': 0.5}
    assert payload['optimizer']['shapes']['3.weight'] == [16, 16]
    assert {g['lr_multiplier'] for g in payload['optimizer']['param_groups']} == {0.5, 1.0}
    assert len(payload['rng']) == 1
    assert len(payload['rng'][0]['python'][1]) == 625


def test_different_world_size_keeps_the_callers_rng(saved):
    folder, weights = saved
    net = _net(weights=weights)
    opt, sched = _optim(net)
    two = DistContext(0, 2, 0, torch.device('cpu'), 'gloo')  # load does no collective
    before = torch.get_rng_state()
    restored = load_trainer_state(folder, optimizer=opt, scheduler=sched, ctx=two)
    assert not restored.rng_restored
    assert restored.step == 3
    assert torch.equal(torch.get_rng_state(), before)


def test_mismatched_optimizers_are_refused(saved):
    folder, weights = saved
    frozen = _net(weights=weights)
    frozen[3].bias.requires_grad_(False)
    wider = _net(hidden=8)
    cases = [(_optim(frozen), 'trainable parameters differ.*3.bias'),
             (_optim(wider), 'shapes differ.*0.weight'),
             (_optim(_net(weights=weights), {}), 'param groups differ')]
    for (opt, sched), message in cases:
        with pytest.raises(StateError, match=message):
            load_trainer_state(folder, optimizer=opt, scheduler=sched)


@pytest.mark.parametrize(('damage', 'message'), [
    (lambda f: (f / 'trainer_state.json').unlink(), 'no trainer_state.json'),
    (lambda f: (f / 'optimizer.safetensors').unlink(), 'no optimizer.safetensors'),
    (lambda f: (f / 'trainer_state.json').write_text('{"step": 3,'), 'corrupt'),
    (lambda f: (f / 'optimizer.safetensors').write_bytes(b'\x10\0\0\0\0\0\0\0{nope'), 'corrupt'),
    (lambda f: (f / 'trainer_state.json').write_text(json.dumps(
        {**json.loads((f / 'trainer_state.json').read_text()), 'scheduler': None})), 'corrupt'),
])
def test_damaged_folders_are_refused(saved, damage, message):
    folder, weights = saved
    damage(folder)
    opt, sched = _optim(_net(weights=weights))
    with pytest.raises(StateError, match=message):
        load_trainer_state(folder, optimizer=opt, scheduler=sched)


def test_files_from_two_saves_are_refused(saved, tmp_path):
    folder, weights = saved
    opt, sched = _optim(_net(weights=weights))
    _save(tmp_path / 'other', opt, sched)
    (folder / 'optimizer.safetensors').write_bytes(
        (tmp_path / 'other' / 'optimizer.safetensors').read_bytes())
    with pytest.raises(StateError, match='different saves'):
        load_trainer_state(folder, optimizer=opt, scheduler=sched)


def test_save_into_existing_folder_is_atomic(saved, monkeypatch):
    folder, weights = saved
    (folder / 'model.safetensors').write_bytes(b'weights')
    opt, sched = _optim(_net(weights=weights))

    def broken(*args, **kwargs):
        raise OSError('disk full')

    monkeypatch.setattr(state_module, 'save_file', broken)
    with pytest.raises(OSError, match='disk full'):
        _save(folder, opt, sched, step=7)
    monkeypatch.undo()
    assert load_trainer_state(folder, optimizer=opt, scheduler=sched).step == 3
    _save(folder, opt, sched, step=7)
    assert load_trainer_state(folder, optimizer=opt, scheduler=sched).step == 7
    assert sorted(p.name for p in Path(folder).parent.iterdir() if p.name.startswith('.')) == []
    assert (folder / 'model.safetensors').read_bytes() == b'weights'


def test_extra_must_be_json(tmp_path):
    opt, sched = _optim(_net())
    with pytest.raises(StateError, match='JSON'):
        _save(tmp_path / 'ckpt', opt, sched, extra={'bad': object()})
    assert not (tmp_path / 'ckpt').exists()
