"""The output bag of `ar1 eval`: the node's own publishing code, writing into a bag.

Outputs (nodes.outputs) is handed a stand-in node whose publishers are bag topics, so the
trajectories, paths, reasoning and markers in the bag are byte for byte what the node publishes
for the same cycle result. Messages are serialized with rclpy (no DDS, no rclpy.init needed).
"""
from typing import Optional

from rclpy.serialization import serialize_message

from ar1_ros.data.bags import BagMessage, BagWriter
from ar1_ros.nodes.outputs import Outputs
from ar1_ros.nodes.params import NodeConfig
from ar1_ros.nodes.policy_node import NODE_NAME
from ar1_ros.runtime.types import CycleResult


def msgtype_of(cls) -> str:
    """Return 'pkg/msg/Name' of a generated rclpy message class."""
    return f'{cls.__module__.split(".")[0]}/msg/{cls.__name__}'


class _BagTopic:
    """A publisher stand-in: publish() serializes and writes at the sink's current log time."""

    def __init__(self, sink: 'BagOutputSink', topic: str):
        self._sink, self.topic = sink, topic

    def publish(self, msg) -> None:
        self._sink.writer.write_raw(self.topic, self._sink.log_ns, serialize_message(msg))


class _BagNode:
    """What Outputs needs of a node: create/destroy_publisher and model_id."""

    def __init__(self, sink: 'BagOutputSink', model_id: str, node_name: str):
        self._sink, self.model_id, self._name = sink, model_id, node_name

    def create_publisher(self, msg_type, topic: str, qos) -> _BagTopic:
        name = f'/{self._name}/{topic[2:]}' if topic.startswith('~/') else topic
        self._sink.writer.add_topic(name, msgtype_of(msg_type))
        return _BagTopic(self._sink, name)

    def destroy_publisher(self, publisher) -> None:
        """Bag topics live as long as the bag."""


class BagOutputSink:
    """Writes a bag of the recorded inputs (copied unchanged) and the node's outputs.

    write_input(message) copies a recorded message; write_result(result, log_ns) writes what
    the node would publish for `result` (plan, samples, path, reasoning, markers, odom copies
    and overlay as configured; rejected samples on ~/rejected_trajectory), logged at log_ns.
    """

    def __init__(self, path, config: NodeConfig, model_id: str, storage: str = 'mcap',
                 node_name: str = NODE_NAME, overwrite: bool = False):
        self.writer = BagWriter(path, storage, overwrite=overwrite)
        self.log_ns = 0
        self._outputs = Outputs(_BagNode(self, model_id, node_name), config)

    def write_input(self, message: BagMessage) -> None:
        """Copy a recorded message (its own type definition comes along)."""
        self.writer.add_topic(message.topic, message.msgtype, copy_from=message.connection)
        self.writer.write_raw(message.topic, message.log_ns, message.raw)

    def write_result(self, result: CycleResult, log_ns: Optional[int] = None) -> None:
        """Write the messages the node publishes for `result` (nothing for a failed cycle)."""
        self.log_ns = int(result.observation.t0_ns if log_ns is None else log_ns)
        if result.output is None:
            return
        if result.plan_index is None:
            self._outputs.publish_rejected(result)
        else:
            self._outputs.publish_plan(result)

    def close(self) -> None:
        """Finish the bag."""
        self.writer.close()
