"""Checking a checkpoint from its headers: `check_checkpoint` and `ar1 check-model`."""
import json
from pathlib import Path
import shutil
import subprocess
import sys

import pytest
from safetensors.torch import load_file, save_file

from ar1_ros.model import CheckpointError
from ar1_ros.model.report import check_checkpoint
from model.golden import BASE_VLM, CHECKPOINT, GOLDEN

AR1 = str(Path(sys.executable).parent / 'ar1')


def test_report_matches_the_official_model_info():
    info = json.loads((GOLDEN / 'model_info.json').read_text())
    report = check_checkpoint(CHECKPOINT, vlm_path=BASE_VLM)
    official = info['n_params_by_top_module']
    assert official.pop('diffusion') == 0  # a module there, a plain object here
    assert report.parameters == official
    assert report.tensor_count == info['state_dict_keys']
    assert report.has_tokenizer
    assert report.expert['hidden_size'] == 48


def test_a_wrong_shape_is_found_without_loading(tmp_path):
    shutil.copytree(CHECKPOINT, tmp_path / 'ckpt')
    tensors = load_file(str(tmp_path / 'ckpt' / 'model.safetensors'))
    tensors['expert.norm.weight'] = tensors['expert.norm.weight'][:40].clone()
    save_file(tensors, str(tmp_path / 'ckpt' / 'model.safetensors'))
    with pytest.raises(CheckpointError, match='expert.norm.weight'):
        check_checkpoint(tmp_path / 'ckpt', vlm_path=BASE_VLM)
    result = subprocess.run([AR1, 'check-model', str(tmp_path / 'ckpt'), '--vlm-path',
                             str(BASE_VLM)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert 'REFUSED' in result.stdout
    assert 'expert.norm.weight' in result.stdout


def test_cli_reports_a_good_checkpoint():
    result = subprocess.run([AR1, 'check-model', str(CHECKPOINT), '--vlm-path', str(BASE_VLM)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '1,128,896 parameters' in result.stdout
