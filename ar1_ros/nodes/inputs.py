"""Subscriptions of the policy node: messages into the runtime's stamped buffers.

Callbacks only wrap and store (an image header probe at most, no decode, no inference), so they
never hold up the executor: each selected frame is decoded once, later, on the worker thread.
Every rejected message is counted against its topic and reported as an event.
"""
import functools
from typing import List

from nav_msgs.msg import Odometry
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from ar1_ros.runtime import messages
from ar1_ros.runtime.images import Frame, ImageError, probe_size

# A zero stamp is a driver that does not stamp: its time of capture is unknown, and every
# selection by time would be wrong (t0 would look decades old).
UNSTAMPED = 'header.stamp is zero: the driver does not stamp its messages'


def sensor_qos(depth: int) -> QoSProfile:
    """Return the sensor-data QoS (best effort, volatile) with queue `depth`."""
    qos = QoSProfile(depth=depth)
    qos.reliability = qos_profile_sensor_data.reliability
    qos.durability = qos_profile_sensor_data.durability
    qos.history = qos_profile_sensor_data.history
    return qos


class Inputs:
    """Camera and odometry subscriptions feeding `buffers`, counting into `health`.

    report(kind, detail) records and logs an event (the node's `report`); on_input(), if
    given, runs after every stored message (the node's cycle, when inputs trigger cycles).
    """

    def __init__(self, node, config, buffers, health, report, on_input=None):
        self._node, self._buffers, self._health, self._report = node, buffers, health, report
        self._on_input = on_input
        self._subscriptions: List = []
        for camera in config.inputs:
            msg_type = CompressedImage if camera.compressed else Image
            self._subscriptions.append(node.create_subscription(
                msg_type, camera.topic, functools.partial(self._on_image, camera),
                sensor_qos(config['image_qos_depth'])))
        self._ego_topic = config['ego_topic']
        self._subscriptions.append(node.create_subscription(
            Odometry, self._ego_topic, self._on_odometry, sensor_qos(config['ego_qos_depth'])))

    def destroy(self) -> None:
        """Destroy every subscription (deactivate)."""
        for subscription in self._subscriptions:
            self._node.destroy_subscription(subscription)
        self._subscriptions = []

    def _reject(self, topic: str, stamp_ns: int, kind: str, problem: str) -> None:
        self._health.record_input(topic, stamp_ns, problem)
        self._report(kind, f'{topic}: {problem}')

    def _on_image(self, camera, msg) -> None:
        stamp_ns = messages.stamp_to_ns(msg.header.stamp)
        if stamp_ns == 0:
            self._reject(camera.topic, stamp_ns, 'image_rejected', UNSTAMPED)
            return
        if camera.compressed:
            encoded = messages.compressed_to_encoded(msg)
        else:
            encoded = messages.image_to_encoded(msg)
        try:
            size = probe_size(encoded)
        except ImageError as exc:
            self._reject(camera.topic, stamp_ns, 'image_rejected', str(exc))
            return
        note = self._buffers.add_frame(camera.spec.name, Frame(stamp_ns, encoded, size))
        if note:
            self._report('image_size_changed', note)
        self._health.record_input(camera.topic, stamp_ns)
        if self._on_input is not None:
            self._on_input()

    def _on_odometry(self, msg: Odometry) -> None:
        stamp_ns = messages.stamp_to_ns(msg.header.stamp)
        if stamp_ns == 0:
            self._reject(self._ego_topic, stamp_ns, 'odometry_rejected', UNSTAMPED)
            return
        try:
            state = messages.odometry_to_ego(msg)
        except ValueError as exc:
            self._reject(self._ego_topic, stamp_ns, 'odometry_rejected', str(exc))
            return
        problem = self._buffers.add_ego(state)
        if problem:
            self._reject(self._ego_topic, stamp_ns, 'odometry_rejected', problem)
            return
        self._health.record_input(self._ego_topic, stamp_ns)
        if self._on_input is not None:
            self._on_input()
