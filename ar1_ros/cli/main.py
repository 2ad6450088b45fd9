"""Argument parsing and dispatch for the `ar1` command.

Each subcommand is a module with `add_parser(subparsers)` that registers its arguments and sets
`func(args) -> int`. Subcommand modules import their heavy dependencies (torch, rclpy) inside
`func`, so `ar1 --help` stays fast and works without them.
"""
import argparse
import importlib
import sys
from typing import Optional, Sequence

import ar1_ros

# Module paths of the subcommands, in the order `ar1 --help` lists them.
SUBCOMMANDS = (
    'ar1_ros.cli.doctor',
    'ar1_ros.cli.check_model',
    'ar1_ros.cli.export_onnx',
    'ar1_ros.cli.run',
    'ar1_ros.cli.replay',
    'ar1_ros.cli.eval',
    'ar1_ros.cli.convert_pai',
    'ar1_ros.cli.dataset',
    'ar1_ros.cli.train',
    'ar1_ros.cli.bench',
    'ar1_ros.cli.sim',
    'ar1_ros.cli.closed_loop',
    'ar1_ros.cli.demo',
    'ar1_ros.cli.label',
)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of `ar1` with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog='ar1',
        description='Run, replay, evaluate and train NVIDIA Alpamayo-R1 (AR1) with ROS 2.',
    )
    parser.add_argument('--version', action='version', version=f'ar1_ros {ar1_ros.__version__}')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    for module_name in SUBCOMMANDS:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run `ar1` with `argv` (default: sys.argv[1:]) and return the process exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # ROS arguments (as launch_ros appends them) are not ours to parse: hand them on verbatim.
    ros_args = argv[argv.index('--ros-args'):] if '--ros-args' in argv else []
    args = parser.parse_args(argv[:len(argv) - len(ros_args)])
    args.ros_args = ros_args
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args))


if __name__ == '__main__':  # torchrun -m ar1_ros.cli.main train ...
    sys.exit(main())
