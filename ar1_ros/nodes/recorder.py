"""Record topics into a rosbag2 bag from DDS: the pip world's `ros2 bag record` for a few topics.

Messages are taken serialized (raw subscriptions: no deserialize/serialize round trip) and
written as received, each at the recorder's clock (sim time when use_sim_time is set, so a
replayed bag's outputs line up with its inputs). Types are given up front, not discovered:
the demo records known outputs of the policy node.
"""
import threading
from typing import Dict, Mapping

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from ar1_ros.data.bags import BagWriter
from ar1_ros.nodes.bag_outputs import msgtype_of

RECORD_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


class TopicRecorder(Node):
    """A node writing every message of `topics` ({topic: message class}) into `writer`.

    counts: messages written per topic. Writing happens in the executor's thread; close()
    from another thread is safe (a lock guards the writer).
    """

    def __init__(self, writer: BagWriter, topics: Mapping[str, type],
                 name: str = 'ar1_recorder'):
        super().__init__(name)
        self._writer, self._lock = writer, threading.Lock()
        self.counts: Dict[str, int] = dict.fromkeys(topics, 0)
        for topic, msg_class in topics.items():
            writer.add_topic(topic, msgtype_of(msg_class))
            self.create_subscription(msg_class, topic, self._callback(topic), RECORD_QOS,
                                     raw=True)

    def _callback(self, topic: str):
        def write(raw: bytes) -> None:
            with self._lock:
                if self._writer is None:
                    return
                self._writer.write_raw(topic, self.get_clock().now().nanoseconds, raw)
                self.counts[topic] += 1
        return write

    def close(self) -> None:
        """Finish the bag; later messages are dropped."""
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
