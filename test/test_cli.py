"""The `ar1` command: help, version, and the environment report."""
from pathlib import Path
import subprocess
import sys

import ar1_ros
from ar1_ros.cli import doctor, main

AR1 = str(Path(sys.executable).parent / 'ar1')


def run_ar1(*args):
    return subprocess.run([AR1, *args], capture_output=True, text=True, timeout=120)


def test_help_lists_subcommands():
    result = run_ar1('--help')
    assert result.returncode == 0, result.stderr
    assert 'usage: ar1' in result.stdout
    assert 'doctor' in result.stdout


def test_version():
    result = run_ar1('--version')
    assert result.returncode == 0
    assert result.stdout.strip() == f'ar1_ros {ar1_ros.__version__}'


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2
    assert 'usage: ar1' in capsys.readouterr().err


def test_doctor_passes_in_this_environment():
    result = run_ar1('doctor')
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ('torch', 'rclpy', 'rmw_fastrtps_cpp', 'ar1_ros.msg'):
        assert name in result.stdout


def test_doctor_fails_on_missing_dependency(monkeypatch, capsys):
    monkeypatch.setattr(doctor, 'PYTHON_DEPENDENCIES', ('torch', 'no-such-distribution-ar1'))
    assert main(['doctor', '--no-ros']) == 1
    out = capsys.readouterr().out
    assert 'FAIL  no-such-distribution-ar1' in out
    assert '1 required check(s) failed' in out
