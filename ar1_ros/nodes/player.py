"""A rosbag2 player for the pip world, where `ros2 bag play` does not exist (`ar1 replay`).

Messages are published as the recorded CDR bytes (no deserialization) at their recorded
log-time spacing divided by `rate`, and /clock carries the bag's timeline (each message's log
time just before it, and at least clock_hz in between), so nodes with use_sim_time see the
recorded time. Topics whose message type is not installed are skipped with a warning.
"""
import collections
import dataclasses
import importlib
import math
import time
from typing import Callable, Dict, List, Optional, Sequence

from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from ar1_ros.data.bags import BagError, BagMessage, BagReader
from ar1_ros.runtime.types import NS_PER_S

# Latched by convention even when a bag recorded no QoS (older rosbag2, converted bags).
LATCHED = ('/tf_static',)
DEPTH = 100
# Longest sleep between checks that the context is still up: SIGTERM does not wake a sleep.
POLL_S = 0.1
# After the last message, how long to wait for reliable subscribers to acknowledge it (the
# process exits next, and unacknowledged samples would be lost).
ACK_TIMEOUT_S = 2.0


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: rclpy's signal handler shut the context down while playing."""


def message_class(msgtype: str):
    """Return the rclpy class of 'pkg/msg/Name'; ImportError/AttributeError if not installed."""
    package, kind, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.{kind}'), name)


def qos_for(topic: str, offers: Sequence = ()) -> QoSProfile:
    """Return the publishing QoS of `topic` from the QoS its publishers offered when recorded.

    offers: rosbags Qos tuples (connection.ext.offered_qos_profiles), maybe empty. As
    `ros2 bag play` does: best effort if any recorded publisher was best effort, transient
    local if all were (and always for /tf_static); otherwise reliable and volatile, which
    matches reliable and best-effort subscribers alike. Keep-last, depth 100.
    """
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=DEPTH,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)
    if any(offer.reliability.name == 'BEST_EFFORT' for offer in offers):
        qos.reliability = ReliabilityPolicy.BEST_EFFORT
    if topic in LATCHED or (offers and all(offer.durability.name == 'TRANSIENT_LOCAL'
                                           for offer in offers)):
        qos.durability = DurabilityPolicy.TRANSIENT_LOCAL
    return qos


def first_connections(reader: BagReader, topics: Sequence[str]) -> Dict[str, object]:
    """Return {topic: rosbags Connection of its first message}; topics without any left out.

    The connection carries the serialization format and the QoS offers that were recorded.
    """
    found = {}
    for topic in topics:
        messages = reader.messages([topic])
        try:
            first = next(messages, None)
        finally:
            messages.close()
        if first is not None:
            found[topic] = first.connection
    return found


def _require_cdr(topic: str, connection) -> None:
    """Raise ValueError unless `topic` was recorded as CDR (a ROS 1 bag is not)."""
    ext = getattr(connection, 'ext', None)
    serialization = getattr(ext, 'serialization_format', 'cdr' if ext is None else 'ros1')
    if serialization != 'cdr':
        raise ValueError(f'{topic} is serialized as {serialization}, not CDR: only rosbag2 bags '
                         'can be published (convert a ROS 1 bag with `rosbags-convert --src BAG '
                         '--dst DIR`)')


@dataclasses.dataclass
class PlayStats:
    """What one play published: messages per topic, bag and wall seconds, worst lateness."""

    published: Dict[str, int] = dataclasses.field(default_factory=collections.Counter)
    bag_s: float = 0.0
    wall_s: float = 0.0
    max_late_s: float = 0.0


class BagPlayer:
    """Publishes one bag's messages through `node`; play() once per loop.

    ValueError for what the user asked wrongly (rate, topics, offset, a bag that cannot be
    published); warn(line) receives the topics that are skipped.
    """

    def __init__(self, node, reader: BagReader, topics: Optional[Sequence[str]] = None,
                 rate: float = 1.0, clock_hz: float = 40.0, start_offset_s: float = 0.0,
                 warn: Callable[[str], None] = lambda line: None):
        if rate <= 0 or clock_hz < 0 or start_offset_s < 0:
            raise ValueError('rate must be > 0, clock_hz and start_offset >= 0')
        self._node, self._reader, self._rate = node, reader, rate
        self._clock_period = 1.0 / clock_hz if clock_hz > 0 else None
        self._start_ns = reader.start_ns + int(start_offset_s * NS_PER_S)
        if self._start_ns > reader.end_ns:
            raise ValueError(f'start offset {start_offset_s:g} s is past the end of the bag '
                             f'({(reader.end_ns - reader.start_ns) / NS_PER_S:.2f} s long)')
        self.skipped: List[str] = []
        self._publishers = self._create_publishers(self._playable(topics, warn))
        self._clock = node.create_publisher(Clock, '/clock', 10) if self._clock_period else None
        self._last_clock_ns, self._next_tick = -1, 0.0
        self.stats: Optional[PlayStats] = None
        self.plays = 0  # play() calls so far, the current one included

    def _playable(self, topics: Optional[Sequence[str]], warn) -> Dict[str, tuple]:
        """Return {topic: (message class, rosbags Connection or None)} of what can be played."""
        available = self._reader.topics
        unknown = sorted(set(topics or ()) - set(available))
        if unknown:
            raise ValueError(f'not in the bag: {", ".join(unknown)}; the bag has '
                             f'{", ".join(sorted(available)) or "no topics"}')
        try:
            connections = first_connections(self._reader, sorted(topics or available))
        except BagError as exc:
            raise ValueError(str(exc)) from exc
        playable = {}
        for topic in sorted(topics or available):
            connection = connections.get(topic)
            _require_cdr(topic, connection)
            try:
                playable[topic] = (message_class(available[topic]), connection)
            except (ImportError, AttributeError, ValueError):
                self.skipped.append(topic)
                warn(f'ar1 replay: skipping {topic}: message type {available[topic]} is not '
                     'installed here')
        if not playable:
            raise ValueError('nothing to play: no message type of the chosen topics is installed')
        return playable

    def _create_publishers(self, playable: Dict[str, tuple]) -> Dict[str, object]:
        publishers = {}
        for topic, (cls, connection) in playable.items():
            offers = getattr(getattr(connection, 'ext', None), 'offered_qos_profiles', ())
            publishers[topic] = self._node.create_publisher(cls, topic, qos_for(topic, offers))
        return publishers

    @property
    def topics(self) -> List[str]:
        """Return the topics that are played."""
        return sorted(self._publishers)

    def qos(self, topic: str) -> QoSProfile:
        """Return the QoS `topic` is published with."""
        return self._publishers[topic].qos_profile

    def wait_for_subscribers(self, topics: Sequence[str], timeout_s: float) -> List[str]:
        """Wait until each of `topics` (played ones, or /clock) has a matched subscription.

        Returns the topics still without one after `timeout_s`. A fixed --delay is a guess at
        DDS discovery time; matching is what a first message actually needs.
        """
        publishers = {**self._publishers, '/clock': self._clock}
        unknown = sorted(t for t in topics if publishers.get(t) is None)
        if unknown:
            raise ValueError(f'--wait-for: not played: {", ".join(unknown)}; played: '
                             f'{", ".join([*self.topics, *(["/clock"] if self._clock else [])])}')
        end = time.monotonic() + timeout_s
        while True:
            self._check_running()
            missing = [t for t in topics if publishers[t].get_subscription_count() == 0]
            if not missing or time.monotonic() >= end:
                return missing
            time.sleep(0.02)

    def _check_running(self) -> None:
        if not self._node.context.ok():
            raise Interrupted()

    def _publish_clock(self, stamp_ns: int) -> None:
        # Monotonic within one play: the bag time interpolated from wall time never passes
        # the next message's log time, and a sleep that overshoots must not make it go back.
        self._next_tick = time.monotonic() + (self._clock_period or math.inf)
        if self._clock is not None and stamp_ns > self._last_clock_ns:
            self._last_clock_ns = int(stamp_ns)
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(int(stamp_ns), NS_PER_S)
            self._send(self._clock, msg)

    def _send(self, publisher, data) -> None:
        self._check_running()
        try:
            publisher.publish(data)
        except Exception as exc:  # noqa: BLE001 - rclpy raises RCLError once shut down
            if not self._node.context.ok():
                raise Interrupted() from exc
            raise

    def _wait_until(self, wall_due: float, wall_start: float, log_ns: int) -> None:
        """Sleep until wall_due, publishing /clock every clock period on the bag timeline.

        The bag time of a tick is interpolated from wall time, capped at log_ns (the next
        message), so /clock never runs ahead of the messages.
        """
        while True:
            self._check_running()
            now = time.monotonic()
            if now >= wall_due:
                return
            time.sleep(max(0.0, min(wall_due, self._next_tick, now + POLL_S) - now))
            now = time.monotonic()
            if now >= self._next_tick:
                elapsed_ns = int((now - wall_start) * self._rate * NS_PER_S)
                self._publish_clock(min(self._start_ns + elapsed_ns, log_ns))

    def play(self) -> PlayStats:
        """Publish every message once, at its recorded spacing / rate; return the stats.

        Never drifts: each message is due at start + (log time - first log time) / rate.
        A read fault (corrupt or truncated bag) raises BagError after everything before it
        was published; Ctrl-C or SIGTERM raises Interrupted. Stats so far are in `self.stats`.
        """
        self.stats = stats = PlayStats()
        self.plays += 1
        self._last_clock_ns, self._next_tick = -1, 0.0
        wall_start = time.monotonic()
        try:
            for message in self._reader.messages(self.topics, start_ns=self._start_ns):
                self._publish(message, wall_start, stats)
        except BagError:
            self._flush()  # what was read before the fault still reaches its subscribers
            raise
        self._flush()
        return stats

    def _publish(self, message: BagMessage, wall_start: float, stats: PlayStats) -> None:
        offset_s = (message.log_ns - self._start_ns) / NS_PER_S
        due = wall_start + offset_s / self._rate
        self._wait_until(due, wall_start, message.log_ns)
        now = time.monotonic()
        stats.max_late_s = max(stats.max_late_s, now - due)
        self._publish_clock(message.log_ns)
        self._send(self._publishers[message.topic], bytes(message.raw))
        stats.published[message.topic] += 1
        stats.bag_s, stats.wall_s = offset_s, now - wall_start

    def _flush(self) -> None:
        """Wait (bounded) until reliable subscribers acknowledged what was published."""
        deadline = time.monotonic() + ACK_TIMEOUT_S
        for publisher in [*self._publishers.values(), self._clock]:
            left = deadline - time.monotonic()
            if publisher is not None and left > 0:
                self._check_running()
                publisher.wait_for_all_acked(Duration(nanoseconds=int(left * NS_PER_S)))
