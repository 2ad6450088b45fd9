"""A rosbag2 player for the pip world, where `ros2 bag play` does not exist (`ar1 replay`).

Messages are published as the recorded CDR bytes (no deserialization) at their recorded
log-time spacing divided by `rate`, and /clock carries the bag's timeline (each message's log
time just before it, and at least clock_hz in between), so nodes with use_sim_time see the
recorded time. Topics whose message type is not installed are skipped with a warning.
"""
import collections
import dataclasses
import importlib
import time
from typing import Callable, Dict, List, Optional, Sequence

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from ar1_ros.data.bags import BagMessage, BagReader
from ar1_ros.runtime.types import NS_PER_S

LATCHED = ('/tf_static',)


def message_class(msgtype: str):
    """Return the rclpy class of 'pkg/msg/Name'; ImportError/AttributeError if not installed."""
    package, kind, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.{kind}'), name)


def qos_for(topic: str) -> QoSProfile:
    """Return the publishing QoS: reliable, depth 100; transient local for latched topics.

    Reliable publishers match both reliable and best-effort (sensor-data) subscribers.
    """
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    if topic in LATCHED:
        qos.durability = DurabilityPolicy.TRANSIENT_LOCAL
    return qos


@dataclasses.dataclass
class PlayStats:
    """What one play published: messages per topic, bag and wall seconds, worst lateness."""

    published: Dict[str, int] = dataclasses.field(default_factory=collections.Counter)
    bag_s: float = 0.0
    wall_s: float = 0.0
    max_late_s: float = 0.0


class BagPlayer:
    """Publishes one bag's messages through `node`; play() once per loop."""

    def __init__(self, node, reader: BagReader, topics: Optional[Sequence[str]] = None,
                 rate: float = 1.0, clock_hz: float = 40.0, start_offset_s: float = 0.0,
                 warn: Callable[[str], None] = lambda line: None):
        if rate <= 0 or clock_hz < 0 or start_offset_s < 0:
            raise ValueError('rate must be > 0, clock_hz and start_offset >= 0')
        self._reader, self._rate, self._clock_period = reader, rate, (
            1.0 / clock_hz if clock_hz > 0 else None)
        self._start_ns = reader.start_ns + int(start_offset_s * NS_PER_S)
        available = reader.topics
        unknown = sorted(set(topics or ()) - set(available))
        if unknown:
            raise ValueError(f'not in the bag: {", ".join(unknown)}; the bag has '
                             f'{", ".join(sorted(available))}')
        self.skipped: List[str] = []
        self._publishers = {}
        for topic in sorted(topics or available):
            try:
                cls = message_class(available[topic])
            except (ImportError, AttributeError, ValueError):
                self.skipped.append(topic)
                warn(f'ar1 replay: skipping {topic}: message type {available[topic]} is not '
                     f'installed here')
                continue
            self._publishers[topic] = node.create_publisher(cls, topic, qos_for(topic))
        self._clock = node.create_publisher(Clock, '/clock', 10) if self._clock_period else None
        self._last_clock_ns = -1
        self.stats: Optional[PlayStats] = None

    @property
    def topics(self) -> List[str]:
        """Return the topics that are played."""
        return sorted(self._publishers)

    def _publish_clock(self, stamp_ns: int) -> None:
        # Monotonic within one play: sleeping may overshoot, and the bag time interpolated
        # from wall time must never pass the next message's log time.
        if self._clock is not None and stamp_ns > self._last_clock_ns:
            self._last_clock_ns = int(stamp_ns)
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(int(stamp_ns), NS_PER_S)
            self._clock.publish(msg)

    def _wait_until(self, wall_due: float, wall_start: float, log_ns: int) -> None:
        """Sleep until wall_due, publishing /clock on the bag timeline (up to log_ns)."""
        while True:
            remaining = wall_due - time.monotonic()
            if remaining <= 0:
                return
            if self._clock_period is None:
                time.sleep(remaining)
                return
            time.sleep(min(remaining, self._clock_period))
            elapsed = time.monotonic() - wall_start
            self._publish_clock(min(self._start_ns + int(elapsed * self._rate * NS_PER_S),
                                    log_ns))

    def play(self) -> PlayStats:
        """Publish every message once, at its recorded spacing / rate; return the stats.

        A read fault (corrupt or truncated bag) raises BagError after everything before it
        was published; stats so far are in `self.stats`.
        """
        self.stats = stats = PlayStats()
        self._last_clock_ns = -1
        wall_start = time.monotonic()
        for message in self._reader.messages(self.topics, start_ns=self._start_ns):
            self._publish(message, wall_start, stats)
        stats.wall_s = time.monotonic() - wall_start
        return stats

    def _publish(self, message: BagMessage, wall_start: float, stats: PlayStats) -> None:
        offset_s = (message.log_ns - self._start_ns) / NS_PER_S
        due = wall_start + offset_s / self._rate
        self._wait_until(due, wall_start, message.log_ns)
        stats.max_late_s = max(stats.max_late_s, time.monotonic() - due)
        self._publish_clock(message.log_ns)
        self._publishers[message.topic].publish(bytes(message.raw))
        stats.published[message.topic] += 1
        stats.bag_s = offset_s
