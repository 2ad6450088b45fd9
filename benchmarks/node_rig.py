"""The rig of bench_node.py: the policy node in-process, a feeder, a listener and timing probes.

The node runs on an executor thread of its own; the feeder and the plan listener run on a second
one (one rclpy context, messages over real DDS), so listener work is not charged to the node's
executor. Probes wrap the backend (bare `infer` time), the image and odometry callbacks, the
worker's `submit` and the node's result handling, recording a monotonic timeline per t0.
"""
import collections
import os
from pathlib import Path
import random
import resource
import sys
import threading
import time

import cv2
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from ar1_ros.msg import Trajectory
from ar1_ros.nodes.inputs import Inputs
from ar1_ros.nodes.main import autostart
from ar1_ros.nodes.policy_node import NODE_NAME, PolicyNode
from ar1_ros.runtime import images
from ar1_ros.runtime.backends.base import create_backend
from ar1_ros.runtime.messages import stamp_to_ns
from ar1_ros.runtime.worker import InferenceWorker

# The synthetic streams of the node tests (test/ros/synthetic.py: the four AR1 cameras and the
# odometry of an arc drive) and their parameter overrides (test/ros/harness.py) are reused, so
# the benchmark feeds the node what the tests do. test/ is only on sys.path under pytest.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test'))
from ros.harness import CONFIG, fake_overrides  # noqa: E402
from ros.synthetic import NS, Feeder  # noqa: E402

STEP_NS = 20_000_000      # odometry every 20 ms (50 Hz)
CAMERA_EVERY = 5          # cameras every 5th odometry step (10 Hz)
__all__ = ['NS', 'Probe', 'Rig', 'cpu_seconds', 'drive', 'fake_overrides', 'rss_mib']


def rss_mib() -> float:
    """Return this process's resident memory (VmRSS) in MiB."""
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def cpu_seconds() -> float:
    """Return this process's user + system CPU time in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def noisy_picture(height: int, width: int, seed: int) -> np.ndarray:
    """Return an (H, W, 3) uint8 picture: colour gradients, a few boxes and sensor-like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([x * 255 / width, y * 255 / height, (x + y) * 255 / (width + height)], -1)
    for _ in range(6):
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        img[top:top + height // 4, left:left + width // 5] = rng.integers(0, 255, 3)
    img += rng.normal(0.0, 8.0, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


class BenchFeeder(Feeder):
    """The tests' Feeder with noisy pictures at a given JPEG quality (realistic JPEG sizes)."""

    def __init__(self, node, quality: int = 90, **kwargs):
        self.quality = quality
        super().__init__(node, **kwargs)

    def set_size(self, size):
        """Make the four pictures (H, W) and their JPEGs."""
        self.size = size
        self._pictures = [noisy_picture(size[0], size[1], seed) for seed in range(4)]
        params = [cv2.IMWRITE_JPEG_QUALITY, self.quality]
        self._jpegs = [cv2.imencode('.jpg', p[..., ::-1], params)[1].tobytes()
                       for p in self._pictures]

    def jpeg_bytes(self) -> float:
        """Return the mean size of the four JPEGs in bytes."""
        return float(np.mean([len(j) for j in self._jpegs]))


class Probe:
    """Thread-safe timeline per t0 (monotonic seconds), duration samples and counters.

    With record=False only the counters are kept (no per-cycle growth: the memory part).
    """

    def __init__(self, record: bool = True):
        self.record = record
        self._lock = threading.Lock()
        self.cycles = collections.defaultdict(dict)
        self.samples = collections.defaultdict(list)
        self.counts = collections.Counter()

    def mark(self, t0: int, key: str, value=None, keep=None) -> None:
        """Set cycles[t0][key] to value (now by default), or keep(old, value) if it exists."""
        if not self.record:
            return
        value = time.monotonic() if value is None else value
        with self._lock:
            marks = self.cycles[t0]
            marks[key] = keep(marks[key], value) if keep and key in marks else value

    def sample(self, name: str, value: float) -> None:
        """Append a duration sample."""
        if self.record:
            with self._lock:
                self.samples[name].append(value)

    def count(self, name: str) -> None:
        """Increment a counter."""
        with self._lock:
            self.counts[name] += 1


class TimedBackend:
    """A backend wrapper recording the bare `infer` wall time of each cycle."""

    def __init__(self, backend, probe: Probe):
        self._backend, self._probe = backend, probe
        self.name, self.model_id = backend.name, backend.model_id

    def infer(self, images, observation):
        """Run the wrapped backend, marking 'infer start' and 'infer end' of the cycle."""
        start = time.monotonic()
        try:
            return self._backend.infer(images, observation)
        finally:
            self._probe.mark(observation.t0_ns, 'infer start', start)
            self._probe.mark(observation.t0_ns, 'infer end')

    def close(self) -> None:
        """Close the wrapped backend."""
        self._backend.close()


def _timed_callback(original, probe: Probe, name: str, image: bool):
    def wrapper(self, *args):
        start = time.monotonic()
        original(self, *args)
        end = time.monotonic()
        probe.sample(name, end - start)
        if image:
            probe.mark(stamp_to_ns(args[-1].header.stamp), 'inputs ready', end, max)
    return wrapper


def _timed_submit(original, probe: Probe):
    def wrapper(self, observation):
        probe.mark(observation.t0_ns, 'submit')
        replaced = original(self, observation)
        probe.count('submitted')
        if replaced:
            probe.count('dropped')
        return replaced
    return wrapper


def _timed_handle(original, probe: Probe):
    def wrapper(self, result):
        t0 = result.observation.t0_ns
        probe.mark(t0, 'handle start')
        original(self, result)
        probe.mark(t0, 'handle end')
        probe.mark(t0, 'timings', dict(result.timings))
        probe.count('handled')
    return wrapper


def _timed_decode(original, probe: Probe):
    def wrapper(image):
        start = time.monotonic()
        rgb = original(image)
        probe.sample('JPEG decode (worker)', time.monotonic() - start)
        return rgb
    return wrapper


def install_probes(probe: Probe):
    """Wrap the node's callbacks, decode, the worker's submit, result handling; return undo."""
    patches = [(images, 'decode', _timed_decode(images.decode, probe)),
               (Inputs, '_on_image', _timed_callback(Inputs._on_image, probe,
                                                     'image callback', True)),
               (Inputs, '_on_odometry', _timed_callback(Inputs._on_odometry, probe,
                                                        'odometry callback', False)),
               (InferenceWorker, 'submit', _timed_submit(InferenceWorker.submit, probe)),
               (PolicyNode, '_handle_result', _timed_handle(PolicyNode._handle_result, probe))]
    originals = [(cls, name, cls.__dict__[name]) for cls, name, _ in patches]
    for cls, name, wrapper in patches:
        setattr(cls, name, wrapper)
    return lambda: [setattr(cls, name, fn) for cls, name, fn in originals]


class Rig:
    """The node (with a TimedBackend) on one executor thread, feeder and listener on another.

    sim_time: the feeder publishes /clock and stamps on a simulated timeline starting at
    1000 s; otherwise stamps are wall-clock (time.time_ns) and the node runs on system time.
    """

    def __init__(self, overrides: dict, probe: Probe, size, sim_time: bool, quality=90):
        self.probe, self.sim_time, self.sim_ns, self.frame, self.plans = probe, sim_time, 0, 0, 0
        self.context = rclpy.Context()
        rclpy.init(context=self.context, args=['--ros-args', '--params-file', CONFIG])
        params = [Parameter(k, value=v)
                  for k, v in dict(overrides, use_sim_time=sim_time).items()]
        self.node = PolicyNode(NODE_NAME, context=self.context, parameter_overrides=params,
                               backend_factory=lambda s: TimedBackend(create_backend(s), probe))
        self.io = rclpy.create_node('ar1_bench_io', context=self.context)
        self.feeder = BenchFeeder(self.io, quality=quality, size=size, publish_clock=sim_time)
        self.io.create_subscription(Trajectory, f'/{NODE_NAME}/trajectory', self._on_plan, 50)
        self.sim_ns = 1000 * NS
        self._executors = []
        for node in (self.node, self.io):
            executor = SingleThreadedExecutor(context=self.context)
            executor.add_node(node)
            thread = threading.Thread(target=executor.spin, daemon=True)
            thread.start()
            self._executors.append((executor, thread))

    def _on_plan(self, msg) -> None:
        self.probe.mark(stamp_to_ns(msg.header.stamp), 'received')
        self.plans += 1

    def start(self) -> bool:
        """Configure and activate the node; return whether it is active."""
        active = autostart(self.node)
        self.activated = time.monotonic()  # the cycle timer starts with the activation
        return active

    def next_stamp(self) -> int:
        """Return the stamp of the next 20 ms step (sim time advances; wall time is read)."""
        if not self.sim_time:
            return time.time_ns()
        self.sim_ns += STEP_NS
        return self.sim_ns

    def publish_cameras(self, stamp: int) -> None:
        """Publish the four cameras at `stamp`, timing the feeder's publish."""
        self.frame += 1
        start = time.monotonic()
        self.feeder.publish_cameras(stamp, self.frame)
        end = time.monotonic()
        self.probe.sample('feeder publish (4 images)', end - start)
        self.probe.mark(stamp, 'published', end)
        self.feeder.published = {'camera': [], 'odom': []}  # the feeder's log would grow

    def close(self) -> None:
        """Stop both executors, then release the node and shut the context down."""
        # Released while its executor spins, the node could publish on destroyed publishers.
        for executor, thread in self._executors:
            executor.shutdown()
            thread.join(timeout=5)
        self.node.release()
        self.node.destroy_node()
        self.io.destroy_node()
        rclpy.shutdown(context=self.context)


def drive(rig: Rig, seconds: float, speedup: float = 1.0, until=None) -> float:
    """Publish odometry at 50 Hz and cameras at 10 Hz for `seconds` of stamps; return wall s.

    Steps are paced against absolute deadlines at `speedup` x real time: after a late step the
    loop does not sleep until it is back on schedule. until(): checked after each camera step;
    stops the drive when true.
    """
    start = time.monotonic()
    for step in range(int(round(seconds * NS / STEP_NS))):
        stamp = rig.next_stamp()
        if rig.sim_time:
            rig.feeder.publish_clock(stamp)
        rig.feeder.publish_odometry(stamp)
        if step % CAMERA_EVERY == 0:
            rig.publish_cameras(stamp)
            if until is not None and until():
                break
        delay = start + (step + 1) * STEP_NS / NS / speedup - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return time.monotonic() - start


def ros_environment() -> None:
    """DDS on this host only, on a random domain (as test/conftest.py); offline Hugging Face."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 100)))
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
