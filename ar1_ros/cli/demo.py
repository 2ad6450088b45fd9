"""`ar1 demo`: the whole loop on one demo-world bag, ending in a folder a person can look at.

1. generate (or reuse) a held-out demo-world episode as a bag with CoC labels (`ar1 sim`);
2. start the policy node (`ar1 run`) on the demo checkpoint, replay the bag to it over DDS
   (`ar1 replay`) and record what the node publishes (nodes.demo_session);
3. write the node's overlay video, a few frames, a bird's-eye plot and the metrics
   (evaluation.demo_report), then the closed-loop comparison of the checkpoint with the
   constant-velocity baseline and the expert on the same scenario (`ar1 closed-loop`).

Exit codes: 0 done, 1 the session or a report step failed (message and log path printed),
2 a usage error, 130 interrupted.
"""
import argparse
from pathlib import Path
import time

from ar1_ros.cli.common import fail

PROG = 'ar1 demo'
REPO = Path(__file__).resolve().parents[2]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ar1 demo`."""
    parser = subparsers.add_parser(
        'demo', help='replay a demo-world bag through the node; video, plot and metrics',
        description='Generate (or reuse) a demo-world bag, replay it through the policy node '
                    'over DDS with the demo checkpoint, and write what it did into one folder.')
    parser.add_argument('--out', type=Path, default=REPO / 'build' / 'demo', metavar='DIR')
    parser.add_argument('--checkpoint', type=Path, default=REPO / 'demo' / 'checkpoint',
                        metavar='DIR', help='AR1 checkpoint folder (default: demo/checkpoint)')
    parser.add_argument('--scenario', default='overtake', help='demo-world scenario')
    parser.add_argument('--seed', type=int, default=1000,
                        help='episode seed (the demo checkpoint trained on seeds < 1000)')
    parser.add_argument('--rate', type=float, default=1.0, help='replay rate (default 1.0)')
    parser.add_argument('--cycle-hz', type=float, default=5.0,
                        help="the node's cycle_rate_hz (default 5)")
    parser.add_argument('--no-closed-loop', action='store_true',
                        help='skip the closed-loop comparison')
    parser.set_defaults(func=run)



def node_overrides(checkpoint: Path, rig, cycle_hz: float) -> dict:
    """Node parameters of the demo: the checkpoint on the CPU, the overlay on front_wide."""
    from ar1_ros.sim.rig import rig_parameters
    front = next(c for c in rig if c.camera_id == 'front_wide')
    return {'backend.kind': 'torch', 'backend.checkpoint': str(checkpoint.resolve()),
            'backend.vlm_path': '', 'backend.device': 'cpu', 'backend.dtype': 'float32',
            'backend.num_samples': 1, 'backend.greedy': True,
            'backend.max_reasoning_tokens': 48, 'cycle_rate_hz': float(cycle_hz),
            'output.overlay': True, 'output.overlay_camera': front.ar1_name,
            **rig_parameters(rig)}


def _episode(args, rig):
    """Generate or reuse the demo bag; return (bag path, labels of it, world geometry)."""
    from ar1_ros.sim.generate import generate, read_labels_of
    from ar1_ros.sim.scenarios import make_world
    episode = generate([args.scenario], [args.seed], args.out / 'bags', rig)[0]
    labels = [lb for lb in read_labels_of(args.out / 'bags') if lb.bag == episode.bag]
    return args.out / 'bags' / episode.bag, labels, make_world(args.scenario, args.seed).geometry


def _session(args, rig, bag: Path) -> Path:
    """Replay the bag through the node; return the bag of its recorded outputs."""
    from ar1_ros.cli.eval import default_params
    from ar1_ros.nodes.demo_session import (
        SessionSettings,
        isolated_environment,
        replay_through_node,
    )
    from ar1_ros.nodes.params_file import load_config, write_with_overrides
    params = write_with_overrides(default_params(), args.out / 'params.yaml',
                                  node_overrides(args.checkpoint, rig, args.cycle_hz))
    config = load_config(params)  # a bad parameter fails here, before any process starts
    domain = isolated_environment()
    print(f'{PROG}: node + replay over DDS (ROS_DOMAIN_ID {domain}), logs in '
          f'{args.out / "logs"}', flush=True)
    counts = replay_through_node(bag, params, args.out / 'outputs', args.out / 'logs',
                                 config.inputs[0].topic, SessionSettings(rate=args.rate))
    print(f'{PROG}: recorded {counts}', flush=True)
    return args.out / 'outputs'


def _report(args, bag: Path, outputs: Path, labels, geometry) -> dict:
    from ar1_ros.data.bags import BagReader
    from ar1_ros.data.ego_track import EgoTrack
    from ar1_ros.data.pai.messages import EGO_TOPIC
    from ar1_ros.evaluation.demo_report import read_outputs, write_report
    with BagReader(bag) as reader:
        track, fault = EgoTrack.from_bag(reader, EGO_TOPIC)
    if fault is not None:
        raise RuntimeError(f'{bag}: {fault}')
    return write_report(args.out, read_outputs(outputs), track, labels, geometry,
                        fps=args.cycle_hz * args.rate,
                        extra={'scenario': args.scenario, 'seed': args.seed,
                               'checkpoint': str(args.checkpoint)})


def _closed_loop(args, params: Path) -> int:
    """`ar1 closed-loop` of the checkpoint against cv and the expert on the demo episode."""
    from ar1_ros.cli.main import main
    return main(['closed-loop', '--checkpoint', str(args.checkpoint), '--params', str(params),
                 '--scenarios', args.scenario, '--seeds', str(args.seed), '--device', 'cpu',
                 '--dtype', 'float32', '--out', str(args.out / 'closed_loop'), '--overwrite'])


def _print_summary(metrics: dict) -> None:
    s = metrics['summary']
    print(f"plans: {s['plans']}  ADE@3s model {s['model_ade_3s']} m vs constant velocity "
          f"{s['cv_ade_3s']} m; decision accuracy {s['decision_accuracy']} on "
          f"{s['labelled_plans']} labelled plans")


def run(args: argparse.Namespace) -> int:
    """Run the demo; see the module docstring."""
    if not (args.checkpoint / 'config.json').is_file():
        return fail(PROG, f'{args.checkpoint}: not an AR1 checkpoint folder (no config.json); '
                     'build it with `make demo-checkpoint`')
    if args.rate <= 0 or args.cycle_hz <= 0:
        return fail(PROG, '--rate and --cycle-hz must be > 0')
    start = time.monotonic()
    from ar1_ros.sim.rig import default_rig
    from ar1_ros.sim.scenarios import SCENARIOS
    if args.scenario not in SCENARIOS:
        return fail(PROG, f'unknown scenario {args.scenario!r}; known: {", ".join(SCENARIOS)}')
    args.out.mkdir(parents=True, exist_ok=True)
    rig = default_rig()
    try:
        bag, labels, geometry = _episode(args, rig)
        outputs = _session(args, rig, bag)
        metrics = _report(args, bag, outputs, labels, geometry)
        closed = 0 if args.no_closed_loop else _closed_loop(args, args.out / 'params.yaml')
    except KeyboardInterrupt:
        return fail(PROG, 'interrupted', 130)
    except Exception as exc:  # noqa: BLE001 - one clear line, then the logs say the rest
        return fail(PROG, f'{type(exc).__name__}: {exc}', 1)
    _print_summary(metrics)
    if closed != 0:
        return fail(PROG, f'the closed-loop comparison failed (exit {closed})', 1)
    print(f'{PROG}: done in {time.monotonic() - start:.0f} s; open {args.out.resolve()}')
    return 0
