"""`ar1 closed-loop`: AR1 and baselines driving the demo world's scenarios, scored and reported.

For every scenario and seed the expert drives first (the reference), then the constant-velocity
baseline and the model, each a fresh copy of the same world. The model drives through the node's
runtime (InputBuffers, worker cycle, safety gate) fed with the rig's rendered cameras; its
plans are tracked by a path controller. Metrics: collisions, off-road, progress, comfort, and
open-loop minADE and decision accuracy on the expert's drive (ar1_ros.evaluation.closed_loop*).

The model comes from the node parameter file (default config/ar1.yaml) with --checkpoint,
--device, --dtype, --samples and --seed overriding it, as in `ar1 eval`; a params file whose
backend.kind is 'fake' runs the deterministic test double instead. --baselines-only runs the
baselines without loading any model (then no checkpoint is needed).

Exit codes: 0 done, 1 some episode failed (reported, the others ran), 2 usage or setup
error, 130 interrupted (what ran is written).
"""
import argparse
from pathlib import Path
import sys
import time

from ar1_ros.cli.common import fail

PROG = 'ar1 closed-loop'
DEFAULT_OUT = 'ar1_closed_loop'
BASELINES = ('expert', 'cv')


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ar1 closed-loop`."""
    parser = subparsers.add_parser(
        'closed-loop', help='drive the demo world with AR1 and baselines; metrics and report',
        description='Run AR1 (through the node runtime), a constant-velocity baseline and the '
                    'expert closed loop in the demo world; write closed_loop.json, report.md '
                    'and plots.')
    parser.add_argument('--checkpoint', type=Path, default=None,
                        help='AR1 checkpoint folder (overrides backend.checkpoint)')
    parser.add_argument('--params', type=Path, default=None,
                        help="node parameter file (selection, safety gate, backend); default: "
                             "the package's config/ar1.yaml")
    parser.add_argument('--scenarios', default='all', help="'all' or a comma list")
    parser.add_argument('--seeds', default='0', help='seeds: 3, 0-9 or 0,4,7-9 (default 0)')
    parser.add_argument('--out', type=Path, default=Path(DEFAULT_OUT), help='output folder')
    parser.add_argument('--device', default=None, help="torch device, e.g. 'cpu' or 'cuda'")
    parser.add_argument('--dtype', default=None,
                        help="'float32', 'bfloat16', 'float16' or 'fp8' (CUDA sm89+)")
    parser.add_argument('--greedy', action='store_true',
                        help='greedy reasoning decode (deterministic; default: the params file)')
    parser.add_argument('--samples', type=int, default=None, metavar='N',
                        help='trajectories sampled per cycle (minADE picks the best)')
    parser.add_argument('--seed', type=int, default=None, help='sampling seed (with t0)')
    parser.add_argument('--replan-s', type=float, default=0.5, metavar='S',
                        help='replanning period of the tracked policies (default 0.5 s)')
    parser.add_argument('--baselines', default='expert,cv',
                        help="comma list of 'expert' and 'cv' to report, or 'none' (the expert "
                             'always runs: it is the reference)')
    parser.add_argument('--baselines-only', action='store_true',
                        help='do not run the model (no checkpoint needed)')
    parser.add_argument('--max-time', type=float, default=None, metavar='S',
                        help='end every episode after S seconds of world time')
    parser.add_argument('--no-open-loop', action='store_true',
                        help='skip the open-loop minADE / decision scores')
    parser.add_argument('--rig', type=Path, default=None, metavar='FILE',
                        help='camera rig YAML (default: the sim rig)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the results of an existing output folder')
    parser.add_argument('--no-progress', action='store_true', help='no per-episode lines')
    parser.set_defaults(func=run)



def parse_baselines(text: str):
    """Return the baselines named in `text` ('none' for none); ValueError for unknown ones."""
    if text.strip() == 'none':
        return ()
    names = tuple(n.strip() for n in text.split(',') if n.strip())
    unknown = [n for n in names if n not in BASELINES]
    if unknown or not names:
        raise ValueError(f"--baselines: unknown {unknown or text!r}; use 'expert', 'cv', "
                         "both (comma-separated) or 'none'")
    return names


def _numbers(args: argparse.Namespace):
    """Return why the numeric arguments are unusable, or None."""
    if not args.replan_s > 0:
        return f'--replan-s must be > 0, got {args.replan_s}'
    if args.max_time is not None and not args.max_time > 0:
        return f'--max-time must be > 0, got {args.max_time}'
    if args.samples is not None and args.samples < 1:
        return '--samples must be >= 1'
    return None


def _check_args(args: argparse.Namespace):
    """Return (problem, plan): plan = (scenarios, seeds, policies) when there is no problem."""
    from ar1_ros.sim.generate import parse_scenarios, parse_seeds
    try:
        scenarios, seeds = parse_scenarios(args.scenarios), parse_seeds(args.seeds)
        baselines = parse_baselines(args.baselines)
    except ValueError as exc:
        return str(exc), None
    problem = _numbers(args)
    if problem is None and args.checkpoint is not None and not args.checkpoint.is_dir():
        problem = f'--checkpoint {args.checkpoint}: no such folder'
    if problem is None and args.baselines_only and not baselines:
        problem = '--baselines-only with --baselines none leaves nothing to run'
    if problem is None and (args.out / 'closed_loop.json').exists() and not args.overwrite:
        problem = f'{args.out} holds results already; pass --overwrite or choose another --out'
    model = () if args.baselines_only else ('model',)
    return problem, (scenarios, seeds, model + tuple(p for p in ('cv', 'expert')
                                                     if p in baselines))


def run(args: argparse.Namespace) -> int:
    """Run the suite; see the module docstring for exit codes."""
    problem, plan = _check_args(args)
    if problem:
        return fail(PROG, problem)
    from ar1_ros.cli.closed_loop_session import Session, SetupError
    try:
        session = Session(args, *plan)
    except SetupError as exc:
        return fail(PROG, str(exc))
    started, interrupted = time.monotonic(), False
    try:
        session.run_all(on_episode=None if args.no_progress else _print_episode)
    except KeyboardInterrupt:
        interrupted = True
        print(f'{PROG}: interrupted; writing what ran so far', file=sys.stderr)
    finally:
        session.close()
    paths = session.write(time.monotonic() - started)
    for line in session.summary_lines(paths):
        print(line)
    if interrupted:
        return 130
    return 1 if session.failed else 0


def _print_episode(case, policy: str) -> None:
    m = case.metrics[policy]
    state = (f'FAILED: {m["error"]}' if m['error'] else
             ('COLLIDED ' if m['collision'] else '') + ('OFF ROAD ' if m['off_road'] else '')
             + f'progress {m["progress_m"]:.1f} m')
    ade, skipped = m['min_ade_6_4s'], sum(m['skips'].values())
    print(f'{case.scenario} seed {case.seed} {policy}: {state}'
          + (f', {m["plans"]} plans, {skipped} without' if policy != 'expert' else '')
          + ('' if ade is None else f', open-loop minADE {ade:.2f} m')
          + f' ({m["wall_s"]:.1f} s)', flush=True)
