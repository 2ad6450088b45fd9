"""`ar1 eval BAG... --checkpoint DIR`: run AR1 over recorded bags offline and score it.

No DDS: each bag is fed in log-time order through the node's runtime (ar1_ros.evaluation), the
node's parameter file says which topics are cameras and odometry, and the outputs are what the
node would publish on replay, plus metrics (JSON, CSV) and an HTML report.
"""
import argparse
import os
from pathlib import Path
import sys
import time

from ar1_ros.cli.common import fail

DEFAULT_OUT = 'ar1_eval'


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ar1 eval`."""
    parser = subparsers.add_parser(
        'eval', help='evaluate AR1 on recorded bags (metrics, report, output bag)',
        description="Evaluate AR1 offline on rosbag2 bags (sqlite3 or MCAP): the node's "
                    'runtime fed from the bag, ground truth from the recorded odometry.')
    parser.add_argument('bags', nargs='+', type=Path, metavar='BAG', help='rosbag2 folders')
    parser.add_argument('--checkpoint', type=Path, default=None,
                        help='AR1 checkpoint folder (overrides backend.checkpoint)')
    parser.add_argument('--params', type=Path, default=None,
                        help='node parameter file (topics, selection, safety gate); '
                             "default: the package's config/ar1.yaml")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--every', type=float, default=1.0, metavar='S',
                      help='evaluate whenever t0 can advance by S seconds (default 1.0)')
    mode.add_argument('--keyframes', action='store_true',
                      help='evaluate at decision moments found in the ego kinematics')
    parser.add_argument('--uniform', type=float, default=0.0, metavar='S',
                        help='with --keyframes: also one keyframe every S seconds')
    parser.add_argument('--samples', type=int, default=None, metavar='N',
                        help='trajectories sampled per keyframe (minADE needs N > 1)')
    parser.add_argument('--out', type=Path, default=Path(DEFAULT_OUT), help='output folder')
    parser.add_argument('--device', default=None, help="torch device, e.g. 'cpu' or 'cuda'")
    parser.add_argument('--dtype', default=None,
                        help="'float32', 'bfloat16', 'float16' or 'fp8' (CUDA sm89+)")
    parser.add_argument('--seed', type=int, default=None, help='sampling seed (with t0)')
    parser.add_argument('--max-keyframes', type=int, default=None, metavar='N',
                        help='stop each bag after N evaluated cycles')
    parser.add_argument('--no-bag', action='store_true', help='do not write the output bag')
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    parser.add_argument('--overwrite', action='store_true',
                        help="replace an existing output folder's results")
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    parser.set_defaults(func=run)


def default_params() -> Path:
    """Return config/ar1.yaml of the installed package (colcon share) or of this checkout."""
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        candidate = Path(prefix) / 'share' / 'ar1_ros' / 'config' / 'ar1.yaml'
        if prefix and candidate.is_file():
            return candidate
    return Path(__file__).resolve().parents[2] / 'config' / 'ar1.yaml'


def overrides(args: argparse.Namespace) -> dict:
    """Return the backend parameters the command line sets."""
    values = {'backend.checkpoint': args.checkpoint and str(args.checkpoint),
              'backend.num_samples': args.samples, 'backend.device': args.device,
              'backend.dtype': args.dtype, 'backend.seed': args.seed,
              # Only `ar1 closed-loop` has --greedy; unset means the params file decides.
              'backend.greedy': True if getattr(args, 'greedy', False) else None}
    return {k: v for k, v in values.items() if v is not None}



def _check_args(args: argparse.Namespace):
    if args.every <= 0 or args.uniform < 0:
        return '--every must be > 0 and --uniform >= 0'
    if args.samples is not None and args.samples < 1:
        return '--samples must be >= 1'
    if args.max_keyframes is not None and args.max_keyframes < 1:
        return '--max-keyframes must be >= 1'
    names = [b.name for b in args.bags]
    if len(set(names)) != len(names):
        return f'bag folder names must differ (outputs are named after them): {names}'
    if (args.out / 'metrics.json').exists() and not args.overwrite:
        return f'{args.out} holds results already; pass --overwrite or choose another --out'
    return None


def run(args: argparse.Namespace) -> int:
    """Evaluate every bag; exit 0, 1 when a bag failed part-way (results kept), 2 on usage."""
    problem = _check_args(args)
    if problem:
        return fail('ar1 eval', problem)
    from ar1_ros.cli.eval_session import EvalSession, SetupError
    try:
        session = EvalSession(args, args.params or default_params(), overrides(args))
    except SetupError as exc:
        return fail('ar1 eval', str(exc))
    started = time.monotonic()
    try:
        for bag in args.bags:
            session.evaluate(bag)
    except KeyboardInterrupt:
        print('ar1 eval: interrupted; writing what was evaluated so far', file=sys.stderr)
    finally:
        session.close()
    paths = session.write_outputs(time.monotonic() - started)
    for line in session.report_lines(paths):
        print(line)
    return 1 if session.failed_bags else 0
