"""Bag reading + decoding into AR1 samples vs raw `rosbags` reading of the same bag.

    .venv/bin/python benchmarks/bench_bag.py [--seconds 10] [--width 1920 --height 1080]
        [--storage mcap|sqlite3] [--repeat 3] [--bag EXISTING_BAG]

Writes (unless --bag) a bag of the 4 AR1 cameras as JPEG q90 CompressedImage at 10 Hz plus 50
Hz odometry, then measures, page cache warm, medians over --repeat runs:
  raw      rosbags AnyReader over every message + deserialize (the baseline)
  read     our BagReader + deserialize + the runtime's message conversions
  samples  the offline evaluation's input path: BagInputs -> InputBuffers, one AR1 sample
           (4 cameras x 4 frames + 16 poses) assembled every 0.1 s of bag time and its 16
           frames decoded (each frame once: about 4 new JPEGs per sample), with 0 and N
           decode threads
and prints messages/s, samples/s, the ratios and the real-time factor.
"""
import argparse
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test'))
from bags.drive_bag import Drive, overrides, write_drive_bag  # noqa: E402
from ros.processes import write_params  # noqa: E402

from ar1_ros.cli.eval_session import topic_map  # noqa: E402
from ar1_ros.data.bags import BagReader  # noqa: E402
from ar1_ros.data.stream import BagInputs  # noqa: E402
from ar1_ros.nodes.params_file import load_config  # noqa: E402
from ar1_ros.runtime import messages  # noqa: E402
from ar1_ros.runtime.assembly import InputBuffers  # noqa: E402
from ar1_ros.runtime.decode_pool import DecodePool  # noqa: E402
from ar1_ros.runtime.images import stack_frames  # noqa: E402
from ar1_ros.runtime.types import Observation  # noqa: E402


def realistic_frames(height: int, width: int, count: int = 6):
    """Return `count` RGB pictures that compress like camera frames (~0.3-1 MB at 1080p)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for i in range(count):
        img = np.stack([x / width * 200 + 30 * i, y / height * 180, (x + y) / (width + height)
                        * 160], -1)
        for _ in range(40):
            cx, cy, r = rng.integers(0, width), rng.integers(0, height), rng.integers(5, 120)
            cv2.circle(img, (int(cx), int(cy)), int(r), rng.integers(0, 255, 3).tolist(), -1)
        img += rng.normal(0, 6, img.shape)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def median_time(fn, repeat: int) -> float:
    """Return the median wall time [s] of `repeat` calls of fn()."""
    return statistics.median(_timed(fn) for _ in range(repeat))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def raw_read(path: Path) -> int:
    """Read and deserialize every message with plain rosbags; return the count."""
    from rosbags.highlevel import AnyReader
    count = 0
    with AnyReader([path]) as reader:
        for connection, _, raw in reader.messages():
            reader.deserialize(raw, connection.msgtype)
            count += 1
    return count


def our_read(path: Path) -> int:
    """Read every message through BagReader and the runtime conversions; return the count."""
    count = 0
    with BagReader(path) as reader:
        for message in reader.messages():
            msg = reader.deserialize(message)
            if message.msgtype.endswith('CompressedImage'):
                messages.compressed_to_encoded(msg)
            else:
                messages.odometry_to_ego(msg)
            count += 1
    return count


def samples(path: Path, config, threads: int) -> int:
    """Assemble and decode one AR1 sample per 0.1 s of bag; return how many."""
    buffers, pool, count, last = InputBuffers(config.runtime), DecodePool(threads), 0, None
    with BagReader(path) as reader:
        inputs = BagInputs(reader, topic_map(config), buffers)
        for message in reader.messages():
            if inputs.feed(message) is not None:
                continue
            floor = None if last is None else last + 90_000_000
            observation = buffers.assemble(message.log_ns, floor)
            if isinstance(observation, Observation):
                last = observation.t0_ns
                pool.prefetch(observation.frames)
                stack_frames(observation.frames)
                buffers.release_decoded(int(observation.frame_stamps_ns().min()))
                count += 1
    pool.close()
    return count


def write_bag(args, folder: Path) -> Path:
    """Write the benchmark bag (cameras at 10 Hz, odometry at 50 Hz) into `folder`."""
    drive = Drive(duration_s=args.seconds, size=(args.height, args.width), storage=args.storage)
    return write_drive_bag(folder / 'bench', drive, realistic_frames(args.height, args.width))


def report(args, path: Path, config) -> None:
    """Measure and print the table."""
    size_mb = sum(f.stat().st_size for f in path.iterdir()) / 1e6
    with BagReader(path) as reader:
        bag_s = (reader.end_ns - reader.start_ns) / 1e9
        count = reader.message_count()
    raw_read(path)  # warm the page cache
    raw = median_time(lambda: raw_read(path), args.repeat)
    ours = median_time(lambda: our_read(path), args.repeat)
    print(f'bag: {path} ({args.storage}), {count} messages, {size_mb:.0f} MB, {bag_s:.1f} s; '
          f'{os.cpu_count()} CPU cores')
    print(f'{"raw rosbags read + deserialize":42s} {count / raw:9.0f} msg/s {size_mb / raw:8.0f} '
          f'MB/s')
    print(f'{"ar1_ros BagReader + conversions":42s} {count / ours:9.0f} msg/s')
    print(f'ratio ours / raw reading: {raw / ours:.2f}')
    for threads in sorted({0, args.decode_threads}):
        n = samples(path, config, threads)
        wall = median_time(lambda t=threads: samples(path, config, t), args.repeat)
        print(f'{"samples (read + select + decode), " + str(threads) + " threads":42s} '
              f'{n / wall:9.1f} samples/s  real-time factor {bag_s / wall:.2f} '
              f'(10 Hz needs >= 1.0); throughput vs raw reading {raw / wall:.2f}')


def main(argv=None) -> int:
    """Run the benchmark; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=10.0)
    parser.add_argument('--width', type=int, default=1920)
    parser.add_argument('--height', type=int, default=1080)
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--decode-threads', type=int, default=4)
    parser.add_argument('--bag', type=Path, default=None, help='existing bag (test topics)')
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        drive = Drive(compressed=True)
        config = load_config(write_params(Path(folder) / 'params.yaml', dict(
            overrides(drive), **{'backend.kind': 'fake'})))
        path = args.bag or write_bag(args, Path(folder))
        report(args, path, config)
    return 0


if __name__ == '__main__':
    sys.exit(main())
