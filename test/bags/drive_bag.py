"""Synthetic rosbag2 bags of an arc drive (the node tests' topics), written with `rosbags`.

The four AR1 cameras (JPEG CompressedImage or rgb8 Image) at camera_hz and Odometry at odom_hz,
all stamped from start_s, with log time = stamp + the given latencies, so ground truth is
closed-form (ros.synthetic.arc_pose). Used by the bag, replay, eval and round-trip tests and by
benchmarks/bench_bag.py.
"""
import dataclasses
import math
from pathlib import Path
import shutil
import struct
from typing import Optional, Tuple

import cv2
import numpy as np
from ros.synthetic import CAMERAS, NS, arc_pose, camera_overrides, make_image, topic_of

from ar1_ros.data.bags import BagWriter

EGO_TOPIC = '/test/odom'


@dataclasses.dataclass
class Drive:
    """What a drive bag contains (the defaults give a 6 s, 72x128, 10 Hz / 50 Hz bag)."""

    duration_s: float = 6.0
    start_s: float = 1000.0
    camera_hz: float = 10.0
    odom_hz: float = 50.0
    size: Tuple[int, int] = (72, 128)
    compressed: bool = True
    speed: float = 8.0
    curvature: float = 0.01
    camera_latency_s: float = 0.02
    odom_latency_s: float = 0.005
    storage: str = 'mcap'


def overrides(drive: Drive) -> dict:
    """Node parameter values for this bag's topics."""
    return camera_overrides(drive.compressed, EGO_TOPIC)


def _types(writer):
    t = writer.typestore.types
    return (t['builtin_interfaces/msg/Time'], t['std_msgs/msg/Header'], t)


def _header(writer, stamp_ns: int, frame_id: str):
    time_cls, header_cls, _ = _types(writer)
    sec, nanosec = divmod(int(stamp_ns), NS)
    return header_cls(stamp=time_cls(sec=sec, nanosec=nanosec), frame_id=frame_id)


def camera_message(writer, drive: Drive, index: int, stamp_ns: int, frame: int, pictures):
    """Return the rosbags message of camera `index` at `stamp_ns`."""
    types = _types(writer)[2]
    header = _header(writer, stamp_ns, CAMERAS[index][0])
    rgb = pictures[(frame + index) % len(pictures)]
    if drive.compressed:
        data = cv2.imencode('.jpg', rgb[..., ::-1])[1].ravel()
        return types['sensor_msgs/msg/CompressedImage'](header=header, format='jpeg', data=data)
    return types['sensor_msgs/msg/Image'](header=header, height=rgb.shape[0],
                                          width=rgb.shape[1], encoding='rgb8', is_bigendian=0,
                                          step=rgb.shape[1] * 3, data=rgb.ravel())


def odometry_message(writer, drive: Drive, stamp_ns: int):
    """Return the rosbags Odometry of the arc at `stamp_ns` (twist in the body frame)."""
    t = _types(writer)[2]
    x, y, yaw = arc_pose(stamp_ns / NS, drive.speed, drive.curvature)
    vec, zero = t['geometry_msgs/msg/Vector3'], [0.0] * 36
    pose = t['geometry_msgs/msg/Pose'](
        position=t['geometry_msgs/msg/Point'](x=x, y=y, z=0.0),
        orientation=t['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=math.sin(yaw / 2),
                                                      w=math.cos(yaw / 2)))
    twist = t['geometry_msgs/msg/Twist'](linear=vec(x=drive.speed, y=0.0, z=0.0),
                                         angular=vec(x=0.0, y=0.0,
                                                     z=drive.speed * drive.curvature))
    return t['nav_msgs/msg/Odometry'](
        header=_header(writer, stamp_ns, 'odom'), child_frame_id='base_link',
        pose=t['geometry_msgs/msg/PoseWithCovariance'](pose=pose, covariance=np.array(zero)),
        twist=t['geometry_msgs/msg/TwistWithCovariance'](twist=twist,
                                                         covariance=np.array(zero)))


def _events(drive: Drive):
    """Yield (log_ns, kind, index, stamp_ns) of every message, unsorted."""
    start = int(drive.start_s * NS)
    frames = int(drive.duration_s * drive.camera_hz)
    for frame in range(frames):
        stamp = start + int(round(frame * NS / drive.camera_hz))
        for index in range(len(CAMERAS)):
            yield stamp + int(drive.camera_latency_s * NS) + index, 'camera', index, stamp, frame
    for step in range(int(drive.duration_s * drive.odom_hz)):
        stamp = start + int(round(step * NS / drive.odom_hz))
        yield stamp + int(drive.odom_latency_s * NS), 'odom', 0, stamp, step


def write_drive_bag(path, drive: Optional[Drive] = None, pictures=None) -> Path:
    """Write the bag of `drive` (default Drive()) at `path` (a new folder); return the path.

    pictures: (H, W, 3) uint8 images cycled through as camera frames (default: 4 test images).
    """
    drive = drive or Drive()
    if pictures is None:
        pictures = [make_image(drive.size[0], drive.size[1], seed) for seed in range(4)]
    with BagWriter(path, drive.storage) as writer:
        msgtype = ('sensor_msgs/msg/CompressedImage' if drive.compressed
                   else 'sensor_msgs/msg/Image')
        for camera_id, _ in CAMERAS:
            writer.add_topic(topic_of(camera_id, drive.compressed), msgtype)
        writer.add_topic(EGO_TOPIC, 'nav_msgs/msg/Odometry')
        for log_ns, kind, index, stamp, frame in sorted(_events(drive)):
            if kind == 'camera':
                writer.write(topic_of(CAMERAS[index][0], drive.compressed), log_ns,
                             camera_message(writer, drive, index, stamp, frame, pictures))
            else:
                writer.write(EGO_TOPIC, log_ns, odometry_message(writer, drive, stamp))
    return Path(path)


def corrupt_last_chunk(bag: Path, name: str = 'broken') -> Path:
    """Return a copy of an MCAP bag whose last chunk has a garbage record header.

    rosbags reads a chunk at a time, so every message before that chunk still reads and the
    read fails on reaching it: a bag damaged part-way, with a valid index and footer.
    """
    broken = Path(bag).parent / f'{Path(bag).name}_{name}'
    shutil.copytree(bag, broken)
    data_file = next(broken.glob('*.mcap'))
    data = bytearray(data_file.read_bytes())
    offset, chunks = 8, []  # after the magic: records of opcode (1 B) + length (8 B) + body
    while data[offset] != 0x0F:  # up to the footer
        length = struct.unpack_from('<Q', data, offset + 1)[0]
        if data[offset] == 0x06:
            chunks.append(offset)
        offset += 9 + length
    # Chunk body: start, end, uncompressed size (3 x 8 B), crc (4 B), compression string
    # (4 B length + text), records length (8 B), then the records.
    body = chunks[-1] + 9
    compression = struct.unpack_from('<I', data, body + 28)[0]
    first_record = body + 32 + compression + 8
    data[first_record:first_record + 9] = b'\xff' * 9
    data_file.write_bytes(bytes(data))
    return broken
