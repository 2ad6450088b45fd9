"""Recorded camera and odometry messages into the runtime's input buffers, as the node does.

The conversions (runtime.messages) and the checks (stamp 0, image header probe, odometry
sanity) are the node's own, so an observation assembled from a bag equals the one the node
assembles when the bag is replayed to it. Rejected messages are counted per topic and reason.
"""
import collections
import dataclasses
from typing import Callable, Dict, Optional, Tuple

from ar1_ros.data.bags import BagMessage, BagReader
from ar1_ros.runtime import messages
from ar1_ros.runtime.assembly import InputBuffers
from ar1_ros.runtime.images import Frame, ImageError, probe_size
from ar1_ros.runtime.types import EgoState

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
ODOMETRY = 'nav_msgs/msg/Odometry'
UNSTAMPED = 'header.stamp is zero: the driver does not stamp its messages'


@dataclasses.dataclass(frozen=True)
class CameraTopic:
    """A camera input: its topic, AR1 camera name and transport (CompressedImage or Image)."""

    topic: str
    camera: str
    compressed: bool

    @property
    def msgtype(self) -> str:
        """Return the message type the topic must have."""
        return COMPRESSED if self.compressed else IMAGE


@dataclasses.dataclass(frozen=True)
class TopicMap:
    """Which recorded topics feed which runtime input."""

    cameras: Tuple[CameraTopic, ...]
    ego_topic: str

    @property
    def topics(self) -> Tuple[str, ...]:
        """Return every input topic (cameras first)."""
        return tuple(c.topic for c in self.cameras) + (self.ego_topic,)

    def check(self, reader: BagReader) -> None:
        """Raise BagError unless the bag has every input topic with the expected type."""
        for camera in self.cameras:
            reader.require(camera.topic, (camera.msgtype,))
        reader.require(self.ego_topic, (ODOMETRY,))


class BagInputs:
    """Feeds one bag's input messages into `buffers` (runtime.assembly.InputBuffers).

    on_ego(state), if given, receives every accepted odometry sample (e.g. a ground-truth track).
    """

    def __init__(self, reader: BagReader, topics: TopicMap, buffers: InputBuffers,
                 on_ego: Optional[Callable[[EgoState], None]] = None):
        self._reader, self._buffers, self._on_ego = reader, buffers, on_ego
        self._cameras: Dict[str, CameraTopic] = {c.topic: c for c in topics.cameras}
        self._ego_topic = topics.ego_topic
        self.rejected: Dict[Tuple[str, str], int] = collections.Counter()
        self.notes = []

    def feed(self, message: BagMessage) -> Optional[str]:
        """Store `message` if it is an input; return why it was rejected, else None.

        Messages of other topics are ignored (None). A message that cannot be decoded at all
        raises BagError (the bag is corrupt there).
        """
        camera = self._cameras.get(message.topic)
        if camera is None and message.topic != self._ego_topic:
            return None
        msg = self._reader.deserialize(message)
        problem = (self._feed_image(camera, msg) if camera is not None
                   else self._feed_odometry(msg))
        if problem:
            self.rejected[(message.topic, problem.split(':')[0])] += 1
        return problem

    def _feed_image(self, camera: CameraTopic, msg) -> Optional[str]:
        stamp_ns = messages.stamp_to_ns(msg.header.stamp)
        if stamp_ns == 0:
            return UNSTAMPED
        encoded = (messages.compressed_to_encoded(msg) if camera.compressed
                   else messages.image_to_encoded(msg))
        try:
            size = probe_size(encoded)
        except ImageError as exc:
            return str(exc)
        note = self._buffers.add_frame(camera.camera, Frame(stamp_ns, encoded, size))
        if note:
            self.notes.append(note)
        return None

    def _feed_odometry(self, msg) -> Optional[str]:
        if messages.stamp_to_ns(msg.header.stamp) == 0:
            return UNSTAMPED
        try:
            state = messages.odometry_to_ego(msg)
        except ValueError as exc:
            return str(exc)
        problem = self._buffers.add_ego(state)
        if problem is None and self._on_ego is not None:
            self._on_ego(state)
        return problem
