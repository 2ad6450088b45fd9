"""ROS messages to runtime values, by field name only: no message type is imported here.

The node hands in rclpy messages and the bag tools hand in `rosbags` messages; both have the same
field names, so one conversion serves the live node, replay, offline evaluation and training.
Image payloads are wrapped, not decoded (rclpy gives `array.array`/bytes, rosbags numpy views).
"""
import numpy as np

from ar1_ros.runtime.images import EncodedImage
from ar1_ros.runtime.rotations import quat_to_matrix
from ar1_ros.runtime.types import NS_PER_S, EgoState


def stamp_to_ns(stamp) -> int:
    """Return a builtin_interfaces/Time (sec, nanosec) as integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def odometry_to_ego(msg) -> EgoState:
    """Convert nav_msgs/Odometry to EgoState; a zero or non-finite quaternion raises ValueError."""
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    v = msg.twist.twist.linear
    return EgoState(stamp_to_ns(msg.header.stamp),
                    np.array([p.x, p.y, p.z], dtype=np.float64),
                    quat_to_matrix(np.array([q.x, q.y, q.z, q.w], dtype=np.float64)),
                    np.array([v.x, v.y, v.z], dtype=np.float64),
                    msg.header.frame_id or 'odom')


def image_to_encoded(msg) -> EncodedImage:
    """Wrap a sensor_msgs/Image payload (the message owns the bytes; no copy)."""
    return EncodedImage(np.frombuffer(msg.data, dtype=np.uint8), msg.encoding, False,
                        int(msg.width), int(msg.height), int(msg.step))


def compressed_to_encoded(msg) -> EncodedImage:
    """Wrap a sensor_msgs/CompressedImage payload (JPEG or PNG)."""
    return EncodedImage(np.frombuffer(msg.data, dtype=np.uint8), msg.format, True, 0, 0, 0)
