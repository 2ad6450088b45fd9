"""The layer contract of ar1_ros (see ar1_ros/__init__.py), and that the check can fail."""
from pathlib import Path
import textwrap

import pytest

from tools.layering import check_tree

ROOT = Path(__file__).resolve().parents[1]


def test_repository_respects_layers():
    problems = check_tree(ROOT)
    assert not problems, 'layering violations:\n' + '\n'.join(problems)


def _tree(tmp_path: Path, files: dict) -> Path:
    for rel, text in files.items():
        path = tmp_path / 'ar1_ros' / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for init in ('__init__.py', 'model/__init__.py', 'runtime/__init__.py', 'nodes/__init__.py'):
        (tmp_path / 'ar1_ros' / init).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / 'ar1_ros' / init).touch()
    return tmp_path


@pytest.mark.parametrize(('rel', 'source', 'expected'), [
    ('model/net.py', 'import rclpy\n', 'import rclpy: ROS import'),
    ('model/net.py', 'def f():\n    from sensor_msgs.msg import Image\n', 'sensor_msgs.msg'),
    ('model/net.py', 'from ar1_ros import msg\n', 'import ar1_ros.msg: ROS import'),
    ('model/net.py', 'from ..runtime import buffers\n', 'may not import ar1_ros.runtime'),
    ('model/net.py', 'import cv2\n', "third-party 'cv2'"),
    ('runtime/x.py', 'import importlib\nimportlib.import_module("rclpy.node")\n', 'rclpy.node'),
    ('runtime/x.py', 'from ar1_ros.nodes import policy\n', 'may not import ar1_ros.nodes'),
    ('data/x.py', 'from ar1_ros.training import loop\n', 'may not import ar1_ros.training'),
    ('training/x.py', 'import rclpy\n', 'ROS import'),
    ('cli/x.py', 'from rclpy.node import Node\n', 'ROS import'),
    ('bogus/x.py', 'import os\n', "unknown layer 'bogus'"),
])
def test_violations_are_reported(tmp_path, rel, source, expected):
    problems = check_tree(_tree(tmp_path, {rel: source}))
    assert len(problems) == 1, problems
    assert expected in problems[0]


@pytest.mark.parametrize(('rel', 'source'), [
    ('nodes/x.py', 'import rclpy\nfrom ar1_ros.msg import Trajectory\nfrom ..runtime import a\n'),
    ('runtime/x.py', 'import numpy\nfrom ar1_ros.model import AR1Model\nfrom . import y\n'),
    ('model/x.py', 'import torch\nfrom transformers import AutoConfig\n'
                   'from ar1_ros import __version__\n'),
    ('training/x.py', 'from ar1_ros.data import bags\nfrom ar1_ros.runtime import sync\n'),
])
def test_allowed_imports_pass(tmp_path, rel, source):
    assert check_tree(_tree(tmp_path, {rel: source})) == []
