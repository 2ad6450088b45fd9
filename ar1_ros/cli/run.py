"""`ar1 run --params FILE`: start the ar1_policy node without launch_ros (the pip world)."""
import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ar1 run`."""
    parser = subparsers.add_parser(
        'run', help='run the ar1_policy lifecycle node with a parameter file',
        description='Run the ar1_policy node (configure and activate it unless --no-autostart). '
                    'ROS arguments after --ros-args (remaps, -p name:=value, '
                    '-p use_sim_time:=true) are passed to the node as ros2 run would.')
    parser.add_argument('--params', type=Path, default=None,
                        help='ROS 2 parameter file, e.g. config/ar1.yaml')
    parser.add_argument('--no-autostart', action='store_true',
                        help='stay unconfigured; drive transitions with lifecycle services')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the node until it is shut down; exit 2 if the parameter file does not exist."""
    if args.params is not None and not args.params.is_file():
        print(f'ar1 run: parameter file not found: {args.params}')
        return 2
    from ar1_ros.nodes.main import run_node
    return run_node(args.params, start=not args.no_autostart,
                    ros_args=getattr(args, 'ros_args', ()))
