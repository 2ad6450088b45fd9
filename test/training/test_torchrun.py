"""`ar1 train` under torchrun: two CPU processes (gloo), data-parallel, one checkpoint."""
import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file
import torch

from ar1_ros.model import AR1Model
from training.tiny_run import build_dataset, write_config

pytestmark = pytest.mark.slow


@pytest.mark.parametrize('strategy', ['ddp', 'fsdp'])
def test_two_process_torchrun_completes(tmp_path, strategy):
    build_dataset(tmp_path)
    out = tmp_path / 'run'
    config = write_config(tmp_path / 'ddp.yaml', 'expert', tmp_path / 'dataset', out,
                          train={'batch_size': 1, 'max_steps': 2, 'strategy': strategy})
    run = _torchrun('--config', str(config))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # Only rank 0 reports and writes.
    assert run.stdout.count('ar1 train: expert done at step 2') == 1, run.stdout
    final = out / 'checkpoints' / 'step-0000002'
    model = AR1Model.from_pretrained(final / 'model', dtype=torch.float32)
    trained = load_file(str(final / 'trainable.safetensors'))
    params = dict(model.network.named_parameters())
    for name, value in trained.items():
        assert torch.equal(params[name], value), name
    assert not list(out.glob('checkpoints/*.partial'))
    resumed = _torchrun('--config', str(config), '--resume', '--set', 'train.max_steps=3')
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert (out / 'latest').read_text().strip() == 'step-0000003'


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc-per-node', '2', '--standalone',
         '-m', 'ar1_ros.cli.main', 'train', *args],
        capture_output=True, text=True, timeout=600, env=env)
