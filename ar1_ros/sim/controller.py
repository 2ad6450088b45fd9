"""A path tracker that turns a planned trajectory into the world's per-step Control.

A plan is what AR1 (or a baseline) outputs: T positions at t0 + (k + 1) * dt in the ego frame
at t0, plus the world pose of the ego at t0. The tracker re-expresses it in the world once,
then every world step:

- steers by pure pursuit: the point one lookahead distance L = max(min_lookahead_m,
  lookahead_time_s * v) further along the path than the ego's projection on it; with alpha
  the angle to that point from the ego heading and d its distance, curvature = 2 sin(alpha)/d
  (exact on a circle, so a constant-curvature plan is tracked at its own curvature);
- sets the speed from the plan's timing: the speeds between consecutive points (distance /
  dt) give the target speed and its derivative the acceleration feed-forward, both read at
  the time since t0 plus a short preview; a P term on the speed error and a small term on the
  station error (where the plan says the ego should be by now, along the path) close the loop,
  the latter so a braking plan stops where the plan stops, not merely at its speed profile.

Beyond the plan's end (6.4 s for AR1) the path continues straight along its last heading at
its last speed. Commands are clipped to what the world accepts and never ask for reversing.
"""
import dataclasses
import math
from typing import Optional, Tuple

import numpy as np

from ar1_ros.sim.scene import Box, Control

# Segments shorter than this carry no heading (a stopped plan repeats its last point).
_MIN_SEGMENT_M = 1e-3


@dataclasses.dataclass(frozen=True)
class Plan:
    """A trajectory to follow.

    t0_s: world time [s] of the plan's origin; x, y [m], yaw [rad]: the ego's world pose at t0;
    xyz (T, 3) [m]: point k at t0 + (k + 1) * dt_s in the ego frame at t0 (x forward, y left).
    """

    t0_s: float
    x: float
    y: float
    yaw: float
    xyz: np.ndarray
    dt_s: float = 0.1

    def world_xy(self) -> np.ndarray:
        """Return (T + 1, 2) world positions: the t0 pose, then every planned point."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        local = np.asarray(self.xyz, dtype=np.float64)[:, :2]
        world = local @ np.array([[c, s], [-s, c]]) + [self.x, self.y]
        return np.vstack([[self.x, self.y], world])


@dataclasses.dataclass(frozen=True)
class TrackerSettings:
    """Gains and limits of PathTracker (units: m, s, m/s², 1/m).

    speed_gain [1/s]: accel per m/s of speed error; station_gain [1/s²]: accel per m behind
    the plan, the error clipped to max_station_error_m; step_s: the world step, used so a
    braking command never drives the speed below zero within a step.
    """

    min_lookahead_m: float = 3.0
    lookahead_time_s: float = 0.6
    speed_preview_s: float = 0.05
    speed_gain: float = 1.0
    station_gain: float = 0.5
    max_station_error_m: float = 3.0
    min_accel: float = -8.0
    max_accel: float = 4.0
    max_curvature: float = 0.25
    step_s: float = 0.05


class _Profile:
    """A plan in world coordinates with its arc length and timing, ready to be queried."""

    def __init__(self, plan: Plan):
        self.t0_s = float(plan.t0_s)
        self.points = plan.world_xy()
        lengths = np.linalg.norm(np.diff(self.points, axis=0), axis=1)
        self.station = np.concatenate([[0.0], np.cumsum(lengths)])
        self.times = np.arange(len(self.points)) * plan.dt_s
        # Segment k is driven during [k dt, (k + 1) dt]: its mean speed belongs to its middle.
        self.mid_times = self.times[:-1] + plan.dt_s / 2
        self.speeds = lengths / plan.dt_s
        self.accels = (np.gradient(self.speeds, plan.dt_s) if len(self.speeds) > 1
                       else np.zeros_like(self.speeds))
        moving = np.flatnonzero(lengths > _MIN_SEGMENT_M)
        if moving.size:
            delta = self.points[moving[-1] + 1] - self.points[moving[-1]]
            self.end_heading = float(math.atan2(delta[1], delta[0]))
        else:
            self.end_heading = float(plan.yaw)

    def speed_at(self, t: float) -> Tuple[float, float]:
        """Return (speed [m/s], acceleration [m/s²]) the plan has t s after t0 (held after)."""
        if t >= self.times[-1]:
            return float(self.speeds[-1]), 0.0
        return (float(np.interp(t, self.mid_times, self.speeds)),
                float(np.interp(t, self.mid_times, self.accels)))

    def station_at(self, t: float) -> float:
        """Return how far along the path [m] the plan is t s after t0 (extrapolated after)."""
        end = self.times[-1]
        if t <= end:
            return float(np.interp(t, self.times, self.station))
        return float(self.station[-1] + self.speeds[-1] * (t - end))

    def project(self, xy: np.ndarray, first: int) -> Tuple[float, int]:
        """Return (station [m], segment index) of the path point nearest to xy.

        Only segments from `first - 1` on are searched, so the ego never jumps back to an
        earlier part of a path that passes near itself.
        """
        start = max(first - 1, 0)
        a, b = self.points[start:-1], self.points[start + 1:]
        ab = b - a
        length2 = np.maximum(np.einsum('ij,ij->i', ab, ab), _MIN_SEGMENT_M ** 2)
        u = np.clip(np.einsum('ij,ij->i', xy - a, ab) / length2, 0.0, 1.0)
        distance = np.linalg.norm(a + u[:, None] * ab - xy, axis=1)
        best = int(np.argmin(distance))
        segment = start + best
        station = float(self.station[segment] + u[best] * math.sqrt(length2[best]))
        if station >= self.station[-1]:
            # Past the end the path runs straight on (point_at): measure along it there too.
            beyond = float(np.dot(xy - self.points[-1], self._end_direction()))
            station = float(self.station[-1]) + max(beyond, 0.0)
        return station, segment

    def _end_direction(self) -> np.ndarray:
        return np.array([math.cos(self.end_heading), math.sin(self.end_heading)])

    def point_at(self, station: float) -> np.ndarray:
        """Return the world point (2,) at `station` [m]; past the end, straight on."""
        end = self.station[-1]
        if station >= end:
            return self.points[-1] + self._end_direction() * (station - end)
        return np.array([np.interp(station, self.station, self.points[:, 0]),
                         np.interp(station, self.station, self.points[:, 1])])


class PathTracker:
    """Follows the latest Plan: pure pursuit for curvature, speed profile + P for accel."""

    def __init__(self, settings: TrackerSettings = TrackerSettings()):
        self.settings = settings
        self._profile: Optional[_Profile] = None
        self._segment = 0

    @property
    def has_plan(self) -> bool:
        """Whether a plan was given (control() needs one)."""
        return self._profile is not None

    def set_plan(self, plan: Plan) -> None:
        """Replace the plan being tracked (from the next control() on)."""
        self._profile = _Profile(plan)
        self._segment = 0

    def control(self, time_s: float, ego: Box) -> Control:
        """Return the Control for the ego (world pose and speed) at world time time_s [s]."""
        if self._profile is None:
            raise RuntimeError('PathTracker.control() before any set_plan()')
        profile, cfg = self._profile, self.settings
        xy = np.array([ego.x, ego.y])
        station, self._segment = profile.project(xy, self._segment)
        curvature = self._steer(profile, xy, ego, station)
        elapsed = time_s - profile.t0_s
        target, feed_forward = profile.speed_at(elapsed + cfg.speed_preview_s)
        behind = np.clip(profile.station_at(elapsed) - station, -cfg.max_station_error_m,
                         cfg.max_station_error_m)
        accel = (feed_forward + cfg.speed_gain * (target - ego.speed)
                 + cfg.station_gain * behind)
        # AR1 never reverses: brake at most to a standstill within the coming step.
        floor = max(cfg.min_accel, -max(ego.speed, 0.0) / cfg.step_s)
        accel = float(np.clip(accel, floor, cfg.max_accel))
        return Control(accel, float(np.clip(curvature, -cfg.max_curvature, cfg.max_curvature)))

    def _steer(self, profile: _Profile, xy: np.ndarray, ego: Box, station: float) -> float:
        """Return the pure-pursuit curvature [1/m] towards the lookahead point."""
        cfg = self.settings
        lookahead = max(cfg.min_lookahead_m, cfg.lookahead_time_s * max(ego.speed, 0.0))
        delta = profile.point_at(station + lookahead) - xy
        distance = float(np.hypot(delta[0], delta[1]))
        if distance < _MIN_SEGMENT_M:
            return 0.0
        alpha = math.atan2(delta[1], delta[0]) - ego.yaw
        return 2.0 * math.sin(alpha) / distance
