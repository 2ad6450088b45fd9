"""Benchmark the ar1_policy node: per-cycle overhead over the bare backend, and memory over time.

    .venv/bin/python benchmarks/bench_node.py                    # both parts, fake backend
    .venv/bin/python benchmarks/bench_node.py --part overhead --seconds 20 \
        --checkpoint test/fixtures/ar1_tiny/checkpoint --vlm-path test/fixtures/ar1_tiny/base_vlm
    .venv/bin/python benchmarks/bench_node.py --part memory --cycles 10000 --speedup 5

Part 1 (overhead): the node runs in-process (fake backend, or the torch backend with
--checkpoint), fed 4 cameras of 1920x1080 JPEG (noisy pictures, quality 90) at 10 Hz and
odometry at 50 Hz over real DDS, stamped with wall-clock time (no sim time). Per published plan
it reports the end-to-end latency (plan received by a listener - the feeder done publishing the
t0 images), the bare backend `infer` time, the node overhead (their difference) broken down into
input transport and callbacks, the wait for the cycle to start, the worker's queue, decode,
validate, the hand-off to the executor and the publishing; the cost of each image and odometry
callback; and cycles published vs. expected. The cameras are published half a cycle period
after the node's cycle-timer ticks (--phase): with `--trigger timer` that is the mean wait of a
camera not synchronised to the timer; with `--trigger inputs` (the default, as config/ar1.yaml)
the last input of a t0 starts the cycle itself.
Part 2 (memory): 10,000 cycles with the fake backend on 4 x 320x180 JPEG (small, to finish in
minutes) with sim time driven faster than real time; resident memory (VmRSS) after a warm-up and
every 1,000 plans, the growth per 1,000 cycles and the ratio final / warm-up.

Each part runs in a process of its own; in it the node, feeder and listener share the process,
so RSS and CPU include the feeder's. Prints numbers and ratios; asserts nothing.
"""
import argparse
import os
from pathlib import Path
import subprocess
import sys
import time

from node_rig import (
    NS,
    Probe,
    Rig,
    cpu_seconds,
    drive,
    fake_overrides,
    install_probes,
    ros_environment,
    rss_mib,
)
import numpy as np

from ar1_ros.runtime.images import Frame, decode, stack_frames
from ar1_ros.runtime.messages import compressed_to_encoded

REQUIRED = ('published', 'inputs ready', 'submit', 'infer start', 'infer end', 'timings',
            'handle start', 'handle end', 'received')
SEGMENTS = ('inputs: DDS + image callbacks', 'wait for the cycle to start', 'worker queue',
            'decode + stack', 'validate', 'worker other', 'hand-off to the executor',
            'publish -> listener')


def parse_args() -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--part', choices=('overhead', 'memory', 'all'), default='all')
    parser.add_argument('--seconds', type=float, default=20.0, help='overhead run length')
    parser.add_argument('--cycles', type=int, default=10000, help='memory run length (plans)')
    parser.add_argument('--speedup', type=float, default=5.0, help='memory run: sim x real')
    parser.add_argument('--quality', type=int, default=90, help='JPEG quality')
    parser.add_argument('--warmup', type=float, default=4.0,
                        help='overhead run: seconds of plans left out of the statistics')
    parser.add_argument('--trigger', choices=('inputs', 'timer'), default='inputs',
                        help="the node's cycle_trigger parameter")
    parser.add_argument('--phase', type=float, default=0.5,
                        help='overhead run: camera publish delay after the cycle timer, periods')
    parser.add_argument('--checkpoint', type=Path, help='torch backend for the overhead part')
    parser.add_argument('--vlm-path', type=Path)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--dtype', default='float32')
    parser.add_argument('--max-reasoning-tokens', type=int, default=32)
    return parser.parse_args()


def backend_overrides(args: argparse.Namespace) -> dict:
    """Return the node's parameter overrides: the tests' topics, fake or torch backend."""
    values = fake_overrides(diagnostics_rate_hz=1.0, cycle_trigger=args.trigger)
    if args.checkpoint:
        values.update({'backend.kind': 'torch', 'backend.checkpoint': str(args.checkpoint),
                       'backend.vlm_path': str(args.vlm_path or ''),
                       'backend.device': args.device, 'backend.dtype': args.dtype,
                       'backend.max_reasoning_tokens': args.max_reasoning_tokens})
    return values


def wait_handled(probe: Probe, timeout: float = 120.0) -> None:
    """Wait until every submitted, not dropped observation has been handled (or timeout)."""
    end = time.monotonic() + timeout
    counts = probe.counts
    while (counts['handled'] < counts['submitted'] - counts['dropped']
           and time.monotonic() < end):
        time.sleep(0.1)
    time.sleep(0.3)  # the listener receives after the node handled the result


def breakdown(m: dict) -> dict:
    """Return the stage durations (s) of one cycle's timeline `m` (see the module docstring)."""
    t = m['timings']
    backend = m['infer end'] - m['infer start']
    done = m['submit'] + t['total']
    parts = (m['inputs ready'] - m['published'], m['submit'] - m['inputs ready'], t['queue'],
             t['decode'], t['validate'], t['total'] - t['queue'] - t['decode'] - t['validate']
             - backend, m['handle start'] - done, m['received'] - m['handle start'])
    end_to_end = m['received'] - m['published']
    return {'end-to-end': end_to_end, 'bare backend infer': backend,
            'node overhead': end_to_end - backend, **dict(zip(SEGMENTS, parts, strict=True)),
            'publish all outputs (executor)': m['handle end'] - m['handle start']}


def print_reference(feeder) -> None:
    """Print the decode of one JPEG and the stack of 4 x 4 decoded frames, alone (no load)."""
    encoded = [compressed_to_encoded(feeder.camera_message(i, 0, 0)) for i in range(4)]
    decodes, stacks = [], []
    for _ in range(4):
        for image in encoded:
            start = time.monotonic()
            decode(image)
            decodes.append(time.monotonic() - start)
    frames = [[Frame.from_array(0, decode(image))] * 4 for image in encoded]
    for _ in range(6):
        start = time.monotonic()
        stack_frames(frames)
        stacks.append(time.monotonic() - start)
    # The first stack pays the page faults of a new ~100 MB block; the node's later ones reuse.
    one, stack = np.median(decodes) * 1e3, np.median(stacks[1:]) * 1e3
    print(f'reference, outside the node before the run: decode one JPEG {one:.1f} ms, stack '
          f'4 x 4 decoded frames {stack:.1f} ms; 4 decodes + stack = {4 * one + stack:.1f} ms')


def print_rows(rows: dict, indent: str = '  ') -> None:
    """Print median, p95 and max in milliseconds of each named list of seconds."""
    for name, values in rows.items():
        ms = np.asarray(values) * 1e3
        print(f'{indent}{name:<36} {np.median(ms):9.2f} {np.percentile(ms, 95):9.2f} '
              f'{ms.max():9.2f}')


def report_overhead(probe: Probe, rig: Rig, args, wall: float, cpu: float) -> None:
    """Print the overhead part's counts, per-cycle table and ratios."""
    counts = probe.counts
    complete = [(t0, breakdown(m)) for t0, m in sorted(probe.cycles.items())
                if all(k in m for k in REQUIRED)]
    print(f'camera frames published: {rig.frame} (expected {int(args.seconds * 10)} at 10 Hz; '
          f'achieved {rig.frame / wall:.2f} Hz)')
    print(f'cycles submitted: {counts["submitted"]}, replaced in the mailbox (dropped): '
          f'{counts["dropped"]}, plans received: {rig.plans}, '
          f'frames never planned on: {rig.frame - rig.plans}')
    if not complete:
        print('no complete cycle recorded')
        return
    warm_end = complete[0][0] + int(args.warmup * NS)
    cycles = [c for t0, c in complete if t0 >= warm_end]
    warm = [c for t0, c in complete if t0 < warm_end]
    print(f'warm-up (plans of the first {args.warmup:g} s, left out): {len(warm)} plans; first '
          f'plan: end-to-end {warm[0]["end-to-end"] * 1e3:.0f} ms (decode + stack '
          f'{warm[0]["decode + stack"] * 1e3:.0f} ms); warm-up max end-to-end '
          f'{max(c["end-to-end"] for c in warm) * 1e3:.0f} ms')
    if not cycles:
        return
    table = {name: [c[name] for c in cycles] for name in cycles[0]}
    print(f'per cycle, {len(cycles)} plans after the warm-up (ms):'
          f'{"median":>20} {"p95":>9} {"max":>9}')
    print_rows({k: table[k] for k in ('end-to-end', 'bare backend infer', 'node overhead')})
    print_rows({k: table[k] for k in SEGMENTS}, indent='    ')
    print_rows({'publish all outputs (executor)': table['publish all outputs (executor)']})
    print('per message (ms):')
    print_rows({k: probe.samples[k] for k in ('image callback', 'odometry callback',
                                              'JPEG decode (worker)',
                                              'feeder publish (4 images)')})
    print(f'JPEG decodes per plan: {len(probe.samples["JPEG decode (worker)"]) / rig.plans:.2f}')
    print_ratios(table)
    print(f'process CPU (node + feeder + listener): {cpu:.1f} s in {wall:.1f} s = '
          f'{cpu / wall:.2f} of {os.cpu_count()} cores; RSS at the end: {rss_mib():.0f} MiB')


def print_ratios(table: dict) -> None:
    """Print overhead / backend (medians) and each stage's share of the overhead (means)."""
    overhead, backend = np.median(table['node overhead']), np.median(table['bare backend infer'])
    print('ratios:')
    print(f'  node overhead / bare backend (medians): {overhead / backend:.3f}')
    print(f'  end-to-end / bare backend (medians): '
          f'{np.median(table["end-to-end"]) / backend:.3f}')
    mean_overhead = np.mean(table['node overhead'])
    for name in SEGMENTS:
        print(f'  {name} share of overhead (means): {np.mean(table[name]) / mean_overhead:.3f}')
    rest = mean_overhead - np.mean(table['wait for the cycle to start'])
    print(f'  node overhead without the wait for the cycle / bare backend (means): '
          f'{rest / np.mean(table["bare backend infer"]):.3f}')


def run_overhead(args: argparse.Namespace) -> None:
    """Part 1: 4 x 1920x1080 JPEG at 10 Hz, wall-clock stamps, for args.seconds."""
    probe = Probe()
    undo = install_probes(probe)
    rig = Rig(backend_overrides(args), probe, (1080, 1920), sim_time=False,
              quality=args.quality)
    try:
        if not rig.start():
            raise SystemExit('the node did not become active (see the log above)')
        backend = (f'torch {args.checkpoint.name} ({args.device}/{args.dtype}, '
                   f'{args.max_reasoning_tokens} reasoning tokens max)' if args.checkpoint
                   else 'fake')
        print(f'\n== part 1: node overhead, backend {backend}, 4 cameras 1920x1080 '
              f'JPEG q{args.quality} (mean {rig.feeder.jpeg_bytes() / 1e3:.0f} kB), 10 Hz, '
              f'odometry 50 Hz, {args.seconds:g} s, wall-clock stamps ==')
        print_reference(rig.feeder)
        print(f'RSS before the first cycle: {rss_mib():.0f} MiB')
        # Cameras `phase` cycle periods after the timer's ticks (the timer starts with the
        # activation): a feeder starting right after it would wait a whole period every cycle.
        time.sleep((args.phase * 0.1 - (time.monotonic() - rig.activated)) % 0.1)
        cpu = cpu_seconds()
        wall = drive(rig, args.seconds)
        wait_handled(probe)
        cpu = cpu_seconds() - cpu
    finally:
        rig.close()
        undo()
    report_overhead(probe, rig, args, wall, cpu)


def memory_samples(rig: Rig, cycles: int, speedup: float) -> list:
    """Drive until `cycles` plans; return (mark, plans, RSS MiB, wall s) at each mark."""
    marks = [min(200, cycles // 5), *range(1000, cycles, 1000), cycles]
    samples, start = [], time.monotonic()

    def until() -> bool:
        while marks and rig.plans >= marks[0]:
            samples.append((marks.pop(0), rig.plans, rss_mib(), time.monotonic() - start))
        return not marks
    drive(rig, cycles / 10 * 3 + 10, speedup, until)
    return samples


def run_memory(args: argparse.Namespace) -> None:
    """Part 2: args.cycles plans with the fake backend, 4 x 320x180 JPEG, sim time."""
    probe = Probe(record=False)
    undo = install_probes(probe)  # counters only: nothing grows per cycle
    rig = Rig(fake_overrides(diagnostics_rate_hz=1.0), probe, (180, 320), sim_time=True,
              quality=args.quality)
    try:
        if not rig.start():
            raise SystemExit('the node did not become active (see the log above)')
        print(f'\n== part 2: resident memory over {args.cycles} cycles, fake backend, '
              f'4 cameras 320x180 JPEG (smaller than part 1, to finish in minutes), '
              f'sim time at {args.speedup:g}x real time ==')
        print(f'RSS before the first cycle: {rss_mib():.1f} MiB')
        samples = memory_samples(rig, args.cycles, args.speedup)
    finally:
        rig.close()
        undo()
    report_memory(samples, probe, rig)


def report_memory(samples: list, probe: Probe, rig: Rig) -> None:
    """Print RSS per mark, the growth per 1,000 cycles and final / warm-up."""
    print(f'{"cycle":>14} {"plans":>7} {"RSS MiB":>9} {"+MiB":>7} {"wall s":>7}')
    previous = None
    for mark, plans, rss, wall in samples:
        label = f'{mark} (warm-up)' if previous is None else str(mark)
        delta = '' if previous is None else f'{rss - previous:+7.1f}'
        print(f'{label:>14} {plans:7d} {rss:9.1f} {delta:>7} {wall:7.1f}')
        previous = rss
    counts = probe.counts
    print(f'frames published {rig.frame}, cycles submitted {counts["submitted"]}, '
          f'dropped {counts["dropped"]}, plans received {rig.plans}')
    if len(samples) < 2:
        return
    plans = np.array([s[1] for s in samples], dtype=float)
    rss = np.array([s[2] for s in samples])
    slope = np.polyfit(plans, rss, 1)[0] * 1000
    overall = (rss[-1] - rss[0]) / (plans[-1] - plans[0]) * 1000
    print(f'RSS growth per 1,000 cycles after warm-up: {slope:.2f} MiB (least squares), '
          f'{overall:.2f} MiB (end points)')
    print(f'final / warm-up RSS: {rss[-1] / rss[0]:.3f}')


def main() -> None:
    """Run the chosen parts."""
    args = parse_args()
    if args.part == 'all':
        # One process per part: the allocator keeps part 1's freed frames (hundreds of MiB of
        # 1080p RGB) resident, which would skew part 2's RSS baseline.
        for part in ('overhead', 'memory'):
            subprocess.run([sys.executable, __file__, *sys.argv[1:], '--part', part],
                           check=False)
        return
    ros_environment()
    print(f'machine: {os.cpu_count()} CPU cores; ROS_DOMAIN_ID {os.environ["ROS_DOMAIN_ID"]}')
    if args.part == 'overhead':
        run_overhead(args)
    else:
        run_memory(args)


if __name__ == '__main__':
    main()
