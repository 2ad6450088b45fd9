"""Observations for the execution tests (backends, worker): straight driving, tiny frames."""
import numpy as np

from ar1_ros.runtime.cameras import DEFAULT_CAMERAS
from ar1_ros.runtime.images import Frame
from ar1_ros.runtime.types import NS_PER_S, EgoHistory, Observation, Pose

DT_NS = NS_PER_S // 10


def straight_history(t0_ns, speed):
    """16 poses at 0.1 s along +x at constant `speed`, ending at the origin at t0."""
    xyz = np.zeros((16, 3))
    xyz[:, 0] = (np.arange(16) - 15) * speed * 0.1
    rot = np.broadcast_to(np.eye(3), (16, 3, 3)).copy()
    stamps = t0_ns - (15 - np.arange(16, dtype=np.int64)) * DT_NS
    pose = Pose(np.array([5.0, -2.0, 0.0]), np.eye(3))
    return EgoHistory(xyz, rot, stamps, float(speed), pose, 'odom')


def random_frames(t0_ns, cameras=4, frames=4, size=(64, 96), seed=0):
    """Per camera, `frames` random RGB frames (oldest first) 0.1 s apart ending at t0."""
    rng = np.random.default_rng(seed)
    return tuple(
        tuple(Frame.from_array(t0_ns - (frames - 1 - k) * DT_NS,
                               rng.integers(0, 256, size + (3,), dtype=np.uint8))
              for k in range(frames))
        for _ in range(cameras))


def make_observation(t0_ns=10 * NS_PER_S, speed=8.0, frames=None, cameras=4, seed=0):
    """An Observation of the default cameras (first `cameras`) driving straight at `speed`."""
    if frames is None:
        frames = random_frames(t0_ns, cameras, seed=seed)
    return Observation(t0_ns, DEFAULT_CAMERAS[:len(frames)], frames,
                       straight_history(t0_ns, speed))
