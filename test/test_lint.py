"""Lint: the whole repository follows one style (pyproject.toml [tool.ruff]: ROS 2 conventions)."""
from pathlib import Path
import shutil
import subprocess
import sys

ROOT = Path(__file__).resolve().parents[1]


def _ruff(*args: str, stdin: str = None) -> subprocess.CompletedProcess:
    ruff = shutil.which('ruff', path=str(Path(sys.executable).parent)) or 'ruff'
    return subprocess.run([ruff, *args], cwd=ROOT, input=stdin, capture_output=True, text=True,
                          timeout=120)


def test_repository_is_lint_clean():
    result = _ruff('check', '--no-cache', '.')
    assert result.returncode == 0, result.stdout + result.stderr


def test_style_rules_are_active():
    # Guards against a configuration that silently lints nothing: the project's own config must
    # flag double quotes, a missing docstring and a line over 99 columns in a package module.
    long_name = 'y' * 100
    source = f'def f():\n    return "x" + {long_name}\n'
    result = _ruff('check', '--no-cache', '--stdin-filename', 'ar1_ros/runtime/probe.py', '-',
                   stdin=source)
    assert result.returncode == 1
    for code in ('Q000', 'D103', 'E501'):
        assert code in result.stdout, result.stdout
