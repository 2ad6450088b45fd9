"""Synthetic camera and odometry streams for node tests and the node benchmark.

The ego drives an arc of constant speed and curvature, so every expected value (the pose at any
stamp, the speed, the history in the t0 frame) is known in closed form. Faults are switched on
by setting attributes of Feeder between publishes.
"""
import math

import cv2
from nav_msgs.msg import Odometry
import numpy as np
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image

NS = 1_000_000_000
CAMERAS = (('cross_left', 'camera_cross_left_120fov'), ('front_wide', 'camera_front_wide_120fov'),
           ('cross_right', 'camera_cross_right_120fov'),
           ('front_tele', 'camera_front_tele_30fov'))


def topic_of(camera_id: str, compressed: bool) -> str:
    return f'/test/{camera_id}/image' + ('/compressed' if compressed else '')


def camera_overrides(compressed: bool = True, ego_topic: str = '/test/odom') -> dict:
    """ROS parameter values that point the node at this module's topics."""
    values = {'cameras': [c for c, _ in CAMERAS], 'ego_topic': ego_topic}
    for camera_id, name in CAMERAS:
        values[f'camera.{camera_id}.topic'] = topic_of(camera_id, compressed)
        values[f'camera.{camera_id}.compressed'] = compressed
        values[f'camera.{camera_id}.ar1_name'] = name
    return values


def arc_pose(t_s: float, speed: float, curvature: float):
    """Return (x, y, yaw) at time t_s of an arc from the origin (yaw 0 at t = 0)."""
    yaw = curvature * speed * t_s
    if abs(curvature) < 1e-12:
        return speed * t_s, 0.0, 0.0
    return math.sin(yaw) / curvature, (1 - math.cos(yaw)) / curvature, yaw


def make_image(height: int, width: int, seed: int) -> np.ndarray:
    """Return an (H, W, 3) uint8 RGB test picture with structure (gradients and a box)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)),
                    np.full_like(x, seed * 37 % 256)], -1).astype(np.uint8)
    top, left = rng.integers(0, max(height // 2, 1)), rng.integers(0, max(width // 2, 1))
    img[top:top + height // 4, left:left + width // 4] = rng.integers(0, 255, 3)
    return img


class Feeder:
    """Publishes the four AR1 cameras and odometry of an arc drive; faults are attributes."""

    def __init__(self, node, compressed=True, size=(72, 128), speed=8.0, curvature=0.01,
                 ego_topic='/test/odom', publish_clock=False):
        self.node, self.compressed, self.speed, self.curvature = node, compressed, speed, curvature
        qos = qos_profile_sensor_data
        msg_type = CompressedImage if compressed else Image
        self.cameras = {cid: node.create_publisher(msg_type, topic_of(cid, compressed), qos)
                        for cid, _ in CAMERAS}
        self.odom = node.create_publisher(Odometry, ego_topic, qos)
        self.clock = node.create_publisher(Clock, '/clock', 10) if publish_clock else None
        self.set_size(size)
        # Faults, switched on by tests.
        self.drop = set()            # camera ids not published
        self.nan_pose = False
        self.encoding = 'rgb8'       # raw only
        self.corrupt = set()         # camera ids sending garbage JPEG
        self.unstamped = set()       # camera ids sending header.stamp = 0
        self.odometry_enabled = True
        self.published = {'camera': [], 'odom': []}

    def set_size(self, size):
        self.size = size
        self._pictures = [make_image(size[0], size[1], seed) for seed in range(4)]
        self._jpegs = [cv2.imencode('.jpg', p[..., ::-1])[1].tobytes() for p in self._pictures]

    def _header(self, msg, stamp_ns, frame_id):
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), NS)
        msg.header.frame_id = frame_id

    def camera_message(self, index: int, stamp_ns: int, frame: int):
        camera_id = CAMERAS[index][0]
        if self.compressed:
            msg = CompressedImage(format='jpeg')
            data = self._jpegs[(frame + index) % 4]
            msg.data = b'\xff\xd8 not a jpeg' * 50 if camera_id in self.corrupt else data
        else:
            rgb = self._pictures[(frame + index) % 4]
            msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=self.encoding,
                        step=rgb.shape[1] * 3, data=rgb.tobytes())
        self._header(msg, 0 if camera_id in self.unstamped else stamp_ns, camera_id)
        return msg

    def publish_cameras(self, stamp_ns: int, frame: int) -> None:
        for index, (camera_id, _) in enumerate(CAMERAS):
            if camera_id not in self.drop:
                self.cameras[camera_id].publish(self.camera_message(index, stamp_ns, frame))
        self.published['camera'].append(int(stamp_ns))

    def odometry_message(self, stamp_ns: int) -> Odometry:
        x, y, yaw = arc_pose(stamp_ns / NS, self.speed, self.curvature)
        msg = Odometry(child_frame_id='base_link')
        self._header(msg, stamp_ns, 'odom')
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        p.x, p.y = (float('nan'), float('nan')) if self.nan_pose else (x, y)
        q.z, q.w = math.sin(yaw / 2), math.cos(yaw / 2)
        msg.twist.twist.linear.x = self.speed
        msg.twist.twist.angular.z = self.speed * self.curvature
        return msg

    def publish_odometry(self, stamp_ns: int) -> None:
        if self.odometry_enabled:
            self.odom.publish(self.odometry_message(stamp_ns))
            self.published['odom'].append(int(stamp_ns))

    def publish_clock(self, stamp_ns: int) -> None:
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(stamp_ns), NS)
        self.clock.publish(msg)
