"""PathTracker against a unicycle TEST DOUBLE world: lane keeping, curvature, stopping."""
import dataclasses
import math

import numpy as np

from ar1_ros.runtime.kinematics import integrate_unicycle
from ar1_ros.sim.controller import PathTracker, Plan
from ar1_ros.sim.scene import Box, Control

DT = 0.05


@dataclasses.dataclass
class UnicycleWorld:
    """TEST DOUBLE of sim.world: one car integrating Control exactly, no traffic, no road.

    Speed never goes below zero (the real world's ego does not reverse either).
    """

    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    speed: float = 10.0
    time_s: float = 0.0

    def ego(self) -> Box:
        return Box(0, self.x, self.y, self.yaw, speed=self.speed, kind='ego')

    def step(self, control: Control) -> None:
        new_speed = max(self.speed + control.accel_mps2 * DT, 0.0)
        mean_speed = (self.speed + new_speed) / 2
        mid_yaw = self.yaw + control.curvature_1pm * mean_speed * DT / 2
        self.x += mean_speed * math.cos(mid_yaw) * DT
        self.y += mean_speed * math.sin(mid_yaw) * DT
        self.yaw += control.curvature_1pm * mean_speed * DT
        self.speed, self.time_s = new_speed, self.time_s + DT


def plan_from_actions(world: UnicycleWorld, accel: np.ndarray, curvature: np.ndarray) -> Plan:
    """Plan of 64 unicycle steps (0.1 s) from the world's current pose and speed."""
    actions = np.stack([accel, curvature], axis=-1)[None]
    xyz, _, _ = integrate_unicycle(actions, world.speed, 0.1)
    return Plan(world.time_s, world.x, world.y, world.yaw, xyz[0])


def drive(world: UnicycleWorld, tracker: PathTracker, seconds: float):
    """Run the tracker for `seconds`; return the (N, 5) x, y, yaw, speed, commanded curvature."""
    rows = []
    for _ in range(int(round(seconds / DT))):
        control = tracker.control(world.time_s, world.ego())
        world.step(control)
        rows.append((world.x, world.y, world.yaw, world.speed, control.curvature_1pm))
    return np.array(rows)


def test_straight_plan_keeps_the_lane():
    # The lane is y = 0; the car starts 0.15 m off it, heading slightly away, and replans the
    # lane centre every 0.5 s as a policy would.
    world, tracker = UnicycleWorld(y=0.15, yaw=0.01, speed=12.0), PathTracker()
    rows = []
    for _ in range(20):
        ahead = world.speed * 0.1 * np.arange(1, 65)
        c, s = math.cos(world.yaw), math.sin(world.yaw)
        dx, dy = ahead, -world.y * np.ones(64)
        xyz = np.stack([c * dx + s * dy, -s * dx + c * dy, np.zeros(64)], axis=-1)
        tracker.set_plan(Plan(world.time_s, world.x, world.y, world.yaw, xyz))
        rows.append(drive(world, tracker, 0.5))
    lateral = np.concatenate(rows)[:, 1]
    assert np.max(np.abs(lateral)) < 0.2
    assert abs(lateral[-1]) < 0.05
    assert abs(world.speed - 12.0) < 0.25


def test_constant_curvature_plan_converges_to_its_curvature():
    world, tracker = UnicycleWorld(speed=8.0), PathTracker()
    kappa = 0.04
    tracker.set_plan(plan_from_actions(world, np.zeros(64), np.full(64, kappa)))
    rows = drive(world, tracker, 4.0)
    commanded = rows[-20:, 4]
    assert np.all(np.abs(commanded - kappa) < 0.05 * kappa), commanded
    # And the car stays on the planned circle (centre (0, 1/kappa)).
    radius = np.hypot(rows[:, 0], rows[:, 1] - 1 / kappa)
    assert np.max(np.abs(radius - 1 / kappa)) < 0.2


def test_braking_plan_stops_where_the_plan_stops():
    world, tracker = UnicycleWorld(speed=10.0), PathTracker()
    accel = np.where(np.arange(64) < 40, -2.5, 0.0)  # 10 m/s to 0 in 4 s: 20 m
    plan = plan_from_actions(world, accel, np.zeros(64))
    stop_x = plan.xyz[-1, 0]
    tracker.set_plan(plan)
    rows = drive(world, tracker, 8.0)
    assert abs(stop_x - 20.0) < 0.5
    assert rows[-1, 3] < 0.05, 'the car must have stopped'
    assert abs(rows[-1, 0] - stop_x) < 1.5
    assert np.all(rows[:, 3] >= 0.0)


def test_plan_end_keeps_last_speed_and_heading():
    world, tracker = UnicycleWorld(speed=5.0), PathTracker()
    tracker.set_plan(plan_from_actions(world, np.zeros(64), np.zeros(64)))
    rows = drive(world, tracker, 9.0)  # 2.6 s beyond the 6.4 s plan
    assert abs(rows[-1, 3] - 5.0) < 0.05
    assert abs(rows[-1, 1]) < 0.01
    assert abs(rows[-1, 2]) < 1e-3
