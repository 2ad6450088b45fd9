"""`ar1 train` configuration: the shipped YAMLs, overrides and every refusal."""
from pathlib import Path
import re

import pytest

from ar1_ros.training.config import (
    TrainConfigError,
    apply_overrides,
    load_train_config,
    parse_train_config,
)

SHIPPED = Path(__file__).resolve().parents[2] / 'config' / 'train'
BASE = {'stage': 'expert', 'model': {'checkpoint': '/m'}, 'data': {'train': ['/d']}}


@pytest.mark.parametrize(('name', 'stage'), [('stage1.yaml', 'vlm'), ('stage2.yaml', 'expert'),
                                        ('grpo.yaml', 'grpo')])
def test_shipped_configs_load_with_the_official_values(name, stage):
    config = load_train_config(SHIPPED / name)
    assert config.stage == stage
    expected_lr = {'vlm': 1e-5, 'expert': 1e-4, 'grpo': 2e-6}[stage]
    assert config.optim.lr == pytest.approx(expected_lr)
    if stage == 'vlm':
        assert config.optim.lr_multipliers == {'vlm.model.visual': 0.1}
        assert config.optim.warmup_steps == 500
        assert config.train.grad_accum == 4
    if stage == 'grpo':
        assert (config.grpo.eps_low, config.grpo.eps_high) == (0.2, 0.28)
        assert config.grpo.group_size == 12


def test_overrides_paths_and_number_parsing(tmp_path):
    path = tmp_path / 'c.yaml'
    path.write_text('stage: vlm\nmodel: {checkpoint: ckpt}\ndata: {train: [data]}\n'
                    'optim: {lr: 1e-5}\n')
    config = load_train_config(path, ['optim.lr=3e-4', 'lora.enabled=true',
                                      'train.out_dir=runs/a', 'train.max_steps=7'])
    assert config.optim.lr == pytest.approx(3e-4)
    assert config.lora.enabled is True
    assert config.model.checkpoint == str(tmp_path / 'ckpt')
    assert config.data.train == (str(tmp_path / 'data'),)
    assert config.train.out_dir == str(tmp_path / 'runs' / 'a')
    assert config.train.max_steps == 7
    assert parse_train_config(BASE).optim.lr == pytest.approx(1e-5)


@pytest.mark.parametrize(('change', 'message'), [
    ({'stage': 'rl'}, 'stage must be one of'),
    ({'extra': 1}, 'unknown top-level'),
    ({'model': {'checkpoint': '/m', 'base_vlm': '/b'}}, 'exactly one of'),
    ({'model': {}}, 'exactly one of'),
    ({'model': {'checkpoint': '/m', 'dtype': 'int8'}}, 'model.dtype'),
    ({'data': {'train': []}}, 'data.train'),
    ({'optim': {'lr': 'fast'}}, 'optim.lr'),
    ({'optim': {'lr': 0}}, 'optim.lr must be > 0'),
    ({'optim': {'betas': 0.9}}, 'optim.betas'),
    ({'train': {'batch_size': 0}}, 'train.batch_size'),
    ({'train': {'strategy': 'deepspeed'}}, 'train.strategy'),
    ({'train': {'progress': 'yes'}}, 'train.progress'),
    ({'train': {'bacth_size': 2}}, "unknown key(s) ['bacth_size']"),
    ({'lora': {'enabled': True}}, 'lora applies to the backbone'),
    ({'grpo': {'group_size': 1}}, 'group_size'),
    ({'loss': {'action_attention': 'full'}}, 'action_attention'),
    ({'optim': []}, 'optim: expected a mapping'),
])
def test_refusals_name_the_key(change, message):
    with pytest.raises(TrainConfigError, match=re.escape(message)):
        parse_train_config(dict(BASE, **change))


def test_bad_override_strings():
    with pytest.raises(TrainConfigError, match='section.key=value'):
        apply_overrides({}, ['lr'])
    with pytest.raises(TrainConfigError, match='not a section'):
        apply_overrides({'stage': 'vlm'}, ['stage.x=1'])


def test_unreadable_files(tmp_path):
    with pytest.raises(TrainConfigError, match='cannot read'):
        load_train_config(tmp_path / 'missing.yaml')
    (tmp_path / 'list.yaml').write_text('- 1\n')
    with pytest.raises(TrainConfigError, match='mapping'):
        load_train_config(tmp_path / 'list.yaml')
