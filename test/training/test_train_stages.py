"""`ar1 train` end to end on the tiny official checkpoint (CPU): every stage trains, saves,
resumes exactly, and writes a checkpoint `AR1Model.from_pretrained` loads.
"""
from pathlib import Path

from model.golden import BASE_VLM, CHECKPOINT
import pytest
from safetensors.torch import load_file
import torch

from ar1_ros.cli.main import main
from ar1_ros.model import AR1Model
from ar1_ros.model.checkpoint import read_shapes
from ar1_ros.training.config import load_train_config
from ar1_ros.training.loop import Trainer
from training.tiny_run import build_dataset, write_config

pytestmark = pytest.mark.slow
STAGES = ('vlm', 'expert', 'grpo')


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    data = build_dataset(root, label_times_s=(2.5, 3.5))
    assert len(data) >= 3
    assert data.labelled_count == 2
    return root / 'dataset'


def _trainer(tmp_path: Path, stage: str, dataset: Path, name: str, resume=False, **sections):
    config = write_config(tmp_path / f'{name}.yaml', stage, dataset, tmp_path / name, **sections)
    return Trainer(load_train_config(config), resume=resume)


def _trained(folder: Path) -> dict:
    return load_file(str(folder / 'trainable.safetensors'))


@pytest.mark.parametrize('stage', STAGES)
def test_two_steps_save_and_exact_resume(tmp_path, dataset, stage):
    straight = _trainer(tmp_path, stage, dataset, 'straight', train={'max_steps': 4})
    final = straight.run()
    assert final.name == 'step-0000004'
    first = _trainer(tmp_path, stage, dataset, 'resumed')
    assert first.run().name == 'step-0000002'
    assert (tmp_path / 'resumed' / 'latest').read_text().strip() == 'step-0000002'
    resumed = _trainer(tmp_path, stage, dataset, 'resumed', resume=True,
                       train={'max_steps': 4})
    assert resumed.step == 2
    again = resumed.run()
    expected, got = _trained(final), _trained(again)
    assert sorted(expected) == sorted(got)
    for name, value in expected.items():
        assert torch.equal(value, got[name]), name
    losses = [h['loss'] for h in straight.history]
    assert [h['loss'] for h in first.history + resumed.history] == pytest.approx(losses, abs=0)
    # The saved model is an official checkpoint with the trained tensors in it.
    model = AR1Model.from_pretrained(again / 'model', dtype=torch.float32)
    params = dict(model.network.named_parameters())
    for name, value in got.items():
        assert torch.equal(params[name], value), name
    assert set(read_shapes(again / 'model')) == set(read_shapes(CHECKPOINT))


def test_frozen_parts_stay_frozen(tmp_path, dataset):
    final = _trainer(tmp_path, 'expert', dataset, 'run').run()
    trained = AR1Model.from_pretrained(final / 'model', dtype=torch.float32)
    start = AR1Model.from_pretrained(CHECKPOINT, dtype=torch.float32, vlm_path=BASE_VLM)
    before = dict(start.network.named_parameters())
    changed = {n for n, p in trained.network.named_parameters() if not torch.equal(p, before[n])}
    assert changed
    assert all(n.startswith(('expert.', 'action_in_proj.', 'action_out_proj.')) for n in changed)


def test_lora_checkpoint_is_merged_into_official_names(tmp_path, dataset):
    final = _trainer(tmp_path, 'vlm', dataset, 'lora',
                     lora={'enabled': True, 'r': 4, 'alpha': 8, 'dropout': 0.0},
                     optim={'lr': 1e-2, 'min_lr': 1e-2}).run()
    assert set(read_shapes(final / 'model')) == set(read_shapes(CHECKPOINT))
    trainable = _trained(final)
    assert trainable
    assert all('.lora_' in name for name in trainable)
    trained = AR1Model.from_pretrained(final / 'model', dtype=torch.float32)
    start = AR1Model.from_pretrained(CHECKPOINT, dtype=torch.float32, vlm_path=BASE_VLM)
    before = dict(start.network.named_parameters())
    changed = {n for n, p in trained.network.named_parameters() if not torch.equal(p, before[n])}
    assert changed
    assert all(n.startswith('vlm.model.language_model.layers.') and
               n.endswith(('q_proj.weight', 'k_proj.weight', 'v_proj.weight', 'o_proj.weight'))
               for n in changed)


def _fixed_loss(trainer) -> float:
    """The objective on the whole (tiny) set with fixed flow draws: no sampling noise."""
    batch = next(iter(trainer.loader))
    generator = torch.Generator().manual_seed(0)
    size = batch.input_ids.shape[0]
    with torch.no_grad():
        if trainer.config.stage == 'vlm':
            return trainer.objective(batch)[0].item()
        noise = torch.randn(size, 64, 2, generator=generator)
        times = torch.linspace(0.1, 0.9, size)
        return trainer.objective(batch, noise=noise, t=times)[0].item()


@pytest.mark.parametrize('stage', ['vlm', 'expert'])
def test_overfits_a_tiny_set_within_30_steps(tmp_path, dataset, stage):
    trainer = _trainer(tmp_path, stage, dataset, 'overfit',
                       train={'max_steps': 30, 'batch_size': 3, 'save_every': 30},
                       data={'max_samples': 3}, optim={'lr': 3e-3, 'min_lr': 3e-3})
    before = _fixed_loss(trainer)
    trainer.run()
    after = _fixed_loss(trainer)
    assert after < 0.5 * before, (before, after, [h['loss'] for h in trainer.history])


def test_cli_trains_and_refuses_to_overwrite(tmp_path, dataset, capsys):
    config = write_config(tmp_path / 'cli.yaml', 'expert', dataset, tmp_path / 'cli_run')
    assert main(['train', '--config', str(config)]) == 0
    assert 'model:' in capsys.readouterr().out
    assert main(['train', '--config', str(config)]) == 2
    assert '--resume' in capsys.readouterr().err
    assert main(['train', '--config', str(config), '--resume', '--set',
                 'train.max_steps=3']) == 0
    assert (tmp_path / 'cli_run' / 'latest').read_text().strip() == 'step-0000003'
    assert main(['train', '--config', str(config), '--set', 'optim.lr=fast']) == 2
    assert 'optim.lr' in capsys.readouterr().err
    assert main(['train', '--config', str(tmp_path / 'missing.yaml')]) == 2


def test_tensorboard_events_are_written(tmp_path, dataset):
    _trainer(tmp_path, 'expert', dataset, 'tb').run()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(tmp_path / 'tb' / 'tensorboard'))
    events.Reload()
    steps = [e.step for e in events.Scalars('expert/loss')]
    assert steps == [1, 2]


def test_new_model_from_a_base_vlm_trains_and_loads(tmp_path, dataset):
    """A base VLM folder (random weights here) gets a new expert and trains stage by stage."""
    small = {'min_pixels': 4096, 'max_pixels': 16384}
    expert = {'hidden_size': 32, 'intermediate_size': 64, 'num_attention_heads': 4,
              'head_dim': 32}
    model = {'checkpoint': None, 'vlm_path': None, 'base_vlm': str(BASE_VLM),
             'random_vlm': True, 'expert_cfg': expert, 'overrides': small}
    stage1 = _trainer(tmp_path, 'vlm', dataset, 'base1', model=model).run()
    stage2 = _trainer(tmp_path, 'expert', dataset, 'base2',
                      model={'checkpoint': str(stage1 / 'model'), 'vlm_path': None}).run()
    trained = AR1Model.from_pretrained(stage2 / 'model', dtype=torch.float32)
    assert trained.network.expert.config.hidden_size == 32
    assert trained.config.raw['action_in_proj_cfg']['hidden_size'] == 1024
    pred = trained.predict(torch.zeros(4, 4, 72, 128, 3, dtype=torch.uint8),
                           torch.zeros(16, 3), torch.eye(3).expand(16, 3, 3),
                           max_reasoning_tokens=4, generator=torch.Generator().manual_seed(0))
    assert pred.trajectory_xyz.shape == (1, 64, 3)
    assert torch.isfinite(pred.trajectory_xyz).all()


def test_bf16_weights_need_a_gpu(tmp_path, dataset):
    with pytest.raises(ValueError, match='precision bf16'):
        _trainer(tmp_path, 'expert', dataset, 'bf16', model={'dtype': 'bfloat16'})
    with pytest.raises(ValueError, match='needs a GPU'):
        _trainer(tmp_path, 'expert', dataset, 'bf16', train={'precision': 'bf16'})
