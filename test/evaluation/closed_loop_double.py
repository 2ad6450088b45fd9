"""LaneWorld: a TEST DOUBLE of sim.world.SimWorld for fast closed-loop tests.

One straight two-lane road, the ego at 10 m/s and a car stopped in its lane 50 m ahead. Its
expert brakes to a stop behind it (and keeps the lane); anything that keeps going collides.
Nothing of highway-env: exact unicycle kinematics, box-overlap collisions, a fixed label.
"""
import math

import numpy as np

from ar1_ros.sim.scene import (
    Box,
    Control,
    Marking,
    PrivilegedLabel,
    RoadGeometry,
    Scene,
    StepStatus,
)

ROAD = RoadGeometry(
    surfaces=(np.array([[-50.0, -4.0], [400.0, -4.0], [400.0, 4.0], [-50.0, 4.0]]),),
    markings=(Marking(np.array([[-50.0, 0.0], [400.0, 0.0]]), 'dashed'),))


class LaneWorld:
    """TEST DOUBLE world (sim.scene.World protocol); see the module docstring."""

    name = 'lane_double'
    dt_s = 0.05
    geometry = ROAD

    def __init__(self, seed: int = 0, duration_s: float = 10.0, obstacle_x: float = 50.0):
        self.seed, self.duration_s, self.time_s = seed, duration_s, 0.0
        self._ego = Box(0, 0.0, -2.0, 0.0, speed=10.0, kind='ego', rgb=(200, 200, 200))
        self._obstacle = Box(1, obstacle_x, -2.0, 0.0, speed=0.0)

    def scene(self) -> Scene:
        return Scene(self.time_s, self._ego, (self._obstacle,), ROAD)

    def expert_control(self) -> Control:
        ego = self._ego
        gap = self._obstacle.x - ego.x - 5.0 - 6.0  # bumper to bumper, minus a 6 m margin
        wanted = math.sqrt(2 * 3.0 * max(gap, 0.0))
        accel = float(np.clip(2.0 * (wanted - ego.speed), -6.0, 2.0))
        return Control(accel, float(-0.1 * (ego.y + 2.0) - 0.5 * ego.yaw))

    def step(self, control: Control) -> StepStatus:
        ego, dt = self._ego, self.dt_s
        speed = max(ego.speed + control.accel_mps2 * dt, 0.0)
        mean = (ego.speed + speed) / 2
        yaw = ego.yaw + control.curvature_1pm * mean * dt
        mid = (ego.yaw + yaw) / 2
        self._ego = Box(0, ego.x + mean * math.cos(mid) * dt, ego.y + mean * math.sin(mid) * dt,
                        yaw, speed=speed, accel=control.accel_mps2, kind='ego',
                        rgb=ego.rgb)
        self.time_s += dt
        dx, dy = self._obstacle.x - self._ego.x, self._obstacle.y - self._ego.y
        return StepStatus(collided=abs(dx) < 5.0 and abs(dy) < 2.0,
                          off_road=abs(self._ego.y) > 4.0)

    def label(self) -> PrivilegedLabel:
        return PrivilegedLabel('stop', 'Stop behind the stopped car ahead in the lane.')

    def progress_m(self) -> float:
        return float(self._ego.x)

    def route(self) -> np.ndarray:
        return np.array([[0.0, -2.0], [400.0, -2.0]])

    @property
    def done(self) -> bool:
        return self.time_s >= self.duration_s - 1e-9
