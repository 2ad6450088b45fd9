"""`ar1 label review LABELS.jsonl --bags BAG... --out PAGE.html`: a static review page.

Registered in cli.label.ACTIONS. The page (data.review_page) shows per label the frames the
model sees at its t0, the recorded future on the front camera and in a bird's-eye view, and
lets a reviewer edit, accept or reject drafts and export the corrected JSONL
(docs/labelling.md, "Review page").

Exit codes: 0 the page is written with every label's frames or a diagnostic; 1 a bag could not
be read (the page is still written with what was gathered) or the page cannot be written; 2 a
usage error or bad input (unreadable labels file, unreadable parameters, --out exists without
--overwrite): nothing written.
"""
import argparse
import collections
import hashlib
from pathlib import Path
import sys
from typing import List, Optional

from ar1_ros.cli.common import add_params_option, fail, print_usage

PROG = 'ar1 label review'


def review_parser() -> argparse.ArgumentParser:
    """Return the parser of `ar1 label review`."""
    parser = argparse.ArgumentParser(
        prog=PROG, description='Write a static HTML page to review Chain-of-Causation labels: '
                               'history frames, the recorded future path, the draft, edit and '
                               'accept controls; it exports the corrected JSONL.')
    parser.add_argument('labels', type=Path, metavar='LABELS.jsonl', help='labels to review')
    parser.add_argument('--bags', nargs='+', type=Path, required=True, metavar='BAG',
                        help='the rosbag2 folders the labels name')
    parser.add_argument('--out', type=Path, required=True, metavar='PAGE.html',
                        help='the page to write')
    add_params_option(parser, 'topics, selection, camera calibration')
    parser.add_argument('--width', type=int, default=320, metavar='PX',
                        help='largest width of the embedded pictures (default 320)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    return parser


def _check_args(options: argparse.Namespace) -> Optional[str]:
    from ar1_ros.cli.label import bags_and_out_problem
    if not 16 <= options.width <= 4096:
        return f'--width must be within 16..4096 pixels, got {options.width}'
    if not options.out.parent.is_dir():
        return f'the folder of --out ({options.out.parent}) does not exist'
    return bags_and_out_problem(options.bags, options.out, options.overwrite, 'HTML')


def _review_settings(options: argparse.Namespace):
    """Return ReviewSettings from the parameter file; raise ValueError on faults."""
    from ar1_ros.cli.label import load_settings
    from ar1_ros.data.label_review import ReviewSettings
    settings = load_settings(argparse.Namespace(params=options.params, ros_args=[],
                                                uniform=0.0))
    return ReviewSettings(settings.topics, settings.runtime, width=options.width,
                          tolerance_ns=settings.tolerance_ns)


def bag_line(name: str, items: list, error: str) -> str:
    """Return the summary line of one bag: labels, how many with frames, the problems."""
    problems = collections.Counter(item.problem.split(':')[1].strip() for item in items
                                   if item.problem)
    detail = ', '.join(f'{reason} {n}' for reason, n in sorted(problems.items())) or 'none'
    line = (f'{name}: {len(items)} labels, {sum(not item.problem for item in items)} with '
            f'frames; no frames: {detail}')
    return line + (f'; FAILED: {error}' if error else '')


def _problems(labels, errors: dict, missing: List[str]) -> List[str]:
    """Return the page's list of what went wrong outside the cards."""
    out = [f'{line} (skipped: not shown, not exported)' for line in labels.problems]
    out += [f'{bag}: {error}' for bag, error in errors.items()]
    if missing:
        out.append(f'labels of bags not given with --bags (shown without frames): '
                   f'{", ".join(sorted(set(missing)))}')
    return out


def _write(options: argparse.Namespace, labels, digest: str, settings) -> int:
    """Gather, render and write the page; return the exit code."""
    from ar1_ros.data.dataset_shards import write_atomic
    from ar1_ros.data.label_review import gather_review
    from ar1_ros.data.review_page import render_page
    given = {bag.name for bag in options.bags}
    for name in sorted(given - {lb.bag for lb in labels.labels}):
        print(f'{name}: no labels in {options.labels.name}; not read')
    items, errors = gather_review(labels.labels, options.bags, settings,
                                  lambda *bag: print(bag_line(*bag), flush=True))
    missing = [lb.bag for lb in labels.labels if lb.bag not in given]
    page = render_page(items, options.labels.name, digest, _problems(labels, errors, missing))
    try:
        write_atomic(options.out, lambda tmp: tmp.write_text(page, encoding='utf-8'))
    except OSError as exc:
        return fail(PROG, f'cannot write {options.out}: {exc}', 1)
    for bag, error in errors.items():
        print(f'{PROG}: {bag}: {error}', file=sys.stderr)
    framed = sum(not item.problem for item in items)
    print(f'{len(items)} labels ({framed} with frames, {len(missing)} of bags not given) in '
          f'{options.out} ({len(page.encode()) / 1e6:.1f} MB)')
    return 1 if errors else 0


def main(argv: List[str]) -> int:
    """Run `ar1 label review` with `argv` (after 'review'); return the exit code."""
    if not argv:
        return print_usage(review_parser())
    try:
        options = review_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return int(exc.code or 0)
    problem = _check_args(options)
    if problem:
        return fail(PROG, problem)
    from ar1_ros.data.labels import LabelError, read_labels
    try:
        labels = read_labels(options.labels)
        digest = hashlib.sha256(options.labels.read_bytes()).hexdigest()
    except (LabelError, OSError) as exc:
        return fail(PROG, str(exc))
    try:
        settings = _review_settings(options)
    except ValueError as exc:  # unreadable parameters
        return fail(PROG, str(exc))
    for line in labels.problems:
        print(f'{PROG}: {line} (skipped)', file=sys.stderr)
    return _write(options, labels, digest, settings)
