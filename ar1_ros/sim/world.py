"""A running demo scenario on highway-env's road model, seen through sim.scene's plain types.

highway-env supplies the road network, the IDM/MOBIL traffic, the kinematic bicycle of the ego
and the collision test; this module converts at the boundary. highway-env's y axis points down
the screen, so a world point (x, y) is (x, -y) there and a world yaw is minus its heading.

`Path` (a polyline with arc length) lives here because the world, the scenarios and the expert
all measure along lanes with it.
"""
from typing import Dict, Optional, Sequence, Tuple

from highway_env.road.lane import AbstractLane, LineType
from highway_env.road.road import Road
from highway_env.vehicle.kinematics import Vehicle
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

DT_S = 0.05  # world step [s] (20 Hz)
ACCEL_LIMITS = (-8.0, 4.0)  # what the ego's brakes and engine can do [m/s²]
MAX_STEERING_RAD = np.pi / 3  # highway-env's steering limit for its controlled vehicles
OFF_ROAD_MARGIN_M = 0.5  # the centre may be this far outside a lane edge and still count
_STYLES = {LineType.CONTINUOUS: 'solid', LineType.CONTINUOUS_LINE: 'solid',
           LineType.STRIPED: 'dashed'}
_PALETTE = ((200, 60, 60), (60, 160, 90), (220, 170, 40), (120, 120, 130), (150, 80, 170),
            (40, 150, 180), (230, 230, 230), (90, 60, 40))
EGO_RGB = (30, 90, 220)


def to_world(xy_hw) -> np.ndarray:
    """Return highway-env points (..., 2) as world points: y flipped."""
    out = np.array(xy_hw, dtype=np.float64)
    out[..., 1] *= -1.0
    return out


to_hw = to_world  # the flip is its own inverse


class Path:
    """A polyline with arc length, in the world frame: a lane centreline or a route.

    xy: (N, 2) points [m], N >= 2. Arc length s [m] runs from xy[0]; positions beyond either
    end extrapolate the end segments, so vehicles just behind the start still get an s < 0.
    """

    def __init__(self, xy):
        xy = np.asarray(xy, dtype=np.float64)
        steps = np.diff(xy, axis=0)
        keep = np.concatenate([[True], np.hypot(steps[:, 0], steps[:, 1]) > 1e-6])
        self.xy = xy[keep]
        steps = np.diff(self.xy, axis=0)
        self._lengths = np.hypot(steps[:, 0], steps[:, 1])
        self._dirs = steps / self._lengths[:, None]
        self.s = np.concatenate([[0.0], np.cumsum(self._lengths)])
        self._mid_s = (self.s[:-1] + self.s[1:]) / 2
        self._headings = np.unwrap(np.arctan2(steps[:, 1], steps[:, 0]))
        # Curvature [1/m] at the segment middles, lightly smoothed against sampling noise.
        raw = (np.gradient(self._headings, self._mid_s) if len(self._mid_s) > 1
               else np.zeros(1))
        self._curvature = np.convolve(np.pad(raw, 1, mode='edge'), np.ones(3) / 3, 'valid')

    @property
    def length(self) -> float:
        """Total arc length [m]."""
        return float(self.s[-1])

    def project(self, point) -> Tuple[float, float]:
        """Return (s [m], lateral [m], + left of the path) of a world point (2,)."""
        rel = np.asarray(point, dtype=np.float64)[:2] - self.xy[:-1]
        t = np.einsum('ij,ij->i', rel, self._dirs)
        along = np.clip(t, 0.0, self._lengths)
        # The end segments extend beyond the path's ends.
        along[0], along[-1] = min(t[0], along[0]), max(t[-1], along[-1])
        foot = rel - along[:, None] * self._dirs
        i = int(np.argmin(np.einsum('ij,ij->i', foot, foot)))
        lateral = self._dirs[i, 0] * rel[i, 1] - self._dirs[i, 1] * rel[i, 0]
        return float(self.s[i] + along[i]), float(lateral)

    def point(self, s):
        """Return the point at arc length(s) s: scalar -> (2,), (K,) -> (K, 2) [m]."""
        s = np.asarray(s, dtype=np.float64)
        xy = np.stack([np.interp(s, self.s, self.xy[:, 0]), np.interp(s, self.s, self.xy[:, 1])],
                      axis=-1)
        before, after = np.minimum(s, 0.0), np.maximum(s - self.length, 0.0)
        return xy + before[..., None] * self._dirs[0] + after[..., None] * self._dirs[-1]

    def heading(self, s):
        """Return the heading [rad, unwrapped along the path] at arc length(s) s."""
        return np.interp(s, self._mid_s, self._headings)

    def curvature(self, s):
        """Return the curvature [1/m, + left] at arc length(s) s (0 on the extrapolation)."""
        inside = (np.asarray(s) >= 0) & (np.asarray(s) <= self.length)
        return np.where(inside, np.interp(s, self._mid_s, self._curvature), 0.0)

    def speed_limits(self, v_max: float, lateral_accel: float, brake: float) -> np.ndarray:
        """Return (N,) speed limits [m/s] at self.s.

        At most v_max, lateral_accel [m/s²] in bends, reached braking at `brake` [m/s²].
        """
        limit = np.minimum(v_max, np.sqrt(lateral_accel / np.maximum(
            np.abs(self.curvature(self.s)), 1e-4)))
        for i in range(len(limit) - 2, -1, -1):  # look ahead: how fast may we be here?
            limit[i] = min(limit[i], np.sqrt(limit[i + 1] ** 2 + 2 * brake * (self.s[i + 1] -
                                                                               self.s[i])))
        return limit

    def conflict(self, other: 'Path', within: float, cap: float) -> Optional[Tuple[float, ...]]:
        """Return (s0, s1, o0, o1) where this path and `other` meet, None if they do not.

        [s0, s1] on this path and [o0, o1] on `other` [m] are closer than `within` [m] to the
        other path, each stretch at most `cap` m long.
        """
        d = np.linalg.norm(self.xy[:, None] - other.xy[None], axis=-1)
        ours, theirs = np.flatnonzero(d.min(1) < within), np.flatnonzero(d.min(0) < within)
        if not len(ours):
            return None
        s0, o0 = float(self.s[ours[0]]), float(other.s[theirs[0]])
        return s0, min(float(self.s[ours[-1]]), s0 + cap), o0, min(float(other.s[theirs[-1]]),
                                                                    o0 + cap)

    def bend_near(self, s: float, behind: float = 60.0,
                  ahead: float = 300.0) -> Optional[Tuple[str, float, float]]:
        """Return the bend within [s - behind, s + ahead] [m], None if the path is straight.

        As (side 'left'/'right', distance to its start [m] (0 inside it, < 0 past its end),
        tightest radius [m]).
        """
        around = s + np.arange(-behind, ahead, 2.0)
        kappa = self.curvature(around)
        bent = np.flatnonzero(np.abs(kappa) > 1 / 500)
        if not len(bent):
            return None
        start, end = around[bent[0]] - s, around[bent[-1]] - s
        peak = bent[np.argmax(np.abs(kappa[bent]))]
        return ('left' if kappa[peak] > 0 else 'right',
                float(start if start > 0 else 0.0 if end >= 0 else end),
                float(1 / abs(kappa[peak])))


def lane_points(lane: AbstractLane, lateral: float = 0.0, step: float = 1.0) -> np.ndarray:
    """Return (N, 2) world points along a highway-env lane every ~step m, `lateral` m left."""
    n = max(2, int(np.ceil(lane.length / step)) + 1)
    # highway-env's lateral axis points right of the lane direction.
    return to_world([lane.position(s, -lateral) for s in np.linspace(0, lane.length, n)])


def route_path(road: Road, lane_indexes: Sequence[tuple], step: float = 1.0) -> Path:
    """Return the Path through consecutive highway-env lanes (from, to, id)."""
    pieces = [lane_points(road.network.get_lane(index), step=step) for index in lane_indexes]
    return Path(np.concatenate(pieces))


def lane_tracks(path: Path, scene: Scene, half_width: float, see_m: float,
                crossing: bool = False) -> np.ndarray:
    """Return the vehicles of `scene` on `path` as (K, 5) rows.

    Rows: s [m], speed and acceleration along the path [m/s, m/s²], length [m], vehicle id. On
    it: within see_m [m] of the ego and |lateral| < half_width + their half width - 1 m.
    A vehicle driving across the path counts only within 20 m of the ego (an obstacle there),
    and never when `crossing` (a crossing road's lane, whose own traffic drives along it).
    """
    ego, rows = scene.ego, []
    for box in scene.others:
        distance = np.hypot(box.x - ego.x, box.y - ego.y)
        if distance > see_m:
            continue
        s, lateral = path.project((box.x, box.y))
        along = np.cos(box.yaw - path.heading(s))
        if abs(lateral) < half_width + box.width / 2 - 1 and (along >= 0.5 or (
                not crossing and distance < 20)):
            rows.append((s, max(0.0, box.speed * along), box.accel * along, box.length,
                         box.vehicle_id))
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


def road_geometry(road: Road, step: float = 2.0) -> RoadGeometry:
    """Return lane surfaces and painted lines of a highway-env network, once per episode."""
    surfaces, markings = [], {}
    for lane in road.network.lanes_list():
        half = lane.width_at(0) / 2
        left, right = lane_points(lane, half, step), lane_points(lane, -half, step)
        surfaces.append(np.concatenate([left, right[::-1]]))
        for edge, line in zip((left, right), lane.line_types or (), strict=False):
            if line not in _STYLES:
                continue
            # A border shared by two lanes is painted once; solid wins over dashed.
            key = tuple(sorted(tuple(np.round(p, 0)) for p in (edge[0], edge[-1])))
            if key not in markings or _STYLES[line] == 'solid':
                markings[key] = Marking(edge, _STYLES[line])
    return RoadGeometry(tuple(surfaces), tuple(markings.values()))


class SimWorld:
    """One scenario: highway-env road and traffic, our ego, the expert, in world coordinates.

    road: highway-env Road holding every vehicle, ego included; ego: its kinematic Vehicle;
    expert: has control(scene) -> Control and label(scene) -> PrivilegedLabel (sim.expert);
    route: the ego's intended path; duration_s: episode length [s].
    """

    dt_s = DT_S

    def __init__(self, name: str, seed: int, road: Road, ego: Vehicle, expert, route: Path,
                 duration_s: float):
        self.name, self.seed, self.road, self.ego = name, seed, road, ego
        self.expert, self._route, self.duration_s = expert, route, float(duration_s)
        self.time_s = 0.0
        self._steps = 0
        self.geometry = road_geometry(road)
        others = [v for v in road.vehicles if v is not ego]
        self._ids: Dict[int, int] = {id(ego): 0}
        self._ids.update({id(v): i + 1 for i, v in enumerate(others)})
        self._start_s = route.project(self._ego_xy())[0]
        self._scene: Optional[Scene] = None

    def _ego_xy(self) -> np.ndarray:
        return to_world(self.ego.position)

    def _box(self, vehicle: Vehicle) -> Box:
        vid = self._ids.setdefault(id(vehicle), len(self._ids))
        ego = vehicle is self.ego
        kind = 'ego' if ego else getattr(vehicle, 'KIND', 'car')
        x, y = to_world(vehicle.position)
        return Box(vid, float(x), float(y), float(-vehicle.heading), float(vehicle.LENGTH),
                   float(vehicle.WIDTH), 3.2 if kind == 'truck' else 1.5, float(vehicle.speed),
                   float(vehicle.action.get('acceleration', 0.0)), kind,
                   EGO_RGB if ego else _PALETTE[vid % len(_PALETTE)])

    def scene(self) -> Scene:
        """Return the current Scene (cached until the next step)."""
        if self._scene is None:
            others = tuple(self._box(v) for v in self.road.vehicles if v is not self.ego)
            self._scene = Scene(self.time_s, self._box(self.ego), others, self.geometry)
        return self._scene

    def expert_control(self) -> Control:
        """Return what the expert would command now."""
        return self.expert.control(self.scene())

    def label(self) -> PrivilegedLabel:
        """Return the expert's Chain-of-Causation for the current time."""
        return self.expert.label(self.scene())

    def step(self, control: Control) -> StepStatus:
        """Advance DT_S: the ego under `control`, the traffic under IDM/MOBIL; collisions."""
        ego = self.ego
        # The bicycle's centre moves along a circle of curvature 2 sin(beta) / LENGTH, where
        # beta = arctan(tan(steering) / 2) is the slip angle (Vehicle.step): invert that. Its
        # headings turn clockwise (y down), so a left (+) curvature is a negative steering.
        beta = np.arcsin(np.clip(-control.curvature_1pm * ego.LENGTH / 2, -1.0, 1.0))
        steering = np.clip(np.arctan(2 * np.tan(beta)), -MAX_STEERING_RAD, MAX_STEERING_RAD)
        accel = float(np.clip(control.accel_mps2, *ACCEL_LIMITS))
        accel = max(accel, -ego.speed / self.dt_s)  # brake to a standstill, never reverse
        ego.action = {'steering': float(steering), 'acceleration': accel}
        self.road.act()
        self.road.step(self.dt_s)
        self._steps += 1
        self.time_s = self._steps * self.dt_s
        self._scene = None
        return StepStatus(collided=bool(ego.crashed), off_road=not self.on_road())

    def on_road(self) -> bool:
        """Return whether the ego's centre lies on some lane of the network (junctions too)."""
        position = self.ego.position
        return any(lane.on_lane(position, margin=OFF_ROAD_MARGIN_M)
                   for lane in self.road.network.lanes_list())

    def route(self) -> np.ndarray:
        """Return the ego's intended path, (N, 2) world points [m]."""
        return self._route.xy.copy()

    def progress_m(self) -> float:
        """Return the distance travelled along route() since the start [m]."""
        return self._route.project(self._ego_xy())[0] - self._start_s

    @property
    def done(self) -> bool:
        """Whether the episode's time is up or the ego reached the end of its route."""
        end_reached = self._route.project(self._ego_xy())[0] >= self._route.length - 1.0
        return self.time_s >= self.duration_s - 1e-9 or end_reached
