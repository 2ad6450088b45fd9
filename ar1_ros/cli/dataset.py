"""`ar1 dataset build BAG... --out DIR`: training samples from recorded bags (docs/dataset.md).

The node's parameter file says which topics are cameras and odometry and how frames and history
are selected, so a sample is what the node would have seen at its t0. Exit codes: 0 every bag
built (or kept), 1 a bag failed (the others are built), 2 a usage error, 130 interrupted.
"""
import argparse
from pathlib import Path
import sys
from typing import Dict, List, Optional

import yaml

from ar1_ros.cli.common import add_params_option, fail, print_usage

PROG = 'ar1 dataset build'


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ar1 dataset` and its `build` action."""
    parser = subparsers.add_parser(
        'dataset', help='build training datasets from recorded bags',
        description='Training datasets: samples at decision moments of rosbag2 bags.')
    actions = parser.add_subparsers(dest='dataset_action', metavar='ACTION')
    build = actions.add_parser(
        'build', help='write the samples of bags (and CoC labels) to safetensors shards',
        description="Sample rule keyframes and labelled moments of bags with the node's own "
                    'input selection; write images as recorded, history, future and labels.')
    build.add_argument('bags', nargs='+', type=Path, metavar='BAG', help='rosbag2 folders')
    build.add_argument('--out', type=Path, required=True, metavar='DIR', help='dataset folder')
    build.add_argument('--labels', type=Path, default=None, metavar='FILE',
                       help='CoC labels, JSONL (schema: docs/dataset.md)')
    add_params_option(build)
    build.add_argument('--uniform', type=float, default=0.0, metavar='S',
                       help='also one sample every S seconds between the events')
    build.add_argument('--no-keyframes', action='store_true',
                       help='no rule keyframes: only the --uniform ones and the labels')
    build.add_argument('--tolerance-ms', type=float, default=50.0, metavar='MS',
                       help='how near a sample t0 a label must be to attach (default 50)')
    build.add_argument('--shard-size', type=int, default=64, metavar='N',
                       help='samples per shard (default 64)')
    build.add_argument('--overwrite', action='store_true',
                       help='start over: remove the dataset in --out first')
    build.add_argument('--no-progress', action='store_true', help='no progress bars')
    build.set_defaults(func=run_build)
    parser.set_defaults(func=lambda args: print_usage(parser))




def ros_overrides(ros_args: List[str]) -> Dict:
    """Return the parameter values of `--ros-args -p name:=value ...` (YAML values, as ROS).

    Raises ValueError for any other ROS argument (remaps mean nothing to a bag reader).
    """
    values, rest = {}, list(ros_args[1:] if ros_args[:1] == ['--ros-args'] else ros_args)
    while rest:
        flag = rest.pop(0)
        if flag not in ('-p', '--param') or not rest or ':=' not in rest[0]:
            raise ValueError(f'unsupported ROS argument {flag!r}; only -p name:=value is read')
        name, _, text = rest.pop(0).partition(':=')
        values[name] = yaml.safe_load(text) if text else ''
    return values


def _check_args(args: argparse.Namespace) -> Optional[str]:
    if args.uniform < 0 or args.tolerance_ms <= 0 or args.shard_size < 1:
        return '--uniform must be >= 0, --tolerance-ms > 0 and --shard-size >= 1'
    if args.no_keyframes and args.uniform == 0 and args.labels is None:
        return '--no-keyframes leaves nothing to sample: add --uniform S or --labels FILE'
    names = [b.name for b in args.bags]
    if len(set(names)) != len(names):
        return f'bag folder names must differ (samples and labels are named after them): {names}'
    return None


def _settings(args: argparse.Namespace):
    """Return BuildSettings from the parameter file and options; raise ValueError on faults."""
    from ar1_ros.cli.eval import default_params
    from ar1_ros.cli.eval_session import topic_map
    from ar1_ros.data.dataset_build import BuildSettings
    from ar1_ros.nodes.params import ConfigError
    from ar1_ros.nodes.params_file import load_config
    try:
        config = load_config(args.params or default_params(),
                             ros_overrides(getattr(args, 'ros_args', [])))
    except ConfigError as exc:
        raise ValueError(f'parameters: {exc}') from exc
    return BuildSettings(topics=topic_map(config), runtime=config.runtime,
                         keyframes=not args.no_keyframes, uniform_s=args.uniform,
                         tolerance_ns=int(round(args.tolerance_ms * 1e6)),
                         shard_size=args.shard_size)


def _builder(args: argparse.Namespace):
    """Return the DatasetBuilder of the command line; raise ValueError on usage faults."""
    from ar1_ros.data.dataset_build import DatasetBuilder
    from ar1_ros.data.dataset_shards import DatasetError
    from ar1_ros.data.labels import LabelError, read_labels
    settings = _settings(args)
    try:
        labels = read_labels(args.labels) if args.labels else None
        return DatasetBuilder(args.out, settings, labels, args.overwrite)
    except (LabelError, DatasetError) as exc:
        raise ValueError(str(exc)) from exc
    except OSError as exc:
        raise ValueError(f'cannot write {args.out}: {exc}') from exc


class _Bar:
    """A tqdm bar per bag, created on the first message (when the total is known)."""

    def __init__(self, name: str, disabled: bool):
        self._name, self._disabled, self._bar = name, disabled, None

    def __call__(self, n: int, total: int) -> None:
        if self._bar is None:
            from tqdm import tqdm
            self._bar = tqdm(total=total, desc=self._name, unit='msg', leave=False,
                             disable=self._disabled, dynamic_ncols=True)
        self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _bag_line(entry: dict) -> str:
    name = entry['bag']
    if entry['action'] == 'kept':
        return (f'{name}: already built ({entry["samples"]} samples, {entry["labelled"]} '
                'labelled); not read again')
    skips = ', '.join(f'{reason} {n}' for reason, n in sorted(entry.get('skips', {}).items()))
    line = (f'{name}: {entry.get("samples", 0)} samples ({entry.get("labelled", 0)} labelled) of '
            f'{entry.get("targets", 0)} targets; skipped: {skips or "none"}')
    if entry.get('unmatched_labels'):
        line += f'; labels on no sample at t0_ns {entry["unmatched_labels"]}'
    return line + (f'; FAILED: {entry["error"]}' if entry['status'] == 'failed' else '')


def _summary(builder, names: List[str]) -> List[str]:
    index = builder.index
    lines = [f'{index["samples"]} samples ({index["labelled"]} labelled) from '
             f'{len(index["bags"])} bag(s) in {builder.folder}']
    problems = index['label_problems']
    if problems:
        lines.append(f'{len(problems)} label line(s) skipped:')
        lines += [f'  {problem}' for problem in problems]
    elsewhere = sorted(set(builder.labels.bags) - set(index['bags']) - set(names))
    if elsewhere:
        lines.append(f'labels name bags that were not built: {", ".join(elsewhere)}')
    return lines


def run_build(args: argparse.Namespace) -> int:
    """Build every bag; exit 0, 1 when a bag failed, 2 on usage errors, 130 on Ctrl-C."""
    problem = _check_args(args)
    if problem:
        return fail(PROG, problem)
    try:
        builder = _builder(args)
    except ValueError as exc:
        return fail(PROG, str(exc))
    failed = []
    try:
        for bag in args.bags:
            bar = _Bar(bag.name, args.no_progress)
            try:
                entry = builder.build(bag, bar)
            finally:
                bar.close()
            print(_bag_line(entry))
            if entry['status'] == 'failed':
                print(f'{PROG}: {entry["error"]}', file=sys.stderr)
                failed.append(entry['bag'])
    except KeyboardInterrupt:
        print(f'{PROG}: interrupted; {builder.folder} is consistent (finished bags are kept, '
              'the interrupted one is rebuilt by the next run)', file=sys.stderr)
        return 130
    except OSError as exc:  # disk full, permissions: the bag stays marked 'building'
        print(f'{PROG}: cannot write {builder.folder}: {exc}', file=sys.stderr)
        return 1
    for line in _summary(builder, [b.name for b in args.bags]):
        print(line)
    return 1 if failed else 0
