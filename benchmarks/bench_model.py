"""Benchmark AR1Model.predict: latency per stage, and flow matching vs 128 discrete tokens.

    .venv/bin/python benchmarks/bench_model.py                       # tiny golden checkpoint
    .venv/bin/python benchmarks/bench_model.py --checkpoint DIR --vlm-path DIR \
        --device cuda --dtype bfloat16 --height 1080 --width 1920

The second part times the two ways AR1 can turn a finished CoC into a trajectory: the release's
flow-matching expert (num_flow_steps expert passes over 64 action tokens), and the backbone
decoding the same trajectory as 128 discrete `<iK>` tokens (128 sequential decode steps, the
stage-1 / RL path), then reports their ratio. Prints numbers; asserts nothing.
"""
import argparse
from pathlib import Path
import statistics
import time

import torch

from ar1_ros.model import AR1Model
from ar1_ros.model.generation import Sampling, StopTokens, decode_step, rollout
from ar1_ros.model.inference import flow_actions

FIXTURES = Path(__file__).resolve().parents[1] / 'test' / 'fixtures' / 'ar1_tiny'


def parse_args() -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', type=Path, default=FIXTURES / 'checkpoint')
    parser.add_argument('--vlm-path', type=Path, default=FIXTURES / 'base_vlm')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--dtype', default='float32', choices=['float32', 'bfloat16'])
    parser.add_argument('--height', type=int, default=64)
    parser.add_argument('--width', type=int, default=128)
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--samples', type=int, default=1)
    parser.add_argument('--max-reasoning-tokens', type=int, default=32)
    return parser.parse_args()


def synthetic_inputs(height: int, width: int, seed: int = 0) -> tuple:
    """4 cameras x 4 frames of random RGB and a straight 8 m/s history in the t0 frame."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (4, 4, height, width, 3), generator=gen, dtype=torch.uint8)
    xyz = torch.zeros(16, 3)
    xyz[:, 0] = torch.arange(-15, 1, dtype=torch.float32) * 0.8
    return images, xyz, torch.eye(3).expand(16, 3, 3).clone()


def time_predict(model: AR1Model, inputs: tuple, args: argparse.Namespace) -> None:
    """Print the median and min of each stage of predict() over args.runs runs (after warm-up)."""
    model.predict(*inputs, num_samples=args.samples, greedy=True,
                  max_reasoning_tokens=args.max_reasoning_tokens)
    runs = [model.predict(*inputs, num_samples=args.samples, greedy=True,
                          max_reasoning_tokens=args.max_reasoning_tokens).timings
            for _ in range(args.runs)]
    print(f'predict() on {args.device}/{args.dtype}, {args.samples} sample(s), '
          f'{args.runs} runs (seconds):')
    for stage in runs[0]:
        values = [r[stage] for r in runs]
        print(f'  {stage:<14} median {statistics.median(values):9.4f}  min {min(values):9.4f}')


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_heads(model: AR1Model, inputs: tuple, args: argparse.Namespace) -> None:
    """Time flow matching vs decoding the same trajectory as 128 discrete tokens."""
    net, pre = model.network, model.preprocessor
    device = model.device
    images, xyz, rot = inputs
    hist = pre.history_token_ids(xyz, net.hist_tokenizer)
    ids, pixels, grid = pre.prompt(images.reshape(-1, *images.shape[2:]), hist)
    stops = StopTokens(pre.ids.traj_token_start, int(model.config.traj_vocab_size),
                       pre.ids.traj_future_start, pre.ids.eos, pre.ids.pad)
    flow_times, token_times = [], []
    for _ in range(args.runs + 1):
        with torch.inference_mode():
            roll = rollout(net.vlm, ids.to(device), pixels.to(device, net.vlm.dtype),
                           grid.to(device), 1, stops,
                           Sampling(greedy=True, max_new_tokens=args.max_reasoning_tokens))
            _sync(device)
            start = time.perf_counter()
            actions, _ = flow_actions(net, roll, pre.ids.traj_future_start, None, None, None)
            traj = net.action_space.action_to_traj(actions, xyz[None].to(device),
                                                   rot[None].to(device))
            _sync(device)
            flow_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            decode_as_tokens(model, roll, traj, xyz.to(device), rot.to(device))
            _sync(device)
            token_times.append(time.perf_counter() - start)
    flow, tokens = statistics.median(flow_times[1:]), statistics.median(token_times[1:])
    print(f'trajectory head after the CoC ({args.runs} runs, median):')
    print(f'  flow matching ({net.diffusion.num_inference_steps} expert steps): {flow:.4f} s')
    print(f'  128 discrete tokens (sequential decode):      {tokens:.4f} s')
    print(f'  ratio discrete / flow matching: {tokens / flow:.2f}x')


def decode_as_tokens(model: AR1Model, roll, traj: tuple, xyz, rot) -> None:
    """Feed 128 trajectory tokens one by one (teacher-forced with the flow result), decode."""
    net, pre = model.network, model.preprocessor
    fut_xyz, fut_rot = traj
    bins = net.traj_tokenizer.encode(xyz[None], rot[None], fut_xyz, fut_rot)
    token_ids = bins + pre.ids.traj_token_start
    for k in range(token_ids.shape[1]):
        decode_step(net.vlm, token_ids[:, k], roll.cache, roll.rope_delta)
    net.traj_tokenizer.decode(bins, xyz[None], rot[None])


def main() -> None:
    """Load the checkpoint and print both benchmarks."""
    args = parse_args()
    dtype = getattr(torch, args.dtype)
    model = AR1Model.from_pretrained(args.checkpoint, dtype=dtype, device=args.device,
                                     vlm_path=args.vlm_path)
    inputs = synthetic_inputs(args.height, args.width)
    print(f'checkpoint {args.checkpoint}, images 16 x {args.height}x{args.width}, '
          f'threads {torch.get_num_threads()}')
    time_predict(model, inputs, args)
    time_heads(model, inputs, args)


if __name__ == '__main__':
    main()
