"""Fewer flow-matching steps: how far the plan moves, and how much time it saves.

    .venv/bin/python benchmarks/bench_flow_steps.py [--steps 1 2 5 10] [--runs 3]

On the golden cases (test/fixtures/ar1_tiny: official code, 10 Euler steps, recorded noise),
predict() runs with the same noise and greedy reasoning for each step count; the error is the
distance of each planned point from the official 10-step plan (mean over the 64 points, and the
worst point), and the time is the median flow-matching stage of predict(). The tiny model is
random, so its field is not a trained one: the numbers show the method and the cost, not the
release's accuracy. Prints numbers; asserts nothing.
"""
import argparse
from pathlib import Path
import statistics
import sys

import torch

FIXTURES = Path(__file__).resolve().parents[1] / 'test' / 'fixtures' / 'ar1_tiny'
CASES = ('case_000', 'case_002')


def parse_args() -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--steps', type=int, nargs='+', default=[1, 2, 5, 10])
    parser.add_argument('--runs', type=int, default=3)
    args = parser.parse_args()
    if min(args.steps) < 1 or args.runs < 1:
        parser.exit(2, 'bench_flow_steps: --steps and --runs must be >= 1\n')
    return args


def case_inputs(name: str) -> tuple:
    """Return (images, xyz, rot, noise, samples, official pred_xyz (S, 64, 3)) of a case."""
    sys.path.insert(0, str(FIXTURES.parents[1]))
    from model.golden import load  # noqa: PLC0415 - the test helpers read the fixtures
    meta, t = load(f'cases/{name}')
    images = t['inputs/image_frames'].permute(0, 1, 3, 4, 2).contiguous()
    return (images, t['inputs/ego_history_xyz'][0, 0], t['inputs/ego_history_rot'][0, 0],
            t['diffusion/noise'], meta['num_traj_samples'], t['outputs/pred_xyz'][0, 0])


def measure(model, case: tuple, steps: int, runs: int) -> tuple:
    """Return (mean error m, worst error m, median flow time s) for one case and step count."""
    images, xyz, rot, noise, samples, official = case
    times, pred = [], None
    for _ in range(runs + 1):  # the first run warms up
        pred = model.predict(images, xyz, rot, num_samples=samples, noise=noise, greedy=True,
                             max_reasoning_tokens=32, num_flow_steps=steps)
        times.append(pred.timings['flow_matching'])
    error = (pred.trajectory_xyz - official).norm(dim=-1)
    return float(error.mean()), float(error.max()), statistics.median(times[1:])


def main() -> int:
    """Print one line per case and step count, then the time ratio to 10 steps."""
    args = parse_args()
    from ar1_ros.model import AR1Model  # noqa: PLC0415 - after argument checks
    model = AR1Model.from_pretrained(FIXTURES / 'checkpoint', dtype=torch.float32,
                                     vlm_path=FIXTURES / 'base_vlm')
    torch.set_num_threads(1)
    print(f'flow steps vs the official 10-step plan (tiny golden checkpoint, CPU float32, '
          f'{args.runs} runs):')
    totals = {}
    for name in CASES:
        case = case_inputs(name)
        for steps in args.steps:
            mean, worst, seconds = measure(model, case, steps, args.runs)
            totals.setdefault(steps, []).append(seconds)
            print(f'{name} steps {steps:2d}: mean error {mean:.4f} m, worst {worst:.4f} m, '
                  f'flow matching {seconds * 1e3:.1f} ms')
    if 10 in totals:
        base = sum(totals[10])
        for steps in args.steps:
            print(f'ratio flow time {steps} / 10 steps: {sum(totals[steps]) / base:.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
