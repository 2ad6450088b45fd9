"""`ar1 label BAG... --out LABELS.jsonl`: Chain-of-Causation labels for bags (docs/labelling.md).

`ar1 label` hands its arguments, verbatim, to the action their first one names: an entry of
ACTIONS ('module:function', called with the remaining arguments, returning the exit code), or,
for anything else, labelling the bags. So `ar1 label review ...` (cli.label_review) is
registered in ACTIONS without touching `ar1 label BAG...` (a bag folder named like an action is
given as ./NAME). The `ar1` parser therefore reads no options of its own here ('+' is its only
prefix character), and the labelling parser below does.

Exit codes: 0 every bag labelled, 1 a bag failed (a missing topic, a corrupt chunk: the labels
before the fault are kept and the other bags labelled), 2 a usage error, 130 interrupted (the
labels so far are written).
"""
import argparse
import collections
import importlib
from pathlib import Path
import sys
from typing import Dict, List, Optional, Sequence

from ar1_ros.cli.common import add_params_option, fail

PROG = 'ar1 label'
# action name -> 'module:function(argv) -> int'; the first argument selects it.
ACTIONS: Dict[str, str] = {'review': 'ar1_ros.cli.label_review:main'}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ar1 label` (its arguments are parsed by `run`, see the module docstring)."""
    parser = subparsers.add_parser(
        'label', help='draft Chain-of-Causation labels of recorded bags (rules or a teacher VLM)',
        add_help=False, prefix_chars='+')
    parser.add_argument('argv', nargs='*')
    parser.set_defaults(func=run)


def label_parser() -> argparse.ArgumentParser:
    """Return the parser of `ar1 label BAG... --out FILE`."""
    parser = argparse.ArgumentParser(
        prog=PROG, description='Label the keyframes of rosbag2 bags with Chain-of-Causation '
                               'drafts: rule-based from the recorded meta-action, or by a local '
                               'Qwen2.5-VL/Qwen3-VL teacher. Writes the JSONL `ar1 dataset build '
                               '--labels` reads.',
        epilog='review the labels in a browser: ar1 label review LABELS.jsonl --bags BAG... '
               '--out PAGE.html (ar1 label review --help)')
    parser.add_argument('bags', nargs='+', type=Path, metavar='BAG', help='rosbag2 folders')
    parser.add_argument('--out', type=Path, required=True, metavar='LABELS.jsonl',
                        help='labels file to write')
    parser.add_argument('--teacher', type=Path, default=None, metavar='DIR',
                        help='local Qwen2.5-VL or Qwen3-VL model folder (safetensors)')
    parser.add_argument('--device', default='cpu', help="teacher device, e.g. 'cpu' or 'cuda'")
    parser.add_argument('--max-new-tokens', type=int, default=256, metavar='N',
                        help='longest teacher answer in tokens (default 256)')
    add_params_option(parser)
    parser.add_argument('--uniform', type=float, default=0.0, metavar='S',
                        help='also one keyframe every S seconds between the events')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    return parser



def run(args: argparse.Namespace) -> int:
    """Dispatch on the first argument: an ACTIONS entry, else labelling (module docstring)."""
    argv: List[str] = list(args.argv)
    if argv and argv[0] in ACTIONS:
        module, _, function = ACTIONS[argv[0]].partition(':')
        return int(getattr(importlib.import_module(module), function)(argv[1:]))
    try:
        options = label_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return int(exc.code or 0)
    options.ros_args = getattr(args, 'ros_args', [])
    return label_bags(options)


def bags_and_out_problem(bags: Sequence[Path], out: Path, overwrite: bool,
                         kind: str) -> Optional[str]:
    """Return why bags (named apart?) and --out (a `kind` file, replaceable?) are unusable."""
    names = [b.name for b in bags]
    if len(set(names)) != len(names):
        return f'bag folder names must differ (labels are named after them): {names}'
    if out.is_dir():
        return f'{out} is a folder; --out names the {kind} file to write'
    if out.exists() and not overwrite:
        return f'{out} exists; pass --overwrite to replace it'
    return None


def _check_args(options: argparse.Namespace) -> Optional[str]:
    if options.uniform < 0 or not 1 <= options.max_new_tokens <= 4096:
        return '--uniform must be >= 0 and --max-new-tokens within 1..4096'
    problem = bags_and_out_problem(options.bags, options.out, options.overwrite, 'JSONL')
    if problem:
        return problem
    if options.teacher is not None and not options.teacher.is_dir():
        return f'--teacher {options.teacher} is not a folder'
    return None


def load_settings(options: argparse.Namespace):
    """Return LabelSettings of options.params, .ros_args, .uniform; ValueError on faults."""
    from ar1_ros.cli.dataset import ros_overrides
    from ar1_ros.cli.eval import default_params
    from ar1_ros.cli.eval_session import topic_map
    from ar1_ros.data.labelling import LabelSettings
    from ar1_ros.nodes.params import ConfigError
    from ar1_ros.nodes.params_file import load_config
    try:
        config = load_config(options.params or default_params(), ros_overrides(options.ros_args))
    except ConfigError as exc:
        raise ValueError(f'parameters: {exc}') from exc
    return LabelSettings(topic_map(config), config.runtime, uniform_s=options.uniform)


def _teacher(options: argparse.Namespace):
    if options.teacher is None:
        return None
    from ar1_ros.data.teacher import Teacher, TeacherError
    try:
        return Teacher(options.teacher, options.device, options.max_new_tokens)
    except TeacherError as exc:
        raise ValueError(str(exc)) from exc


def bag_line(result) -> str:
    """Return the summary line of one bag's BagLabels."""
    decisions = ', '.join(f'{d} {n}' for d, n in result.decisions.items()) or 'none'
    skips = ', '.join(f'{r} {n}' for r, n in sorted(result.skips.items())) or 'none'
    line = (f'{result.bag}: {result.keyframes} keyframes, {len(result.labels)} labels '
            f'({decisions}); {result.inconsistent} inconsistent; skipped: {skips}')
    rejected = sum(result.teacher_rejected.values())
    if result.teacher_accepted or rejected:
        reasons = ', '.join(f'{r} {n}' for r, n in sorted(result.teacher_rejected.items()))
        line += (f'; teacher accepted {result.teacher_accepted}, rejected {rejected}'
                 + (f' ({reasons})' if reasons else ''))
    return line + (f'; FAILED: {result.error}' if result.error else '')


def _label_all(bags: Sequence[Path], settings, teacher, quiet: bool, labels: list) -> List[str]:
    """Label each bag into `labels`; return the names of the bags that failed."""
    from ar1_ros.cli.dataset import _Bar  # the same per-bag progress bar as the builder
    from ar1_ros.data.labelling import label_bag
    failed = []
    for bag in bags:
        bar = _Bar(bag.name, quiet)
        try:
            result = label_bag(bag, settings, teacher, bar)
        finally:
            bar.close()
        labels.extend(result.labels)
        print(bag_line(result), flush=True)
        if result.error:
            print(f'{PROG}: {result.error}', file=sys.stderr)
            failed.append(result.bag)
    return failed


def label_bags(options: argparse.Namespace) -> int:
    """Label every bag and write --out; exit 0, 1 a bag failed, 2 usage, 130 interrupted."""
    problem = _check_args(options)
    if problem:
        return fail(PROG, problem)
    try:
        settings, teacher = load_settings(options), _teacher(options)
    except ValueError as exc:
        return fail(PROG, str(exc))
    from ar1_ros.data.labelling import write_labels
    labels: list = []
    code = 0
    try:
        code = 1 if _label_all(options.bags, settings, teacher, options.no_progress,
                               labels) else 0
    except KeyboardInterrupt:
        print(f'{PROG}: interrupted; writing the labels so far', file=sys.stderr)
        code = 130
    try:
        write_labels(options.out, labels)
    except OSError as exc:
        print(f'{PROG}: cannot write {options.out}: {exc}', file=sys.stderr)
        return 1
    counts = collections.Counter(lb.provenance for lb in labels)
    provenance = ', '.join(f'{p} {n}' for p, n in sorted(counts.items())) or 'none'
    print(f'{len(labels)} labels ({provenance}; {sum(lb.consistent is False for lb in labels)} '
          f'inconsistent) in {options.out}')
    return code

