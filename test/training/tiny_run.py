"""Tiny training runs for the tests: a synthetic bag -> a dataset -> a YAML for `ar1 train`.

The dataset comes from a drive bag (test/bags/drive_bag.py) through the real dataset builder
with uniform keyframes, and optional reasoning labels at chosen times. The model is the tiny
official checkpoint of test/fixtures/ar1_tiny, on the CPU in float32.
"""
import json
from pathlib import Path
from typing import Dict, Optional, Sequence

from bags.drive_bag import Drive, overrides, write_drive_bag
from model.golden import BASE_VLM, CHECKPOINT
import yaml

from ar1_ros.cli.eval import default_params
from ar1_ros.cli.eval_session import topic_map
from ar1_ros.data.dataset_build import BuildSettings, DatasetBuilder
from ar1_ros.data.dataset_shards import TrainingDataset
from ar1_ros.data.labels import read_labels
from ar1_ros.nodes.params_file import load_config

NS = 10**9
COC = ('Slow down because the lead vehicle brakes ahead.',
       'Keep lane and keep the current speed on the clear road.')


def build_dataset(folder: Path, drive: Optional[Drive] = None, uniform_s: float = 1.0,
                  label_times_s: Sequence[float] = ()) -> TrainingDataset:
    """Write a drive bag and build a dataset from it; labels at start + label_times_s."""
    drive = drive or Drive(duration_s=10.0, speed=6.0, curvature=0.02)
    bag = write_drive_bag(folder / 'bags' / 'drive', drive)
    labels = None
    if label_times_s:
        path = folder / 'labels.jsonl'
        rows = [{'bag': bag.name, 't0_ns': int((drive.start_s + t) * NS),
                 'decision': 'decelerate' if i % 2 == 0 else 'keep_lane', 'coc': COC[i % 2]}
                for i, t in enumerate(label_times_s)]
        path.write_text(''.join(json.dumps(r) + '\n' for r in rows))
        labels = read_labels(path)
        assert not labels.problems, labels.problems
    config = load_config(default_params(), overrides(drive))
    settings = BuildSettings(topics=topic_map(config), runtime=config.runtime, keyframes=False,
                             uniform_s=uniform_s)
    builder = DatasetBuilder(folder / 'dataset', settings, labels)
    entry = builder.build(bag)
    assert entry.get('status') == 'complete', entry
    return TrainingDataset(folder / 'dataset')


def write_config(path: Path, stage: str, dataset: Path, out_dir: Path,
                 **sections: Dict) -> Path:
    """Write a tiny `ar1 train` YAML; sections override/extend the defaults below."""
    raw = {
        'stage': stage,
        'model': {'checkpoint': str(CHECKPOINT), 'vlm_path': str(BASE_VLM),
                  'dtype': 'float32', 'device': 'cpu'},
        'data': {'train': [str(dataset)]},
        'optim': {'lr': 1e-3, 'warmup_steps': 0, 'min_lr': 1e-3},
        'train': {'out_dir': str(out_dir), 'max_steps': 2, 'batch_size': 2, 'save_every': 1,
                  'log_every': 1, 'progress': False, 'precision': 'fp32', 'seed': 7},
        'grpo': {'group_size': 3, 'max_reasoning_tokens': 6, 'temperature': 1.0},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    path.write_text(yaml.safe_dump(raw))
    return path
