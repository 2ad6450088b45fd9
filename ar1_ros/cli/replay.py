"""`ar1 replay BAG`: play a rosbag2 bag with /clock, for the pip world (no `ros2 bag play`)."""
import argparse
from pathlib import Path
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ar1 replay`."""
    parser = subparsers.add_parser(
        'replay', help='play a rosbag2 bag (sqlite3 or MCAP) with /clock, without ros2cli',
        description="Publish a bag's messages as recorded bytes with their original timing "
                    "(divided by --rate) and the bag's time on /clock, like "
                    '`ros2 bag play --clock`. Remap topics after --ros-args.')
    parser.add_argument('bag', type=Path, help='rosbag2 folder')
    parser.add_argument('--rate', type=float, default=1.0, help='playback rate (default 1.0)')
    parser.add_argument('--loop', action='store_true', help='play again from the start')
    parser.add_argument('--topics', nargs='+', default=None, metavar='TOPIC',
                        help='play only these topics')
    parser.add_argument('--clock-hz', type=float, default=40.0,
                        help='/clock rate between messages; 0 = no /clock (default 40)')
    parser.add_argument('--start-offset', type=float, default=0.0, metavar='S',
                        help='skip the first S seconds of the bag')
    parser.add_argument('--delay', type=float, default=0.0, metavar='S',
                        help='wait S seconds before playing (lets subscribers connect)')
    parser.add_argument('--wait-for', nargs='+', default=(), metavar='TOPIC',
                        help='before playing, wait until these topics (played ones or /clock) '
                             'have a subscriber; then --delay')
    parser.add_argument('--wait-timeout', type=float, default=30.0, metavar='S',
                        help='longest --wait-for wait; then warn and play (default 30)')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Play the bag until it ends (or forever with --loop, until Ctrl-C)."""
    if args.rate <= 0 or min(args.clock_hz, args.start_offset, args.delay,
                             args.wait_timeout) < 0:
        print('ar1 replay: --rate must be > 0; --clock-hz, --start-offset, --delay, '
              '--wait-timeout >= 0',
              file=sys.stderr)
        return 2
    if not args.bag.exists():  # before importing rclpy: a typo answers at once
        print(f'ar1 replay: {args.bag}: no such bag', file=sys.stderr)
        return 2
    from ar1_ros.nodes.replay_main import run_replay
    return run_replay(args.bag, rate=args.rate, loop=args.loop, topics=args.topics,
                      clock_hz=args.clock_hz, start_offset_s=args.start_offset,
                      delay_s=args.delay, wait_for=args.wait_for,
                      wait_timeout_s=args.wait_timeout, ros_args=getattr(args, 'ros_args', ()),
                      report=lambda line: print(line, flush=True),
                      warn=lambda line: print(line, file=sys.stderr, flush=True))
