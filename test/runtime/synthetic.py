"""Synthetic inputs for the selection tests: a car driving a circle, and tiny camera frames."""
import math

import numpy as np

from ar1_ros.runtime.images import Frame
from ar1_ros.runtime.rotations import rot_z
from ar1_ros.runtime.types import EgoState

MS = 1_000_000
S = 1_000_000_000


class Circle:
    """Constant speed `speed` on a circle of `radius` (left turn), heading `yaw0` at t = 0."""

    def __init__(self, speed=10.0, radius=40.0, yaw0=0.7, center=(100.0, -50.0, 3.0)):
        self.speed, self.radius, self.yaw0 = speed, radius, yaw0
        self.rate = speed / radius
        self.start = np.array(center, dtype=np.float64)

    def yaw(self, t_ns):
        return self.yaw0 + self.rate * t_ns / S

    def position(self, t_ns):
        angle = self.rate * t_ns / S
        local = np.array([self.radius * math.sin(angle),
                          self.radius * (1 - math.cos(angle)), 0.0])
        return self.start + rot_z(self.yaw0) @ local

    def state(self, t_ns, frame_id='odom', speed=None):
        v = self.speed if speed is None else speed
        return EgoState(stamp_ns=int(t_ns), position=self.position(t_ns),
                        rotation=rot_z(self.yaw(t_ns)), velocity=np.array([v, 0.0, 0.0]),
                        frame_id=frame_id)

    def relative(self, dt_s):
        """Analytic position (3,) and yaw of the car dt_s from t0, in the ego frame at t0."""
        angle = self.rate * dt_s
        return (np.array([self.radius * math.sin(angle),
                          self.radius * (1 - math.cos(angle)), 0.0]), angle)


def odometry_stamps(start_ns, end_ns, period_ns=20 * MS, jitter_ns=0, seed=0):
    rng = np.random.default_rng(seed)
    stamps = np.arange(start_ns, end_ns + 1, period_ns, dtype=np.int64)
    if jitter_ns:
        stamps = stamps + rng.integers(-jitter_ns, jitter_ns + 1, size=stamps.shape)
    return [int(s) for s in stamps]


def frame(stamp_ns, size=(4, 6), value=0):
    return Frame.from_array(stamp_ns, np.full(size + (3,), value, dtype=np.uint8))
