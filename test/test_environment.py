"""The pip-world environment `make setup` builds: pins, editable sources, messages, idempotence."""
import importlib.metadata
from pathlib import Path
import re
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_torch_is_pinned_and_no_cuda_or_torchvision_is_locked():
    # An unpinned torch pulls GBs of CUDA wheels; torchvision for torch 2.13 is a broken CUDA
    # build that also breaks transformers' Qwen processors (environment.md §4).
    assert re.search(r'^torch==2\.13\.0$', (ROOT / 'requirements/ml.in').read_text(), re.M)
    lock = (ROOT / 'requirements/constraints.txt').read_text().lower()
    assert re.search(r'^torch==2\.13\.0$', lock, re.M)
    assert not re.search(r'^(torchvision|nvidia-[\w-]+|triton)==', lock, re.M)
    assert importlib.metadata.version('torch').startswith('2.13.0')
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version('torchvision')


@pytest.mark.parametrize('order', ['torch first', 'messages first'])
def test_checkout_and_generated_messages_import_together(order):
    # ar1_ros.model must come from the editable checkout, ar1_ros.msg from the venv, in one
    # interpreter, whichever of torch and the rosidl extensions loads first.
    imports = ['import torch', 'from ar1_ros.msg import Trajectory']
    if order == 'messages first':
        imports.reverse()
    probe = '\n'.join(imports + [
        'import ar1_ros.model, ar1_ros.msg, sys',
        'print(ar1_ros.model.__file__); print(ar1_ros.msg.__file__)',
        'Trajectory(model_id="x")'])
    result = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                            cwd='/', timeout=120)
    assert result.returncode == 0, result.stderr
    model_file, msg_file = result.stdout.split()
    assert Path(model_file).is_relative_to(ROOT / 'ar1_ros')
    assert Path(msg_file).is_relative_to(sys.prefix)


def test_message_build_is_idempotent():
    # The first run builds if an input changed since the last build; the second must not.
    for _ in range(2):
        result = subprocess.run([str(ROOT / 'scripts/build_msgs.sh'), sys.prefix],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
    assert 'messages are up to date' in result.stdout
