"""`ar1 bench`: the latency table and JSON on the tiny checkpoint, refusals and usage errors.

Speed is reported, never asserted: the tests check the table's rows, counts and the JSON fields.
"""
import json
from pathlib import Path
import subprocess
import sys

import pytest
import torch

from ar1_ros.cli import bench
from ar1_ros.cli.main import main
from ar1_ros.model import released
from ar1_ros.runtime.backends import DTYPES, BackendSettings

GOLDEN = Path(__file__).resolve().parent / 'fixtures' / 'ar1_tiny'
TINY = ['--checkpoint', str(GOLDEN / 'checkpoint'), '--vlm-path', str(GOLDEN / 'base_vlm')]
AR1 = str(Path(sys.executable).parent / 'ar1')


def test_tiny_checkpoint_prints_the_breakdown_and_writes_json(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    code = main(['bench', *TINY, '--runs', '2', '--warmup', '1', '--flow-steps', '4',
                 '--height', '64', '--width', '128', '--json', str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    report = json.loads(out.read_text())
    for label in ('preprocess', 'vision encode', 'prefill', 'decode', 'per token',
                  'flow matching', 'per step', 'postprocess', 'total', 'peak memory',
                  'machine:', 'bench_node.py'):
        assert label in text
    assert '4 steps' in text
    tokens = report['settings']['reasoning_tokens']
    assert f'{tokens} tokens' in text
    assert report['stages_s']['decode_per_token']['count'] == tokens > 0
    assert report['stages_s']['flow_per_step']['count'] == report['settings']['flow_steps'] == 4
    assert report['settings'] | {'device': 'cpu', 'dtype': 'float32', 'samples': 1} == \
        report['settings']
    machine = report['machine']
    assert machine['cpu']
    assert machine['cpu_cores'] >= 1
    assert machine['torch'] == torch.__version__
    assert {'gpu', 'transformers', 'python', 'load_average_1m'} <= set(machine)
    assert 'peak RSS' in report['memory']['kind']
    assert report['memory']['bytes'] > 2**20
    for row in report['stages_s'].values():
        assert 0 < row['median'] <= row['p90']


def test_released_refuses_a_cpu_without_the_memory(monkeypatch, capsys):
    monkeypatch.setattr(released, 'available_bytes', lambda device: 20 * 2**30)
    assert main(['bench', '--released', '--device', 'cpu']) == 1
    text = capsys.readouterr().out
    assert 'REFUSED' in text
    assert 'GiB' in text
    assert 'GPU' in text


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')
def test_cuda_without_a_gpu_is_refused(capsys):
    assert main(['bench', '--released', '--device', 'cuda']) == 1
    assert 'CUDA is not available' in capsys.readouterr().out


def test_missing_checkpoint_is_refused(tmp_path, capsys):
    assert main(['bench', '--checkpoint', str(tmp_path / 'none')]) == 1
    assert 'REFUSED' in capsys.readouterr().out


@pytest.mark.parametrize('argv', [
    [],
    [*TINY, '--released'],
    ['--released', '--runs', '0'],
    ['--released', '--warmup', '-1'],
    ['--released', '--samples', '0'],
    ['--released', '--flow-steps', '0'],
    ['--released', '--max-reasoning-tokens', 'x'],
    ['--released', '--dtype', 'float64'],
    ['--released', '--preprocess-device', 'cuda'],
])
def test_bad_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(['bench', *argv])
    assert exit_info.value.code == 2
    assert 'usage: ar1 bench' in capsys.readouterr().err


@pytest.mark.parametrize('source', [TINY, ['--released']])
def test_fp8_on_the_cpu_is_refused_before_building(monkeypatch, source, capsys):
    # Room for the released weights: only the fp8 check can refuse.
    monkeypatch.setattr(released, 'available_bytes', lambda device: 2**50)
    monkeypatch.setattr(released, 'build_released', lambda device: pytest.fail('built'))
    assert main(['bench', *source, '--dtype', 'fp8']) == 1
    text = capsys.readouterr().out
    assert 'REFUSED: backend.dtype fp8 needs a CUDA GPU of compute capability >= 8.9' in text
    assert "device 'cpu'" in text


@pytest.mark.skipif(not (torch.cuda.is_available()
                         and torch.cuda.get_device_capability() >= (8, 9)),
                    reason='needs CUDA sm89+')
def test_fp8_is_timed_on_a_gpu(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    code = main(['bench', *TINY, '--device', 'cuda', '--dtype', 'fp8', '--runs', '1',
                 '--warmup', '1', '--json', str(out)])
    assert code == 0, capsys.readouterr().out
    assert json.loads(out.read_text())['settings']['dtype'] == 'fp8'


def test_dtype_choices_are_the_backends():
    assert bench.DTYPES == DTYPES


def test_released_in_float32_is_a_usage_error(capsys):
    assert main(['bench', '--released', '--dtype', 'float32']) == 2
    assert 'bfloat16' in capsys.readouterr().err


def test_entry_point_exits_2_on_bad_arguments():
    result = subprocess.run([AR1, 'bench', '--released', '--runs', '0'], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert '--runs' in result.stderr


def test_reasoning_off_is_timed_without_decoding(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    code = main(['bench', *TINY, '--runs', '1', '--warmup', '0', '--no-reasoning',
                 '--height', '64', '--width', '128', '--json', str(out)])
    assert code == 0, capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report['settings']['reasoning'] is False
    assert report['settings']['reasoning_tokens'] == 0
    assert report['stages_s']['decode_per_token']['count'] == 0


def test_compiled_engines_are_timed(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    code = main(['bench', *TINY, '--runs', '1', '--warmup', '1', '--compile-decode',
                 '--expert-engine', 'compiled', '--height', '64', '--width', '128',
                 '--json', str(out)])
    assert code == 0, capsys.readouterr().out
    settings = json.loads(out.read_text())['settings']
    assert settings['compile_decode'] is True
    assert settings['expert_engine'] == 'compiled'
    assert settings['reasoning_tokens'] > 0


@pytest.mark.parametrize('where', ['cpu', 'model'])
def test_preprocess_device_is_timed_and_reported(tmp_path, capsys, where):
    out = tmp_path / 'bench.json'
    # 100x150 frames go through the resize, the part the flag moves.
    code = main(['bench', *TINY, '--runs', '1', '--warmup', '0', '--flow-steps', '2',
                 '--preprocess-device', where, '--height', '100', '--width', '150',
                 '--json', str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    report = json.loads(out.read_text())
    assert report['settings']['preprocess_device'] == where
    assert report['settings']['images'] == '16 x 100x150'
    assert f'(preprocess_device {where})' in text
    assert report['stages_s']['preprocess']['median'] > 0


def test_preprocess_device_defaults_to_the_node_default(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    code = main(['bench', *TINY, '--runs', '1', '--warmup', '0', '--flow-steps', '2',
                 '--max-reasoning-tokens', '2', '--height', '64', '--width', '128',
                 '--json', str(out)])
    assert code == 0, capsys.readouterr().out
    assert json.loads(out.read_text())['settings']['preprocess_device'] == \
        BackendSettings().preprocess_device


def test_missing_exported_expert_is_refused(tmp_path, capsys):
    code = main(['bench', *TINY, '--runs', '1', '--expert-engine', 'onnx', '--expert-file',
                 str(tmp_path / 'missing.onnx')])
    assert code == 1
    assert 'ar1 export-onnx' in capsys.readouterr().out
