"""`ar1 replay`: a bag's bytes, order, timing and /clock over real DDS, without ros2cli."""
from pathlib import Path
import subprocess
import sys
import threading
import time

from bags.drive_bag import EGO_TOPIC, Drive, write_drive_bag
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros.synthetic import CAMERAS, NS, topic_of
from rosbags.typesys import get_types_from_msg
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import String

from ar1_ros.data.bags import BagReader, BagWriter
from ar1_ros.nodes.player import message_class

pytestmark = pytest.mark.ros
AR1 = str(Path(sys.executable).parent / 'ar1')
CAMERA = topic_of(CAMERAS[1][0], True)


class Listener:
    """Records raw bytes and arrival times of the given topics and /clock."""

    def __init__(self, topics):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('replay_listener', context=self.context)
        self.received = {t: [] for t in topics}
        self.clock = []
        qos = QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE)
        for topic, cls in topics.items():
            self.node.create_subscription(cls, topic, self._store(topic), qos, raw=True)
        self.node.create_subscription(Clock, '/clock', lambda m: self.clock.append(
            m.clock.sec * NS + m.clock.nanosec), qos)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _store(self, topic):
        return lambda raw: self.received[topic].append((time.monotonic(), bytes(raw)))

    def wait_for_publishers(self, topic, timeout=20.0):
        end = time.monotonic() + timeout
        while self.node.count_publishers(topic) == 0 and time.monotonic() < end:
            time.sleep(0.05)

    def close(self):
        self.executor.shutdown()
        self._thread.join(timeout=5)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def replay(*args, timeout=60):
    return subprocess.run([AR1, 'replay', *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def recorded(bag, topic):
    with BagReader(bag) as reader:
        return [(m.log_ns, bytes(m.raw)) for m in reader.messages([topic])]


@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    return write_drive_bag(tmp_path_factory.mktemp('replay') / 'drive', Drive(duration_s=2.0))


def test_bytes_order_timing_and_clock(bag):
    listener = Listener({CAMERA: CompressedImage, EGO_TOPIC: message_class(
        'nav_msgs/msg/Odometry')})
    try:
        result = replay(bag, '--rate', '2.0', '--delay', '1.5')
        assert result.returncode == 0, result.stderr
        time.sleep(0.5)
        for topic in (CAMERA, EGO_TOPIC):
            got = [raw for _, raw in listener.received[topic]]
            sent = [raw for _, raw in recorded(bag, topic)]
            assert len(got) == len(sent), topic
            # DDS pads serialized messages to 4 bytes; the content is the recorded bytes.
            assert all(g[:len(s)] == s and len(g) - len(s) < 4 for g, s in
                       zip(got, sent, strict=True)), topic
        arrivals = [t for t, _ in listener.received[CAMERA]]
        logs = [t for t, _ in recorded(bag, CAMERA)]
        # 2 s of bag at rate 2: about 1 s of wall time between the first and last frame.
        wall = arrivals[-1] - arrivals[0]
        assert abs(wall - (logs[-1] - logs[0]) / NS / 2.0) < 0.25, wall
        clock = listener.clock
        assert clock == sorted(clock), '/clock must not go back within one play'
        assert clock[0] >= logs[0] - 10 ** 8
        assert clock[-1] >= logs[-1] - 10 ** 7
        assert 'messages (1 play(s))' in result.stdout
    finally:
        listener.close()


def test_topics_filter_and_loop(bag):
    listener = Listener({CAMERA: CompressedImage, EGO_TOPIC: message_class(
        'nav_msgs/msg/Odometry')})
    try:
        process = subprocess.Popen([AR1, 'replay', str(bag), '--topics', CAMERA, '--loop',
                                    '--rate', '4.0', '--delay', '1.5'],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        frames = len(recorded(bag, CAMERA))
        end = time.monotonic() + 30
        while len(listener.received[CAMERA]) < 2 * frames + 2 and time.monotonic() < end:
            time.sleep(0.1)
        process.terminate()
        process.wait(timeout=10)
        assert len(listener.received[CAMERA]) >= 2 * frames, 'looped twice'
        assert listener.received[EGO_TOPIC] == [], 'only the chosen topic plays'
        assert any(b < a for a, b in zip(listener.clock[:-1], listener.clock[1:], strict=True)), \
            'the clock jumps back when the bag starts again'
    finally:
        listener.close()


def test_bad_arguments_are_clear(bag, tmp_path):
    result = replay(tmp_path / 'missing')
    assert result.returncode == 2
    assert 'no such bag' in result.stderr
    result = replay(bag, '--topics', '/nope')
    assert result.returncode == 2
    assert 'not in the bag: /nope' in result.stderr
    assert EGO_TOPIC in result.stderr
    assert replay(bag, '--rate', '0').returncode == 2


def test_type_not_installed_is_skipped(tmp_path):
    path = tmp_path / 'custom'
    with BagWriter(path) as writer:
        writer.typestore.register(get_types_from_msg('int32 a', 'no_such_msgs/msg/Thing'))
        writer.add_topic('/thing', 'no_such_msgs/msg/Thing')
        writer.add_topic('/text', 'std_msgs/msg/String')
        thing, text = (writer.typestore.types[t] for t in ('no_such_msgs/msg/Thing',
                                                            'std_msgs/msg/String'))
        for i in range(5):
            writer.write('/thing', NS + i * 10 ** 7, thing(a=i))
            writer.write('/text', NS + i * 10 ** 7, text(data=f'm{i}'))
    listener = Listener({'/text': String})
    try:
        result = replay(path, '--delay', '1.5')
        assert result.returncode == 0, result.stderr
        assert 'skipping /thing: message type no_such_msgs/msg/Thing is not installed' \
            in result.stderr
        time.sleep(0.3)
        assert len(listener.received['/text']) == 5
    finally:
        listener.close()
