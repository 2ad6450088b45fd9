"""The five demo scenarios: road networks, traffic and the expert's mission, all from a seed.

Everything random comes from one numpy Generator seeded with `seed` (highway-env's own
np_random included), so make_world(name, seed) always builds the same episode. Roads are
built in world coordinates (x along the ego's start, y left) and converted to highway-env's
(y down) when the lanes are made. Lanes are LANE_W wide; lane 0 is the leftmost. Drawn:

- lead_brake: 1-3 lanes, ego at 12-25 m/s; its lead brakes at 2-6 s at 3-5.5 m/s² to a stop or
  to 20-50 % of its speed, holds 2-5 s, then (70 %) drives on. 25 s.
- overtake: 2 lanes, a 6-11 m/s lead, the ego wants 17-24 m/s; a faster car passes in the left
  lane first (50 %); the ego returns right after passing (60 %). 22 s.
- merge_yield: an on-ramp beside a 2-lane road, then a 130-170 m acceleration lane; a 17-23 m/s
  car arrives as the ego (10-14 m/s) would merge, another follows 80-110 m back (70 %). 22 s.
- intersection_turn: a four-way junction, the ego 40-60 m out at 8-12 m/s turns left or right;
  1-3 crossing cars at 8-12 m/s arrive about when it does. 20 s.
- curve: 2 lanes, a 60-100° bend left or right, 40-120 m radius, ego at 15-24 m/s. 22 s.
"""
import dataclasses
from typing import Callable, Dict, Optional, Sequence, Tuple

from highway_env.road.lane import CircularLane, LineType, StraightLane
from highway_env.road.road import Road, RoadNetwork
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle
import numpy as np

from ar1_ros.sim.expert import Expert, Mission, desired_gap
from ar1_ros.sim.world import DT_S, Path, SimWorld, route_path, to_hw

SCENARIOS = ('lead_brake', 'overtake', 'merge_yield', 'intersection_turn', 'curve')
LANE_W = 4.0
C, S, N = LineType.CONTINUOUS_LINE, LineType.STRIPED, LineType.NONE


class Truck(IDMVehicle):
    """A longer, wider IDM/MOBIL vehicle, drawn as a truck."""

    LENGTH, WIDTH, KIND = 9.0, 2.5, 'truck'


@dataclasses.dataclass(frozen=True)
class BrakeScript:
    """The speed script of lead_brake's lead vehicle.

    It cruises at v_cruise, brakes at t_brake [s] at decel [m/s²] down to v_low [m/s], holds
    that for hold_s [s], then, if `resume`, accelerates back at resume_accel [m/s²].
    """

    v_cruise: float
    t_brake: float
    decel: float
    v_low: float
    hold_s: float
    resume: bool
    resume_accel: float

    def accel(self, t: float, v: float) -> Optional[float]:
        """Return the scripted acceleration [m/s²] at time t and speed v; None: plain IDM."""
        t_low = self.t_brake + (self.v_cruise - self.v_low) / self.decel
        if t < self.t_brake:
            return None
        if t < t_low and v > self.v_low:
            return max(-self.decel, -v / DT_S)
        if t < t_low + self.hold_s or not self.resume:
            return float(np.clip(2.0 * (self.v_low - v), -self.decel, 1.0))
        return self.resume_accel if v < self.v_cruise - 0.2 else None


class ScriptedLead(IDMVehicle):
    """An IDM vehicle whose speed follows a BrakeScript (never faster than IDM allows)."""

    def __init__(self, road: Road, position, heading: float, speed: float,
                 script: BrakeScript):
        super().__init__(road, position, heading, speed, target_speed=script.v_cruise,
                         enable_lane_change=False)
        self.script, self.clock = script, 0.0

    def act(self, action=None) -> None:
        """Decide like IDM/MOBIL, then cap the acceleration by the script's."""
        super().act()
        scripted = self.script.accel(self.clock, self.speed)
        if scripted is not None and not self.crashed:
            self.action['acceleration'] = min(self.action['acceleration'], scripted)

    def step(self, dt: float) -> None:
        """Advance the script's clock and the vehicle by dt [s]."""
        self.clock += dt
        super().step(dt)


def _lanes(net: RoadNetwork, a: str, b: str, x0: float, x1: float, rows: Sequence[tuple],
           speed: float = 33.0) -> None:
    """Add straight lanes along x from x0 to x1: rows of (y centre, left line, right line)."""
    for y, left, right in rows:
        net.add_lane(a, b, StraightLane(to_hw((x0, y)), to_hw((x1, y)), line_types=(left, right),
                                        speed_limit=speed))


def _rows(n: int, first: Tuple[int, int] = (C, C)) -> list:
    """Return the rows of an n-lane carriageway: dashed between lanes, `first` at its edges."""
    return [(-LANE_W * i, first[0] if i == 0 else S, first[1] if i == n - 1 else N)
            for i in range(n)]


def _arc(center, radius: float, phase0: float, phase1: float, lines, speed: float):
    """Return a CircularLane from a world-frame centre and phases [rad].

    Counter-clockwise when phase1 > phase0; highway-env's phases are the negated world ones.
    """
    return CircularLane(to_hw(center), radius, -phase0, -phase1, clockwise=phase1 < phase0,
                        line_types=lines, speed_limit=speed)


def _put(road: Road, index: tuple, s: float, speed: float, cls=IDMVehicle, **kw) -> Vehicle:
    """Add a vehicle of class `cls` s metres along lane `index` at `speed` [m/s]."""
    lane = road.network.get_lane(index)
    if cls is Vehicle:
        vehicle = Vehicle(road, lane.position(s, 0), lane.heading_at(s), speed)
    else:
        kw.setdefault('target_speed', speed)
        vehicle = cls(road, lane.position(s, 0), lane.heading_at(s), speed, **kw)
    road.vehicles.append(vehicle)
    return vehicle


def _traffic(road: Road, rng: np.random.Generator, index: tuple, count: int,
             span: Tuple[float, float], speeds: Tuple[float, float], keep_out=()) -> None:
    """Add up to `count` cars (a truck now and then) on one lane, 30 m apart.

    Their s [m] is drawn from `span`, their speed [m/s] from `speeds`, and stays 30 m clear
    of keep_out.
    """
    taken = list(keep_out)
    for _ in range(count):
        s = float(rng.uniform(*span))
        if all(abs(s - other) > 30 for other in taken):
            taken.append(s)
            _put(road, index, s, float(rng.uniform(*speeds)),
                 Truck if rng.random() < 0.2 else IDMVehicle)


def _lead_brake(road: Road, rng: np.random.Generator) -> tuple:
    n, v0 = int(rng.integers(1, 4)), float(rng.uniform(12, 25))
    _lanes(road.network, '0', '1', 0, 900, _rows(n))
    lane = int(rng.integers(n))
    ego = _put(road, ('0', '1', lane), 40, v0, Vehicle)
    s_lead = 40 + 5 + 8 + v0 * rng.uniform(1.5, 2.2)
    stop = rng.random() < 0.5
    script = BrakeScript(v0, float(rng.uniform(2, 6)), float(rng.uniform(3, 5.5)),
                         0.0 if stop else v0 * float(rng.uniform(0.2, 0.5)),
                         float(rng.uniform(2, 5)), bool(rng.random() < 0.7),
                         float(rng.uniform(1.5, 2.5)))
    road.vehicles.append(ScriptedLead(road, road.network.get_lane(('0', '1', lane)).position(
        s_lead, 0), 0.0, v0, script))
    for other in sorted(set(range(n)) - {lane}):
        _traffic(road, rng, ('0', '1', other), int(rng.integers(0, 3)), (0, 250), (14, 26),
                 (40,))
    path = route_path(road, [('0', '1', lane)])
    return ego, Mission('lead_brake', {'ego': path}, v0), path, 25.0


def _overtake(road: Road, rng: np.random.Generator) -> tuple:
    v_lead, v_want = float(rng.uniform(6, 11)), float(rng.uniform(17, 24))
    _lanes(road.network, '0', '1', 0, 900, _rows(2))
    v0 = min(v_want, v_lead + float(rng.uniform(2, 6)))
    ego = _put(road, ('0', '1', 1), 40, v0, Vehicle)
    # Far enough that the expert closes in gently (IDM's desired gap, plus some).
    s_lead = 45 + desired_gap(v0, v_lead) * float(rng.uniform(1.1, 1.5))
    _put(road, ('0', '1', 1), s_lead, v_lead, enable_lane_change=False)
    if rng.random() < 0.5:  # a faster car passes first: wait for it before changing lanes
        _put(road, ('0', '1', 0), 40 - rng.uniform(15, 40), v_want + rng.uniform(3, 6))
    _traffic(road, rng, ('0', '1', 0), int(rng.integers(0, 2)), (150, 300), (v_want + 2, 28))
    _traffic(road, rng, ('0', '1', 1), int(rng.integers(0, 2)), (s_lead + 150, 400), (15, 20))
    lanes = {name: route_path(road, [('0', '1', i)]) for name, i in (('ego', 1), ('left', 0))}
    mission = Mission('overtake', lanes, v_want, return_right=bool(rng.random() < 0.6))
    return ego, mission, lanes['ego'], 22.0


def _merge_yield(road: Road, rng: np.random.Generator) -> tuple:
    net, v0 = road.network, float(rng.uniform(10, 14))
    x_b = 40 + float(rng.uniform(30, 50))
    x_c = x_b + float(rng.uniform(130, 170))
    for a, b, x0, x1, right in (('a', 'b', -200, x_b, N), ('b', 'c', x_b, x_c, N),
                                ('c', 'd', x_c, 900, C)):
        _lanes(net, a, b, x0, x1, _rows(2, (C, right)))
    _lanes(net, 'r0', 'r1', 0, x_b, [(-2 * LANE_W, C, C)])
    _lanes(net, 'r1', 'r2', x_b, x_c, [(-2 * LANE_W, S, C)])
    ego = _put(road, ('r0', 'r1', 0), 40, v0, Vehicle)
    v_main = float(rng.uniform(17, 23))
    _put(road, ('a', 'b', 1), 240 - rng.uniform(5, 30), v_main)  # the one to give way to
    if rng.random() < 0.7:
        _put(road, ('a', 'b', 1), 240 - rng.uniform(80, 110), v_main)
    _traffic(road, rng, ('a', 'b', 0), int(rng.integers(0, 3)), (150, 200 + x_b), (20, 26))
    main = route_path(road, [(a, b, 1) for a, b in ('ab', 'bc', 'cd')]).xy
    # Both lanes start at x = 0 so that arc lengths along them agree (the expert needs it).
    lanes = {'ego': route_path(road, [('r0', 'r1', 0), ('r1', 'r2', 0)]),
             'left': Path(main[main[:, 0] >= 0])}
    route = Path(np.concatenate([lanes['ego'].xy[lanes['ego'].xy[:, 0] < x_b + 20],
                                 lanes['left'].xy[lanes['left'].xy[:, 0] > x_b + 60]]))
    mission = Mission('merge_yield', lanes, v_main, lane_end_s=x_c, merge_from_s=x_b)
    return ego, mission, route, 22.0


def _junction_network(net: RoadNetwork, half: float, arm: float) -> np.ndarray:
    """Add a four-way junction of two-lane roads and return its centre (2,) [m].

    Arm k comes from the direction 180° + 90° k; node names are o/i (inbound) and x/e
    (outbound) with the arm number; connectors run i -> x.
    """
    centre = np.array([half + arm, 0.0])
    for k in range(4):
        c, s = np.cos(k * np.pi / 2), np.sin(k * np.pi / 2)

        def at(x, y, c=c, s=s):
            return centre + (c * x - s * y, s * x + c * y)
        net.add_lane(f'o{k}', f'i{k}', StraightLane(to_hw(at(-half - arm, -2)), to_hw(
            at(-half, -2)), line_types=(C, C), speed_limit=14))
        net.add_lane(f'x{k}', f'e{k}', StraightLane(to_hw(at(-half, 2)), to_hw(
            at(-half - arm, 2)), line_types=(N, C), speed_limit=14))
        net.add_lane(f'i{k}', f'x{(k + 2) % 4}', StraightLane(to_hw(at(-half, -2)), to_hw(
            at(half, -2)), line_types=(N, N), speed_limit=14))
        base = k * np.pi / 2
        net.add_lane(f'i{k}', f'x{(k + 1) % 4}', _arc(at(-half, -half), half - 2,
                                                      base + np.pi / 2, base, (N, N), 14))
        net.add_lane(f'i{k}', f'x{(k + 3) % 4}', _arc(at(-half, half), half + 2,
                                                      base - np.pi / 2, base, (N, N), 14))
    return centre


def _intersection_turn(road: Road, rng: np.random.Generator) -> tuple:
    half, arm = 10.0, 120.0
    _junction_network(road.network, half, arm)
    turn, v0 = ('left', 'right')[int(rng.integers(2))], float(rng.uniform(8, 12))
    out = 3 if turn == 'left' else 1
    to_go = float(rng.uniform(40, 60))
    ego = _put(road, ('o0', 'i0', 0), arm - to_go, v0, Vehicle)
    crossing = [[('o1', 'i1', 0), ('i1', 'x3', 0), ('x3', 'e3', 0)],
                [('o3', 'i3', 0), ('i3', 'x1', 0), ('x1', 'e1', 0)]]
    t_arrive = to_go / (0.7 * v0) + float(rng.uniform(-1.0, 2.0))
    # The first crossing car always conflicts with the turn (the southbound one for a right).
    placed = {0: [], 1: []}
    for n in range(int(rng.integers(1, 4))):
        which = 1 if n == 0 and turn == 'right' else int(rng.integers(2))
        v = float(rng.uniform(8, 12))
        s = arm + half - v * (t_arrive + n * float(rng.uniform(2.5, 5.0)))
        if s >= 0 and all(abs(s - other) > 25 for other in placed[which]):
            placed[which].append(s)
            _put(road, crossing[which][0], s, v, route=list(crossing[which]))
    route = route_path(road, [('o0', 'i0', 0), ('i0', f'x{out}', 0), (f'x{out}', f'e{out}', 0)],
                       step=0.5)
    paths = tuple(route_path(road, lanes) for lanes in crossing)
    mission = Mission('intersection_turn', {'ego': route}, v0, crossing=paths,
                      stop_line_s=arm - 0.5, turn=turn)
    return ego, mission, route, 20.0


def _curve(road: Road, rng: np.random.Generator) -> tuple:
    net, v0 = road.network, float(rng.uniform(15, 24))
    radius, angle = float(rng.uniform(40, 120)), float(np.radians(rng.uniform(60, 100)))
    sign = 1.0 if rng.random() < 0.5 else -1.0  # + left
    x1 = 40 + v0 * float(rng.uniform(5, 8))
    rows = _rows(2)
    _lanes(net, 'a', 'b', 0, x1, rows)
    centre = np.array([x1, -LANE_W + sign * radius])
    phase0, heading = -sign * np.pi / 2, sign * angle
    for y, left, right in rows:
        r = abs(centre[1] - y)
        net.add_lane('b', 'c', _arc(centre, r, phase0, phase0 + heading, (left, right),
                                    np.sqrt(2.0 * r)))
        end = centre + r * np.array([np.cos(phase0 + heading), np.sin(phase0 + heading)])
        far = end + 300 * np.array([np.cos(heading), np.sin(heading)])
        net.add_lane('c', 'd', StraightLane(to_hw(end), to_hw(far), line_types=(left, right),
                                            speed_limit=33))
    ego = _put(road, ('a', 'b', 1), 40, v0, Vehicle)
    if rng.random() < 0.5:
        _put(road, ('a', 'b', 0), 40 + rng.uniform(30, 60), v0)
    path = route_path(road, [('a', 'b', 1), ('b', 'c', 1), ('c', 'd', 1)])
    return ego, Mission('curve', {'ego': path}, v0), path, 22.0


_BUILDERS: Dict[str, Callable] = {
    'lead_brake': _lead_brake, 'overtake': _overtake, 'merge_yield': _merge_yield,
    'intersection_turn': _intersection_turn, 'curve': _curve}


def make_world(name: str, seed: int) -> SimWorld:
    """Return scenario `name` (one of SCENARIOS) built from `seed`; ValueError if unknown."""
    if name not in _BUILDERS:
        raise ValueError(f'unknown scenario {name!r}; choose one of {", ".join(SCENARIOS)}')
    rng = np.random.default_rng(seed)
    road = Road(RoadNetwork(), np_random=np.random.default_rng(int(rng.integers(2 ** 31))),
                neighbour_vehicles_connected_lanes=True)
    ego, mission, route, duration = _BUILDERS[name](road, rng)
    return SimWorld(name, seed, road, ego, Expert(mission), route, duration)
