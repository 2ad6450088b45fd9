"""`ar1 sim`: the demo world. `generate` records scenario episodes into bags + CoC labels.

Exit codes: 0 every episode recorded (or reused) with the expert collision-free and on the
road, 1 an episode's expert collided or left the road (recorded all the same, and flagged),
2 a usage error, 130 interrupted.
"""
import argparse
from pathlib import Path
import sys

from ar1_ros.cli.common import fail, print_usage

PROG = 'ar1 sim'
PARAMS = 'params.yaml'  # written next to the bags by generate


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ar1 sim` with its `generate` and `scenarios` actions."""
    parser = subparsers.add_parser(
        'sim', help='the demo world: scenario bags with Chain-of-Causation labels',
        description='A small driving world (highway-env traffic, rendered AR1 cameras) whose '
                    'expert drives scenarios; its episodes become bags and CoC labels.')
    actions = parser.add_subparsers(dest='sim_action', metavar='ACTION')
    gen = actions.add_parser(
        'generate', help='record scenario episodes into rosbag2 bags and labels.jsonl',
        description='Drive each (scenario, seed) with the expert and record the four cameras, '
                    'CameraInfo, odometry and /tf_static; write labels.jsonl and episodes.json.')
    gen.add_argument('--scenarios', default='all',
                     help="'all' or a comma list (see `ar1 sim scenarios`)")
    gen.add_argument('--seeds', default='0', help='seeds: 3, 0-9 or 0,4,7-9 (default 0)')
    gen.add_argument('--out', type=Path, required=True, metavar='DIR', help='output folder')
    gen.add_argument('--rig', type=Path, default=None, metavar='FILE',
                     help='camera rig YAML (default: config/sim_rig.yaml values)')
    gen.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    gen.add_argument('--camera-hz', type=float, default=10.0, metavar='HZ')
    gen.add_argument('--jpeg-quality', type=int, default=90, metavar='Q')
    gen.add_argument('--workers', type=int, default=1, metavar='N',
                     help='episodes simulated in parallel processes')
    gen.set_defaults(func=run_generate)
    listing = actions.add_parser('scenarios', help='list the scenarios')
    listing.set_defaults(func=run_list)
    parser.set_defaults(func=lambda args: print_usage(parser))




def run_list(args) -> int:
    """Print the scenario names, one per line."""
    from ar1_ros.sim.scenarios import SCENARIOS
    print('\n'.join(SCENARIOS))
    return 0


def _settings(args):
    from ar1_ros.sim.record import RecordSettings
    if args.camera_hz <= 0 or not 1 <= args.jpeg_quality <= 100 or args.workers < 1:
        raise ValueError('--camera-hz must be > 0, --jpeg-quality in 1..100, --workers >= 1')
    return RecordSettings(camera_hz=args.camera_hz, jpeg_quality=args.jpeg_quality,
                          storage=args.storage)


def _report(summary, reused: bool) -> None:
    faults = [f for f, bad in (('COLLIDED', summary.collided),
                               ('OFF ROAD', summary.off_road)) if bad]
    agreement = summary.agreement
    print(f'{summary.bag}: {"reused" if reused else "recorded"}, {summary.duration_s:.1f} s, '
          f'{summary.frames} frames, {len(summary.labels)} labels '
          f'{summary.decisions}, meta-action agreement '
          f'{"n/a" if agreement is None else f"{agreement:.0%}"}'
          f'{"  " + " ".join(faults) if faults else ""}', flush=True)


def _write_params(out: Path, rig) -> Path:
    """Write out/params.yaml, config/ar1.yaml with the rig's cameras calibrated; return it.

    Overlays of `ar1 run`, `ar1 eval` and `ar1 label review` on these bags need it.
    """
    from ar1_ros.cli.eval import default_params
    from ar1_ros.nodes.params_file import write_with_overrides
    from ar1_ros.sim.rig import rig_parameters
    return write_with_overrides(default_params(), out / PARAMS, rig_parameters(rig))


def run_generate(args) -> int:
    """Record the episodes; see the module docstring for exit codes."""
    from ar1_ros.sim.generate import LABELS, generate, parse_scenarios, parse_seeds
    from ar1_ros.sim.rig import default_rig, load_rig
    try:
        scenarios, seeds = parse_scenarios(args.scenarios), parse_seeds(args.seeds)
        settings = _settings(args)
        rig = load_rig(args.rig) if args.rig else default_rig()
    except (ValueError, OSError) as exc:
        return fail(PROG, str(exc))
    try:
        episodes = generate(scenarios, seeds, args.out, rig, settings, args.workers,
                            on_episode=_report)
    except KeyboardInterrupt:
        print(f'{PROG}: interrupted; finished episodes are kept in {args.out}', file=sys.stderr)
        return 130
    bad = [e.bag for e in episodes if e.collided or e.off_road]
    params = _write_params(args.out, rig)
    print(f'{len(episodes)} episodes in {args.out}; labels: {args.out / LABELS}; node '
          f'parameters with the rig calibration: {params}')
    if bad:
        print(f'{PROG}: the expert collided or left the road in {", ".join(bad)}',
              file=sys.stderr)
    return 1 if bad else 0
