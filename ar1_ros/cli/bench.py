"""`ar1 bench`: per-cycle latency breakdown and peak memory of the AR1 model.

    ar1 bench --checkpoint DIR [--vlm-path DIR] --device cuda --dtype bfloat16
    ar1 bench --released --device cuda            # random bf16 weights, 40 forced CoC tokens
    ar1 bench --released --device cuda --dtype fp8  # the same, language model linears in fp8

Inputs are synthetic: 4 cameras x 4 frames of random RGB (--height x --width, 320x576 by
default, the release's size; other sizes go through the image processor's resize, e.g.
--height 1080 --width 1920 with --preprocess-device cpu or model to time the resize on either
side) and a straight 8 m/s history. Decoding is greedy with fixed flow noise. Publishing is
the node's part: benchmarks/bench_node.py measures it.
"""
import argparse
import json
import os
from pathlib import Path
import platform
import resource
import sys

ROWS = (('preprocess', 'preprocess'), ('vision', 'vision encode'), ('prefill', 'prefill'),
        ('decode', 'decode'), ('decode_per_token', '  per token'), ('flow', 'flow matching'),
        ('flow_per_step', '  per step'), ('postprocess', 'postprocess'), ('total', 'total'))
COUNTED = {'decode': 'decode_per_token', 'flow': 'flow_per_step'}
UNITS = {'decode': 'tokens', 'flow': 'steps'}
# runtime.backends.DTYPES, spelled out: `ar1 --help` must not import the runtime (numpy).
DTYPES = ('float32', 'bfloat16', 'float16', 'fp8')


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be >= 0, got {value}')
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ar1 bench`."""
    parser = subparsers.add_parser(
        'bench', help='latency breakdown per stage and peak memory of one AR1 cycle',
        description='Time one AR1 cycle stage by stage (preprocess, vision encoding, prefill, '
                    'decode per token, flow matching per step, postprocess) over repeated runs '
                    'and report the median, p90 and peak memory.')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--checkpoint', type=Path, help='AR1 checkpoint folder')
    source.add_argument('--released', action='store_true',
                        help='the released configuration with random bf16 weights (no download)')
    parser.add_argument('--vlm-path', type=Path, default=None,
                        help='local folder with the backbone config/tokenizer files')
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:1, ...')
    parser.add_argument('--dtype', choices=DTYPES, default=None,
                        help='as backend.dtype (default float32; --released: bfloat16 or fp8); '
                             'fp8 needs CUDA compute capability >= 8.9')
    parser.add_argument('--samples', type=_positive, default=1, help='trajectory samples S')
    parser.add_argument('--flow-steps', type=_positive, default=None,
                        help='Euler steps K (default: the checkpoint config, 10)')
    parser.add_argument('--max-reasoning-tokens', type=_positive, default=40,
                        help='CoC token limit T (--released: exactly T, stop token forced)')
    parser.add_argument('--no-reasoning', action='store_true',
                        help='time the trajectory-only mode (backend.reasoning false)')
    parser.add_argument('--compile-decode', action='store_true',
                        help='decode on a static KV cache under torch.compile '
                             '(backend.compile_decode)')
    parser.add_argument('--expert-engine', choices=('torch', 'compiled', 'onnx', 'tensorrt'),
                        default='torch', help="the expert's flow steps (backend.expert_engine)")
    parser.add_argument('--preprocess-device', choices=('cpu', 'model'), default='model',
                        help='resize and normalise the images on the cpu or on the model '
                             'device (backend.preprocess_device)')
    parser.add_argument('--expert-file', default='',
                        help='exported expert for onnx/tensorrt (default <checkpoint>/onnx/)')
    parser.add_argument('--runs', type=_positive, default=5, help='timed runs')
    parser.add_argument('--warmup', type=_non_negative, default=2, help='untimed runs first')
    parser.add_argument('--height', type=_positive, default=320, help='camera image height')
    parser.add_argument('--width', type=_positive, default=576, help='camera image width')
    parser.add_argument('--json', type=Path, default=None, help='also write the results here')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load or build the model, time it, print the table; exit 1 if it cannot be built."""
    import torch
    if args.released and args.dtype not in (None, 'bfloat16', 'fp8'):
        print('ar1 bench: --released runs in bfloat16 (or fp8) only', file=sys.stderr)
        return 2
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        print(f'ar1 bench: --device {args.device}: CUDA is not available here')
        return 1
    model = _load(args, device)
    engines = None if model is None else _engines(model, args)
    if engines is None:
        return 1
    report = _measure(model, args, device, engines)
    _print(report)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + '\n')
        print(f'written {args.json}')
    return 0


def _load(args: argparse.Namespace, device):
    """Return the AR1Model to time, or None after printing why it cannot be had.

    The checkpoint loads as the node loads it (runtime.backends.torch_backend.load_model);
    fp8 where it cannot run is refused before anything is built or read.
    """
    from ar1_ros.model import CheckpointError
    from ar1_ros.model.fp8 import FP8UnsupportedError, check_fp8_support, quantize_language_model
    from ar1_ros.model.released import InsufficientMemoryError, build_released
    from ar1_ros.runtime.backends.torch_backend import load_model
    try:
        if args.dtype == 'fp8':
            check_fp8_support(device)
        if args.released:
            model = build_released(device)
            if args.dtype == 'fp8':
                quantize_language_model(model.network)
            return model
        model = load_model(args.checkpoint, args.dtype or 'float32', device, args.vlm_path)
    except (CheckpointError, InsufficientMemoryError, FP8UnsupportedError, OSError) as err:
        print(f'ar1 bench: REFUSED: {err}')
        return None
    if model.preprocessor is None:
        print(f'ar1 bench: no tokenizer for {args.checkpoint}: pass --vlm-path with the '
              'backbone tokenizer files')
        return None
    return model


def _engines(model, args: argparse.Namespace):
    """Return (decoder, expert_step) as the node would build them, or None after saying why."""
    from ar1_ros.model.static_decode import StaticDecoder
    from ar1_ros.runtime.backends.expert_engines import make_expert_step
    try:
        step = make_expert_step(args.expert_engine, args.expert_file,
                                args.checkpoint or Path('.'), model.network)
    except (OSError, RuntimeError) as err:  # a missing file; TensorRT not available
        print(f'ar1 bench: REFUSED: {err}')
        return None
    return (StaticDecoder(model.network.vlm) if args.compile_decode else None), step


def _inputs(args: argparse.Namespace, action_dims: tuple) -> tuple:
    """Random cameras (4, 4, H, W, 3) uint8, a straight 8 m/s history, fixed noise (S, 64, 2)."""
    import torch
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 4, args.height, args.width, 3), generator=gen,
                           dtype=torch.uint8)
    xyz = torch.zeros(16, 3)
    xyz[:, 0] = torch.arange(-15, 1, dtype=torch.float32) * 0.8
    rot = torch.eye(3).expand(16, 3, 3).clone()
    return (images, xyz, rot), torch.randn(args.samples, *action_dims, generator=gen)


def _measure(model, args: argparse.Namespace, device, engines: tuple) -> dict:
    """Run warm-up then timed runs; return the report (settings, machine, stages, memory)."""
    import torch

    from ar1_ros.model.generation import Sampling
    from ar1_ros.model.profiling import profile_predict, summarize
    inputs, noise = _inputs(args, model.network.action_dims)
    forced = args.max_reasoning_tokens if args.released else None
    sampling = Sampling(greedy=True, max_new_tokens=args.max_reasoning_tokens)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    runs = []
    for index in range(args.warmup + args.runs):
        _, breakdown = profile_predict(model.network, model.preprocessor, *inputs,
                                       num_samples=args.samples, num_flow_steps=args.flow_steps,
                                       noise=noise, sampling=sampling, forced_tokens=forced,
                                       reasoning=not args.no_reasoning,
                                       decoder=engines[0], expert_step=engines[1],
                                       preprocess_device=args.preprocess_device)
        if index >= args.warmup:
            runs.append(breakdown)
    # fp8 keeps bfloat16 parameters outside the language model's linear layers.
    dtype = 'fp8' if args.dtype == 'fp8' else str(
        next(model.network.parameters()).dtype).removeprefix('torch.')
    settings = {'model': 'released (random weights)' if args.released else str(args.checkpoint),
                'device': str(device), 'dtype': dtype, 'samples': args.samples,
                'flow_steps': len(runs[-1].flow_steps),
                'reasoning': not args.no_reasoning, 'compile_decode': args.compile_decode,
                'expert_engine': args.expert_engine,
                'preprocess_device': args.preprocess_device,
                'reasoning_tokens': runs[-1].reasoning_tokens,
                'images': f'16 x {args.height}x{args.width}', 'warmup': args.warmup,
                'runs': args.runs}
    return {'settings': settings, 'machine': machine(device), 'memory': _peak_memory(device),
            'stages_s': summarize(runs),
            'notes': ['publish is not timed here: benchmarks/bench_node.py measures it']}


def _peak_memory(device) -> dict:
    """Peak torch allocation on a GPU, the process peak RSS on the CPU (bytes and what it is)."""
    import torch
    if device.type == 'cuda':
        return {'bytes': int(torch.cuda.max_memory_allocated(device)),
                'kind': 'torch.cuda.max_memory_allocated (weights included)'}
    # ru_maxrss is in KiB on Linux.
    return {'bytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            'kind': 'process peak RSS (CPU: weights, Python and libraries included)'}


def machine(device) -> dict:
    """Describe this machine: CPU model and cores, GPU, library versions."""
    import torch
    import transformers
    info = {'cpu': _cpu_model(), 'cpu_cores': os.cpu_count(), 'torch_threads':
            torch.get_num_threads(), 'gpu': None, 'python': platform.python_version(),
            'torch': torch.__version__, 'transformers': transformers.__version__,
            'platform': platform.platform(),
            # Other processes share the cores; a loaded machine inflates every stage.
            'load_average_1m': os.getloadavg()[0]}
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    return info


def _cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def _print(report: dict) -> None:
    """Print the settings, machine line, stage table and peak memory."""
    s, m, stages = report['settings'], report['machine'], report['stages_s']
    print(f"ar1 bench: {s['model']} on {s['device']}/{s['dtype']}, {s['samples']} sample(s), "
          f"{s['flow_steps']} flow steps, {s['reasoning_tokens']} reasoning tokens, "
          f"images {s['images']} (preprocess_device {s['preprocess_device']}), "
          f"{s['warmup']} warm-up + {s['runs']} runs")
    print(f"machine: {m['cpu']} ({m['cpu_cores']} cores, {m['torch_threads']} torch threads, "
          f"load {m['load_average_1m']:.1f}), GPU {m['gpu'] or 'none'}, torch {m['torch']}, "
          f"transformers {m['transformers']}")
    print(f"{'stage':<16}{'median ms':>11}{'p90 ms':>10}  count")
    for key, label in ROWS:
        row = stages[key]
        count = (f"{stages[COUNTED[key]]['count']} {UNITS[key]}" if key in COUNTED else '')
        print(f"{label:<16}{row['median'] * 1e3:>11.2f}{row['p90'] * 1e3:>10.2f}  {count}")
    memory = report['memory']
    print(f"peak memory: {memory['bytes'] / 2**20:.1f} MiB ({memory['kind']})")
    for note in report['notes']:
        print(f'note: {note}')
