"""The messages of a converted clip, built with the bag writer's (rosbags) types.

Covariances are all zero: the dataset gives none, and the node does not read them.
"""
from typing import Dict, Tuple

import numpy as np

from ar1_ros.data.bags import BagWriter
from ar1_ros.runtime.types import NS_PER_S

TF_STATIC = '/tf_static'
EGO_TOPIC = '/localization/kinematic_state'


class ClipWriter:
    """Writes one clip's messages; camera_ids maps PAI camera names to our camera ids."""

    def __init__(self, writer: BagWriter, epoch_s: float, camera_ids: Dict[str, str]):
        self._writer, self._types = writer, writer.typestore.types
        self._epoch_ns = int(round(epoch_s * NS_PER_S))
        self._ids = camera_ids
        writer.add_topic(EGO_TOPIC, 'nav_msgs/msg/Odometry')
        writer.add_topic(TF_STATIC, 'tf2_msgs/msg/TFMessage')
        for camera_id in camera_ids.values():
            writer.add_topic(f'/sensing/camera/{camera_id}/image_raw/compressed',
                             'sensor_msgs/msg/CompressedImage')
            writer.add_topic(f'/sensing/camera/{camera_id}/camera_info',
                             'sensor_msgs/msg/CameraInfo')

    def stamp_ns(self, t_us: int) -> int:
        """Return the ROS time [ns] of a clip time [µs] (epoch + clip time)."""
        return self._epoch_ns + int(t_us) * 1000

    def _header(self, t_us: int, frame_id: str):
        sec, nanosec = divmod(self.stamp_ns(t_us), NS_PER_S)
        return self._types['std_msgs/msg/Header'](
            stamp=self._types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec),
            frame_id=frame_id)

    def _vector(self, v, kind='geometry_msgs/msg/Vector3'):
        return self._types[kind](x=float(v[0]), y=float(v[1]), z=float(v[2]))

    def _quaternion(self, q):
        return self._types['geometry_msgs/msg/Quaternion'](
            x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))

    def write_tf_static(self, t_us: int, poses: Dict[str, Tuple[np.ndarray, np.ndarray]]):
        """Write base_link -> camera_<id> for every camera (pose: translation, quaternion)."""
        t = self._types
        transforms = [t['geometry_msgs/msg/TransformStamped'](
            header=self._header(t_us, 'base_link'), child_frame_id=f'camera_{self._ids[name]}',
            transform=t['geometry_msgs/msg/Transform'](translation=self._vector(xyz),
                                                       rotation=self._quaternion(quat)))
            for name, (xyz, quat) in poses.items()]
        self._writer.write(TF_STATIC, self.stamp_ns(t_us),
                           t['tf2_msgs/msg/TFMessage'](transforms=transforms))

    def write_odometry(self, odometry, i: int) -> None:
        """Write sample i of `odometry` (geometry.OdometryArrays) as Odometry."""
        t, o = self._types, odometry
        zero = np.zeros(36)
        pose = t['geometry_msgs/msg/Pose'](
            position=self._vector(o.positions[i], 'geometry_msgs/msg/Point'),
            orientation=self._quaternion(o.quats[i]))
        twist = t['geometry_msgs/msg/Twist'](linear=self._vector(o.linear[i]),
                                             angular=self._vector(o.angular[i]))
        t_us = int(o.stamps_us[i])
        msg = t['nav_msgs/msg/Odometry'](
            header=self._header(t_us, 'odom'), child_frame_id='base_link',
            pose=t['geometry_msgs/msg/PoseWithCovariance'](pose=pose, covariance=zero),
            twist=t['geometry_msgs/msg/TwistWithCovariance'](twist=twist, covariance=zero))
        self._writer.write(EGO_TOPIC, self.stamp_ns(t_us), msg)

    def write_camera(self, t_us: int, name: str, jpeg: bytes, calibration) -> None:
        """Write one JPEG frame and its CameraInfo (same stamp)."""
        t, camera_id = self._types, self._ids[name]
        header = self._header(t_us, f'camera_{camera_id}')
        stamp = self.stamp_ns(t_us)
        self._writer.write(
            f'/sensing/camera/{camera_id}/image_raw/compressed', stamp,
            t['sensor_msgs/msg/CompressedImage'](header=header, format='jpeg',
                                                 data=np.frombuffer(jpeg, dtype=np.uint8)))
        c = calibration
        roi = t['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0,
                                                    do_rectify=False)
        info = t['sensor_msgs/msg/CameraInfo'](
            header=header, height=c.height, width=c.width, distortion_model=c.distortion_model,
            d=np.array(c.d), k=np.array(c.k), r=np.eye(3).ravel(), p=np.array(c.p),
            binning_x=0, binning_y=0, roi=roi)
        self._writer.write(f'/sensing/camera/{camera_id}/camera_info', stamp, info)
