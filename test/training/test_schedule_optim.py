"""Schedule (against transformers' cosine_warmup_with_min_lr) and AdamW param groups."""
import math

import pytest
import torch
from transformers.optimization import get_cosine_with_min_lr_schedule_with_warmup_lr_rate

from ar1_ros.training.optim import build_optimizer, param_groups
from ar1_ros.training.schedule import build_scheduler, lr_factor


class Tower(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(4, 4)
        self.norm = torch.nn.LayerNorm(4)


class Toy(torch.nn.Module):
    """Names like the policy's: vlm.model.visual.*, vlm.model.visual_merger.*, vlm.embed.*."""

    def __init__(self):
        super().__init__()
        self.vlm = torch.nn.ModuleDict({
            'model': torch.nn.ModuleDict({'visual': Tower(), 'visual_merger': Tower()}),
            'embed': torch.nn.Embedding(10, 4)})
        self.head = Tower()


def _lrs(scheduler, steps):
    lrs = []
    for _ in range(steps):
        lrs.append([g['lr'] for g in scheduler.optimizer.param_groups])
        scheduler.optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize(('warmup', 'total', 'ratio'), [(3, 10, 0.01), (0, 7, 0.0), (5, 6, 0.2)])
def test_lr_factor_is_transformers_cosine_warmup_with_min_lr(warmup, total, ratio):
    ours = [lr_factor(s, warmup_steps=warmup, total_steps=total, min_ratio=ratio)
            for s in range(total)]
    param = torch.nn.Parameter(torch.zeros(1))
    hf = get_cosine_with_min_lr_schedule_with_warmup_lr_rate(
        torch.optim.SGD([param], lr=1.0), warmup, total, min_lr_rate=ratio)
    assert ours == pytest.approx([lrs[0] for lrs in _lrs(hf, total)], abs=1e-12)


def test_lr_factor_shape():
    kw = {'warmup_steps': 4, 'total_steps': 12, 'min_ratio': 0.1}
    assert [lr_factor(s, **kw) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, **kw) < 1.0
    assert lr_factor(11, **kw) == pytest.approx(0.1)
    # Past the end it stays at the floor (transformers' cosine would rise again).
    assert [lr_factor(s, **kw) for s in (12, 20, 100)] == pytest.approx([0.1] * 3)
    middle = lr_factor(4 + 3, **kw)  # progress 0.5 after the warmup
    assert middle == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_scheduler_floors_scale_with_multipliers_like_transformers():
    model = Toy()
    kw = {'lr': 1e-4, 'weight_decay': 0.1, 'betas': (0.9, 0.95), 'eps': 1e-8,
          'lr_multipliers': {'vlm.model.visual': 0.1}}
    ours = build_scheduler(build_optimizer(model, **kw), warmup_steps=2, total_steps=8,
                           min_lr=1e-6)
    hf = get_cosine_with_min_lr_schedule_with_warmup_lr_rate(
        build_optimizer(model, **kw), 2, 8, min_lr=1e-6)
    ours_lrs, hf_lrs = _lrs(ours, 10), _lrs(hf, 8)
    for step, (mine, theirs) in enumerate(zip(ours_lrs[:8], hf_lrs, strict=True)):
        assert mine == pytest.approx(theirs, rel=1e-12), step
    mults = [g['lr_multiplier'] for g in ours.optimizer.param_groups]
    assert sorted(set(mults)) == [0.1, 1.0]
    for lr, mult in zip(ours_lrs[7], mults, strict=True):
        assert lr == pytest.approx(1e-6 * mult)
    assert ours_lrs[9] == pytest.approx(ours_lrs[7])
    assert ours_lrs[0] == pytest.approx([1e-4 * m / 2 for m in mults])


def test_scheduler_rejects_a_floor_above_the_peak():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([{'params': [param], 'lr': 1e-6, 'lr_multiplier': 1.0}])
    with pytest.raises(ValueError, match='exceeds the group peak'):
        build_scheduler(opt, warmup_steps=0, total_steps=5, min_lr=1e-5)
    with pytest.raises(ValueError, match='total_steps'):
        build_scheduler(opt, warmup_steps=0, total_steps=0, min_lr=0.0)


def test_param_groups_multipliers_decay_and_names():
    model = Toy()
    model.head.norm.weight.requires_grad_(False)
    groups = param_groups(model.named_parameters(), lr=1.0, weight_decay=0.1,
                          lr_multipliers={'vlm.model': 0.5, 'vlm.model.visual': 0.1})
    by_name = {n: g for g in groups for n in g['names']}
    assert 'head.norm.weight' not in by_name
    assert len(by_name) == sum(1 for p in model.parameters() if p.requires_grad)
    # Longest prefix wins; 'vlm.model.visual' does not match 'vlm.model.visual_merger'.
    assert by_name['vlm.model.visual.proj.weight']['lr'] == pytest.approx(0.1)
    assert by_name['vlm.model.visual_merger.proj.weight']['lr'] == pytest.approx(0.5)
    assert by_name['head.proj.weight']['lr_multiplier'] == 1.0
    decayed = {n for n, g in by_name.items() if g['weight_decay'] > 0}
    assert decayed == {'vlm.model.visual.proj.weight', 'vlm.model.visual_merger.proj.weight',
                       'vlm.embed.weight', 'head.proj.weight'}
    for group in groups:
        assert [p.shape for p in group['params']] == [
            dict(model.named_parameters())[n].shape for n in group['names']]
    assert len(groups) == 6  # 3 multipliers x (decay, no decay)


def test_build_optimizer_settings_and_errors():
    model = Toy()
    opt = build_optimizer(model, lr=2e-4, weight_decay=0.05, betas=(0.9, 0.95), eps=1e-6,
                          lr_multipliers={})
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults['betas'] == (0.9, 0.95)
    assert opt.defaults['eps'] == 1e-6
    assert not opt.defaults['fused']  # CPU parameters: torch's default path
    names = [n for g in opt.param_groups for n in g['names']]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())
    fused = build_optimizer(model, lr=1e-3, weight_decay=0.0, betas=(0.9, 0.99), eps=1e-8,
                            lr_multipliers={}, fused=True)
    assert fused.defaults['fused'] is True
    model.requires_grad_(False)
    with pytest.raises(ValueError, match='no trainable parameter'):
        build_optimizer(model, lr=1e-3, weight_decay=0.0, betas=(0.9, 0.99), eps=1e-8,
                        lr_multipliers={})
