"""Bag reading + decoding into AR1 samples vs raw `rosbags` reading of the same bag.

    .venv/bin/python benchmarks/bench_bag.py [--seconds 10] [--width 1920 --height 1080]
        [--storage mcap|sqlite3] [--repeat 3] [--decode-threads 4] [--bag EXISTING_BAG]

Writes (unless --bag) a bag of the 4 AR1 cameras as JPEG q90 CompressedImage at 10 Hz plus 50
Hz odometry (the drive bag's topics: test/bags/drive_bag.py), then measures, page cache warm,
medians over --repeat runs:
  raw      rosbags AnyReader over every message + deserialize (the baseline)
  read     our BagReader + deserialize + the runtime's message conversions
  samples  the offline evaluation's input path: BagInputs -> InputBuffers, one AR1 sample
           (4 cameras x 4 frames + 16 poses) assembled every 0.1 s of bag time and its 16
           frames decoded by stack_frames (each frame once: about 4 new JPEGs per sample),
           without and with a DecodePool prefetching them on --decode-threads threads
and prints messages/s, samples/s, the ratios and the real-time factor (bag s per wall s).
"""
import argparse
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time
from typing import Tuple

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test'))
from bags.drive_bag import EGO_TOPIC, Drive, odometry_message  # noqa: E402
from ros.synthetic import CAMERAS, NS, topic_of  # noqa: E402

from ar1_ros.data.bags import BagError, BagReader, BagWriter  # noqa: E402
from ar1_ros.data.stream import BagInputs, CameraTopic, TopicMap  # noqa: E402
from ar1_ros.runtime import messages  # noqa: E402
from ar1_ros.runtime.assembly import InputBuffers  # noqa: E402
from ar1_ros.runtime.cameras import CameraSpec  # noqa: E402
from ar1_ros.runtime.config import RuntimeConfig  # noqa: E402
from ar1_ros.runtime.decode_pool import DecodePool  # noqa: E402
from ar1_ros.runtime.images import probe_size, stack_frames  # noqa: E402
from ar1_ros.runtime.types import Observation  # noqa: E402

CAMERA_HZ, JPEG_QUALITY = 10.0, 90
TOPICS = TopicMap(tuple(CameraTopic(topic_of(cid, True), name, True) for cid, name in CAMERAS),
                  EGO_TOPIC)
RUNTIME = RuntimeConfig(cameras=tuple(CameraSpec(name) for _, name in CAMERAS))


def realistic_frames(height: int, width: int, count: int = 6):
    """Return `count` RGB pictures that compress like camera frames (~0.3-1 MB at 1080p).

    Gradients, filled circles and mild noise: noise alone would compress far worse than a
    street scene and flat images far better, either skewing the decode cost.
    """
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


def _events(drive: Drive):
    """Return sorted (log_ns, camera index or -1 for odometry, stamp_ns), as a recorder logs."""
    start = int(drive.start_s * NS)
    events = []
    for frame in range(int(drive.duration_s * CAMERA_HZ)):
        stamp = start + int(round(frame * NS / CAMERA_HZ))
        events += [(stamp + int(drive.camera_latency_s * NS) + i, i, stamp)
                   for i in range(len(CAMERAS))]
    for step in range(int(drive.duration_s * drive.odom_hz)):
        stamp = start + int(round(step * NS / drive.odom_hz))
        events.append((stamp + int(drive.odom_latency_s * NS), -1, stamp))
    return sorted(events)


def write_bag(args, folder: Path) -> Path:
    """Write the benchmark bag into `folder`; each picture is JPEG-encoded once and reused."""
    drive = Drive(duration_s=args.seconds, size=(args.height, args.width))
    jpegs = [cv2.imencode('.jpg', rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1]
             for rgb in realistic_frames(args.height, args.width)]
    path = folder / 'bench'
    with BagWriter(path, args.storage) as writer:
        t = writer.typestore.types
        for camera in TOPICS.cameras:
            writer.add_topic(camera.topic, camera.msgtype)
        writer.add_topic(EGO_TOPIC, 'nav_msgs/msg/Odometry')
        for count, (log_ns, index, stamp) in enumerate(_events(drive)):
            if index < 0:
                writer.write(EGO_TOPIC, log_ns, odometry_message(writer, drive, stamp))
                continue
            header = t['std_msgs/msg/Header'](stamp=t['builtin_interfaces/msg/Time'](
                sec=stamp // NS, nanosec=stamp % NS), frame_id=CAMERAS[index][0])
            writer.write(TOPICS.cameras[index].topic, log_ns, t['sensor_msgs/msg/CompressedImage'](
                header=header, format='jpeg', data=jpegs[count % len(jpegs)].ravel()))
    return path


def median_time(fn, repeat: int) -> float:
    """Return the median wall time [s] of `repeat` calls of fn()."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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


def samples(path: Path, threads: int) -> int:
    """Assemble and decode one AR1 sample per 0.1 s of bag; return how many."""
    buffers, pool, count, last = InputBuffers(RUNTIME), DecodePool(threads), 0, None
    with BagReader(path) as reader:
        inputs = BagInputs(reader, TOPICS, buffers)
        for message in reader.messages(TOPICS.topics):
            if inputs.feed(message) is not None:
                continue
            floor = None if last is None else last + int(0.9 * NS / CAMERA_HZ)
            observation = buffers.assemble(message.log_ns, floor)
            if isinstance(observation, Observation):
                last = observation.t0_ns
                pool.prefetch(observation.frames)
                stack_frames(observation.frames)
                buffers.release_decoded(int(observation.frame_stamps_ns().min()))
                count += 1
    pool.close()
    return count


def describe(args, path: Path) -> Tuple[float, float]:
    """Print what the bag holds; return its duration [s] and size [MB].

    Raises BagError for a missing or unreadable bag or one without the drive bag's topics.
    """
    with BagReader(path) as reader:
        TOPICS.check(reader)
        bag_s = (reader.end_ns - reader.start_ns) / NS
        count = reader.message_count()
        first = next(reader.messages([TOPICS.cameras[0].topic]))
        height, width = probe_size(messages.compressed_to_encoded(reader.deserialize(first)))
    files = list(path.iterdir()) if path.is_dir() else [path]
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    storage = ', '.join(sorted({f.suffix[1:] for f in files} & {'mcap', 'db3'}))
    print(f'bag: {path} ({storage}): {count} messages, {size_mb:.0f} MB, {bag_s:.1f} s; '
          f'4 cameras {width}x{height} JPEG, {len(first.raw) / 1e6:.2f} MB a frame')
    print(f'{os.cpu_count()} CPU cores; medians of {args.repeat} runs, page cache warm')
    return bag_s, size_mb


def report(args, path: Path) -> None:
    """Measure and print the table and the ratios."""
    bag_s, size_mb = describe(args, path)
    count = raw_read(path)  # also warms the page cache
    raw = median_time(lambda: raw_read(path), args.repeat)
    ours = median_time(lambda: our_read(path), args.repeat)
    print(f'{"raw rosbags read + deserialize":42s} {count / raw:9.0f} msg/s {size_mb / raw:8.0f} '
          f'MB/s')
    print(f'{"ar1_ros BagReader + conversions":42s} {count / ours:9.0f} msg/s')
    rates = []
    for threads in sorted({0, args.decode_threads}):
        n = samples(path, threads)
        wall = median_time(lambda t=threads: samples(path, t), args.repeat)
        rates.append((threads, n / wall))
        print(f'{"samples (read + select + decode), " + str(threads) + " threads":42s} '
              f'{n / wall:9.1f} samples/s  real-time factor {bag_s / wall:.2f}')
    print(f'ratio ours / raw reading: {raw / ours:.2f} (messages/s)')
    print('ratio samples/s / 10 Hz real time: ' + ', '.join(
        f'{rate / CAMERA_HZ:.2f} ({threads} decode threads)' for threads, rate in rates))


def main(argv=None) -> int:
    """Run the benchmark; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=10.0)
    parser.add_argument('--width', type=int, default=1920)
    parser.add_argument('--height', type=int, default=1080)
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--decode-threads', type=int, default=4)
    parser.add_argument('--bag', type=Path, default=None,
                        help='an existing bag with the drive bag topics (test/bags)')
    args = parser.parse_args(argv)
    if (args.bag is None and args.seconds < 2.0) or args.repeat < 1 or args.decode_threads < 0:
        parser.error('need --seconds >= 2 (samples start after 1.5 s of history), '
                     '--repeat >= 1 and --decode-threads >= 0')
    with tempfile.TemporaryDirectory() as folder:
        try:
            report(args, args.bag or write_bag(args, Path(folder)))
        except BagError as exc:
            print(f'error: {exc}', file=sys.stderr)
            return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
