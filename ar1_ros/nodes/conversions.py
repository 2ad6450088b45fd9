"""Runtime values to messages; no logic beyond the conversion itself.

Messages to runtime values (stamps, odometry, image payloads) live in ar1_ros.runtime.messages,
by field name, so the bag tools convert recorded messages with the very same code.
"""
from typing import Dict, List, Sequence

from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Pose as PoseMsg
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Path
import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from ar1_ros.msg import Reasoning, StageLatency, Trajectory, TrajectoryPoint
from ar1_ros.runtime.health import Status
from ar1_ros.runtime.rotations import matrix_to_quat
from ar1_ros.runtime.types import NS_PER_S


def ns_to_stamp(ns: int) -> Time:
    """Return integer nanoseconds as builtin_interfaces/Time."""
    return Time(sec=int(ns // NS_PER_S), nanosec=int(ns % NS_PER_S))


def seconds_to_duration(seconds: float) -> Duration:
    """Return a non-negative duration in seconds as builtin_interfaces/Duration."""
    ns = int(round(seconds * NS_PER_S))
    return Duration(sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


def rgb_to_image(rgb: np.ndarray, header: Header) -> Image:
    """Return an rgb8 sensor_msgs/Image of an (H, W, 3) uint8 array."""
    height, width = rgb.shape[:2]
    return Image(header=header, height=height, width=width, encoding='rgb8', is_bigendian=0,
                 step=width * 3, data=np.ascontiguousarray(rgb).tobytes())


def pose_msg(xyz: np.ndarray, rot: np.ndarray) -> PoseMsg:
    """Return geometry_msgs/Pose of a position (3,) and rotation (3, 3)."""
    q = matrix_to_quat(rot)
    pose = PoseMsg()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in xyz)
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = \
        (float(v) for v in q)
    return pose


def trajectory_msg(header: Header, xyz: np.ndarray, states: Dict[str, np.ndarray],
                   sample: int, num_samples: int, model_id: str, dt: float) -> Trajectory:
    """Return ar1_ros/Trajectory of points xyz (N, 3) with per-point states (N,) each.

    states: yaw, velocity, acceleration, curvature, time_from_start (runtime.presentation).
    """
    msg = Trajectory(header=header, sample_index=sample, num_samples=num_samples,
                     model_id=model_id, time_step=seconds_to_duration(dt),
                     horizon=seconds_to_duration(dt * len(xyz)))
    msg.points = [TrajectoryPoint(
        time_from_start=seconds_to_duration(float(states['time_from_start'][i])),
        x=float(xyz[i, 0]), y=float(xyz[i, 1]), z=float(xyz[i, 2]),
        yaw=float(states['yaw'][i]), velocity=float(states['velocity'][i]),
        acceleration=float(states['acceleration'][i]), curvature=float(states['curvature'][i]))
        for i in range(len(xyz))]
    return msg


def path_msg(header: Header, xyz: np.ndarray, rot: np.ndarray) -> Path:
    """Return nav_msgs/Path through xyz (N, 3) with orientations rot (N, 3, 3)."""
    msg = Path(header=header)
    msg.poses = [PoseStamped(header=header, pose=pose_msg(xyz[i], rot[i]))
                 for i in range(len(xyz))]
    return msg


def reasoning_msg(header: Header, text: str, decision: str, token_count: int,
                  timings: Dict[str, float], sample: int, num_samples: int,
                  model_id: str) -> Reasoning:
    """Return ar1_ros/Reasoning with the cycle's stage latencies."""
    latency = [StageLatency(stage=k, seconds=float(v)) for k, v in timings.items()]
    return Reasoning(header=header, text=text, decision=decision, token_count=token_count,
                     latency=latency, sample_index=sample, num_samples=num_samples,
                     model_id=model_id)


def diagnostic_array(statuses: Sequence[Status], stamp: Time, prefix: str,
                     hardware_id: str) -> DiagnosticArray:
    """Return a DiagnosticArray with one DiagnosticStatus per runtime Status."""
    msg = DiagnosticArray(header=Header(stamp=stamp))
    msg.status = [_status_msg(s, prefix, hardware_id) for s in statuses]
    return msg


def _status_msg(status: Status, prefix: str, hardware_id: str) -> DiagnosticStatus:
    values: List[KeyValue] = [KeyValue(key=k, value=v) for k, v in status.values.items()]
    return DiagnosticStatus(level=bytes([status.level]), name=f'{prefix}: {status.name}',
                            message=status.message, hardware_id=hardware_id, values=values)
