"""`ar1 doctor`: report whether this environment can run ar1_ros, and why not."""
import argparse
import dataclasses
import importlib.metadata
import os
import platform
import sys
from typing import List


@dataclasses.dataclass(frozen=True)
class Check:
    """One line of the report; a failed `required` check makes `ar1 doctor` exit non-zero."""

    name: str
    ok: bool
    detail: str
    required: bool = True


# Distributions the model, runtime and data layers need, by their PyPI names.
PYTHON_DEPENDENCIES = (
    'torch', 'transformers', 'safetensors', 'tokenizers', 'numpy', 'pillow',
    'opencv-python-headless', 'rosbags', 'onnxruntime',
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ar1 doctor`."""
    parser = subparsers.add_parser(
        'doctor', help='check Python dependencies, ROS 2 (rclpy, RMW) and the ar1_ros messages')
    parser.add_argument('--no-ros', action='store_true', help='skip the ROS 2 checks')
    parser.set_defaults(func=run)


def python_checks() -> List[Check]:
    """Check the interpreter and each required distribution (by metadata, without importing)."""
    checks = [Check('python', sys.version_info >= (3, 11),
                    f'{platform.python_version()} (needs >= 3.11)')]
    for dist in PYTHON_DEPENDENCIES:
        try:
            checks.append(Check(dist, True, importlib.metadata.version(dist)))
        except importlib.metadata.PackageNotFoundError:
            checks.append(Check(dist, False, 'not installed (make setup)'))
    return checks


def ros_checks() -> List[Check]:
    """Check rclpy, its middleware and our generated messages (imported in the nodes layer)."""
    from ar1_ros.nodes.environment import describe_ros
    checks = [Check(name, ok, detail) for name, ok, detail in describe_ros()]
    for var in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE', 'RMW_IMPLEMENTATION'):
        checks.append(Check(var, True, os.environ.get(var, '(unset)'), required=False))
    return checks


def run(args: argparse.Namespace) -> int:
    """Print the report; return 0 when every required check passed, 1 otherwise."""
    checks = python_checks() + ([] if args.no_ros else ros_checks())
    width = max(len(c.name) for c in checks)
    for check in checks:
        mark = 'ok' if check.ok else ('FAIL' if check.required else 'warn')
        print(f'{mark:>4}  {check.name:<{width}}  {check.detail}')
    failed = [c.name for c in checks if c.required and not c.ok]
    if failed:
        print(f'ar1 doctor: {len(failed)} required check(s) failed: {", ".join(failed)}')
        return 1
    return 0
