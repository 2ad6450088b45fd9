"""The demo world's expert driver: privileged state in, (acceleration, curvature) out.

Longitudinal: IDM towards a speed the lane's curvature limits (A_LAT, reached at B_CURVE),
against the leader on every lane it occupies and virtual stopped leaders at stop lines (an
on-ramp's end, an intersection it gives way at). Lateral: linearised pure pursuit with the
lane's curvature as feed-forward, so bends are not cut; a lane change slides the reference to
the new lane along a quintic over LC_TIME_S, after SIGNAL_S of signalling. A state machine per
scenario kind decides the manoeuvres. For its labels the expert runs its own decisions 6.4 s
ahead (other vehicles extrapolated) and sim.coc words that plan.
"""
import copy
import dataclasses
from typing import Dict, Optional, Tuple

import numpy as np

from ar1_ros.sim.coc import Agent, Curve, Situation, forecast_metas, make_label
from ar1_ros.sim.scene import Box, Control, PrivilegedLabel, Scene
from ar1_ros.sim.world import DT_S, Path, lane_tracks

A_MAX, B_COMF, A_MIN = 2.0, 2.5, -6.0  # comfortable accel / decel, hardest braking [m/s²]
JERK_UP, JERK_DOWN = 4.0, 10.0  # how fast the command may rise / fall [m/s³]
T_GAP, S_JAM = 1.4, 3.0  # IDM time gap [s] and jam distance [m]
A_LAT, B_CURVE = 2.0, 1.2  # lateral acceleration in bends, braking ahead of them [m/s²]
LC_TIME_S, SIGNAL_S = 4.0, 2.0  # a lane change lasts this long, after signalling this long [s]
EGO_LENGTH = 5.0  # [m]
IN_LANE_M, SEE_M = 2.3, 150.0  # |lateral| of a vehicle in a lane; vehicles seen within [m]
STEP_S, HORIZON = 0.1, 64  # the forecast: AR1's 6.4 s at 10 Hz
CONFLICT_M, V_TURN = 3.2, 4.5  # paths this close conflict [m]; speed through a turn [m/s]


@dataclasses.dataclass
class Mission:
    """What the expert is asked to do; paths in the world frame, parallel lanes s-aligned.

    kind: scenario name; lanes: 'ego' its lane (its whole route through an intersection),
    'left' the lane to its left; v_desired [m/s]; lane_end_s: where lanes['ego'] ends (an
    on-ramp) [m]; merge_from_s: lane changes left allowed from here [m]; crossing: lanes of a
    crossing road to give way to, at stop_line_s [m]; turn: 'left'/'right' at the
    intersection; return_right: change back after overtaking.
    """

    kind: str
    lanes: Dict[str, Path]
    v_desired: float
    lane_end_s: float = np.inf
    merge_from_s: float = -np.inf
    crossing: Tuple[Path, ...] = ()
    stop_line_s: float = np.inf
    turn: str = ''
    return_right: bool = False


@dataclasses.dataclass
class _State:
    """The manoeuvre state machine (copied for the forecast). Lane names key Mission.lanes."""

    phase: str = 'drive'
    lane: str = 'ego'
    other: str = ''  # the lane a signalled change goes to, or a running one comes from
    side: str = ''  # 'left'/'right' of the lane change
    lc_t0: float = np.inf  # when the lateral move starts [s]
    lc_d0: float = 0.0  # lateral offset of the old lane from the new one [m]
    after_lc: str = 'drive'
    v_cap: float = np.inf  # speed cap while yielding [m/s]
    stop_s: Optional[float] = None  # a stop line ahead [m along the lane]
    slow_id: int = -1  # the vehicle being overtaken
    accel: float = 0.0
    leader: Optional[Agent] = None
    yield_to: Optional[Agent] = None


def desired_gap(v: float, v_lead: float) -> float:
    """Return IDM's desired gap [m] at speed v [m/s] behind a leader at v_lead [m/s]."""
    return S_JAM + max(0.0, v * T_GAP + v * (v - v_lead) / (2 * np.sqrt(A_MAX * B_COMF)))


def idm(v: float, v_free: float, gap: Optional[float] = None, v_lead: float = 0.0) -> float:
    """Return the IDM acceleration [m/s²] at speed v towards v_free behind a leader (gap [m])."""
    v_free = max(v_free, 0.1)
    # Above the free speed (a slower bend ahead) brake proportionally, not with IDM's 4th power.
    free = A_MAX * (1 - (v / v_free) ** 4) if v <= v_free else max(-B_COMF, v_free - v)
    return free if gap is None else free - A_MAX * (desired_gap(v, v_lead) / max(gap, 0.1)) ** 2


def extrapolate(snap: Dict[str, np.ndarray], t: float) -> Dict[str, np.ndarray]:
    """Return tracks (K, 5: s, v, a, length, id) t [s] on: brakers stop, others speed up 3 s."""
    out = {}
    for name, rows in snap.items():
        s, v, a = rows[:, 0], rows[:, 1], rows[:, 2]
        ta = np.where(a < 0, np.minimum(t, v / np.maximum(-a, 1e-6)), min(t, 3.0))
        out[name] = np.column_stack([s + v * t + a * ta * (t - ta / 2), v + a * ta, rows[:, 2:]])
    return out


def _travel_s(d: float, v: float, a: float = 1.5) -> float:
    """Return the time [s] to cover d [m] from speed v, speeding up at a [m/s²] to V_TURN."""
    d_acc = max(0.0, V_TURN ** 2 - v ** 2) / (2 * a)
    if d <= d_acc:
        return (np.sqrt(v ** 2 + 2 * a * d) - v) / a
    return max(0.0, V_TURN - v) / a + (d - d_acc) / V_TURN


class Expert:
    """The scripted driver of one scenario (see the module docstring)."""

    def __init__(self, mission: Mission):
        self.mission, self._st, route = mission, _State(), mission.lanes['ego']
        self._paths = {**mission.lanes, **{f'cross{i}': p for i, p in enumerate(
            mission.crossing)}}
        self._limits = {name: p.speed_limits(mission.v_desired, A_LAT, B_CURVE)
                        for name, p in mission.lanes.items()}
        # Where the route meets each crossing lane: (index, route s0, s1, lane s0, s1); past
        # 15 m they share a lane and the leader logic takes over.
        zones = [(i, route.conflict(p, CONFLICT_M, 15.0)) for i, p in enumerate(mission.crossing)]
        self._zones = [(i, *zone) for i, zone in zones if zone is not None]
        self._stop_line = min([mission.stop_line_s, *(z[1] - 1.0 for z in self._zones)])
        bent = np.flatnonzero(np.abs(route.curvature(route.s)) > 0.02)
        self._turn_end = float(route.s[bent[-1]]) if mission.turn and len(bent) else -np.inf
        self._cache: Dict[str, tuple] = {'plan': (None,), 'situation': (None,)}

    def control(self, scene: Scene) -> Control:
        """Return the expert's command for the scene's time (decided once per time)."""
        return self._plan(scene)[0]

    def label(self, scene: Scene) -> PrivilegedLabel:
        """Return the Chain-of-Causation label for the scene's time."""
        return make_label(self.situation(scene))

    def situation(self, scene: Scene) -> Situation:
        """Return what the label needs: phase, key vehicles and the forecast of the plan."""
        if self._cache['situation'][0] == scene.time_s:
            return self._cache['situation'][1]
        (_, s, snap), st, m = self._plan(scene), self._st, self.mission
        slow = [Agent(st.slow_id, float(r[0] - s), float(r[1]), float(r[2]))
                for rows in snap.values() for r in rows if int(r[4]) == st.slow_id]
        turning, bend = bool(m.turn) and s < self._turn_end, m.lanes['ego'].bend_near(s)
        forecasts, planned = self._forecast(scene, s, snap)
        sit = Situation(
            m.kind, st.phase, scene.ego.speed, m.v_desired, forecasts, st.leader, st.yield_to,
            slow[0] if slow and st.phase != 'done' else None,
            Curve(*bend) if m.kind == 'curve' and bend else None, m.turn if turning else '',
            max(0.0, self._stop_line - s - EGO_LENGTH / 2) if turning else 0.0, planned,
            st.phase == 'change' and scene.time_s < st.lc_t0 + 0.7 * LC_TIME_S)
        self._cache['situation'] = (scene.time_s, sit)
        return sit

    def _plan(self, scene: Scene) -> tuple:
        if self._cache['plan'][0] == scene.time_s:
            return self._cache['plan'][1]
        st, ego = self._st, scene.ego
        snap = {name: lane_tracks(path, scene, IN_LANE_M, SEE_M, name.startswith('cross'))
                for name, path in self._paths.items()}  # the vehicles on each path
        lanes = self.mission.lanes
        accel = self._decide(st, scene.time_s, lanes[st.lane].project((ego.x, ego.y))[0],
                             ego.speed, snap, DT_S)
        s, lateral = lanes[st.lane].project((ego.x, ego.y))  # the lane may have changed
        plan = (Control(accel, self._curvature(scene.time_s, ego, s, lateral)), s, snap)
        self._cache['plan'] = (scene.time_s, plan)
        return plan

    def _decide(self, st: _State, t: float, s: float, v: float, snap: dict, dt: float) -> float:
        """Advance the state machine to time t; return the acceleration [m/s²] (jerk-limited)."""
        if self.mission.kind in ('overtake', 'merge_yield', 'intersection_turn'):
            getattr(self, f'_{self.mission.kind}')(st, t, s, v, snap)
        watch = {st.lane} | ({st.other} if st.phase == 'signal' or (
            st.phase == 'change' and t < st.lc_t0 + 0.6 * LC_TIME_S) else set())
        v_free = min(float(np.interp(s + 0.5 * v, self.mission.lanes[st.lane].s,
                                     self._limits[st.lane])), st.v_cap)
        accel, st.leader = idm(v, v_free), None
        for name in sorted(watch):
            rows = snap[name][snap[name][:, 0] > s]
            if len(rows):
                row = rows[np.argmin(rows[:, 0])]
                gap = row[0] - s - (row[3] + EGO_LENGTH) / 2
                accel = min(accel, idm(v, v_free, gap, row[1]))
                if name == st.lane:
                    st.leader = Agent(int(row[4]), float(gap), float(row[1]), float(row[2]))
        if st.stop_s is not None:
            accel = min(accel, idm(v, v_free, st.stop_s - s - EGO_LENGTH / 2, 0.0))
        st.accel = float(np.clip(accel, max(A_MIN, st.accel - JERK_DOWN * dt),
                                 min(A_MAX, st.accel + JERK_UP * dt)))
        return st.accel

    def _gap(self, s: float, v: float, rows: np.ndarray,
             later: float = 0.0) -> Tuple[bool, Optional[Agent]]:
        """Return if the lane of `rows` has room now and `later` [s] on, and who blocks it."""
        blocker = None
        for cs, cv, ca, length, vid in rows[np.argsort(np.abs(rows[:, 0] - s))]:
            for ds in (cs - s, cs - s + (cv - v) * later):
                gap, closing = abs(ds) - (length + EGO_LENGTH) / 2, (v - cv) * np.sign(ds)
                margin = 4 + 0.4 * v if ds >= 0 else 5 + 0.3 * cv
                # The braking the closing vehicle (us, or the one behind) needs to keep the margin.
                if gap < margin or max(closing, 0.0) ** 2 / (2 * max(gap - margin, 0.1)) > 1.5:
                    blocker = blocker or Agent(int(vid), float(cs - s), float(cv), float(ca))
        return blocker is None, blocker

    def _lane_change(self, st: _State, t: float, s: float, v: float, snap: dict,
                     signal: Tuple[str, str, str] = ()) -> bool:
        """Signal a lane change (to lane, side, next phase) or advance one; return if one is on."""
        if signal:
            st.phase, st.lc_t0 = 'signal', t + SIGNAL_S
            st.other, st.side, st.after_lc = signal
        elif st.phase == 'signal' and t >= st.lc_t0:
            if self._gap(s, v, snap[st.other])[0]:
                d0 = self.mission.lanes[st.other].project(self.mission.lanes[st.lane].point(s))[1]
                st.phase, st.lane, st.other, st.lc_d0 = 'change', st.other, st.lane, d0
            else:
                st.phase = 'drive'  # the gap closed: give up and decide again
        elif st.phase == 'change' and t >= st.lc_t0 + LC_TIME_S:
            st.phase = st.after_lc
        return st.phase in ('signal', 'change')

    def _overtake(self, st: _State, t: float, s: float, v: float, snap: dict) -> None:
        if self._lane_change(st, t, s, v, snap):
            return
        ahead, mine = snap['ego'][snap['ego'][:, 0] > s], snap['ego']
        lead = ahead[np.argmin(ahead[:, 0])] if len(ahead) else None
        if (st.phase == 'drive' and lead is not None and lead[1] < self.mission.v_desired - 2
                and lead[0] - s < 3 * v + 30 and self._gap(s, v, snap['left'], SIGNAL_S)[0]):
            st.slow_id = int(lead[4])
            self._lane_change(st, t, s, v, snap, ('left', 'left', 'pass'))
        elif st.phase == 'pass' and self.mission.return_right:
            slow = mine[mine[:, 4] == st.slow_id]
            if (not len(slow) or s - slow[0, 0] > slow[0, 3] + 8 + 0.6 * v) and self._gap(
                    s, v, mine, SIGNAL_S)[0]:
                self._lane_change(st, t, s, v, snap, ('ego', 'right', 'done'))

    def _merge_yield(self, st: _State, t: float, s: float, v: float, snap: dict) -> None:
        st.stop_s = self.mission.lane_end_s - 1.0 if st.lane == 'ego' else None
        if self._lane_change(st, t, s, v, snap) or st.phase not in ('drive', 'yield'):
            st.v_cap, st.yield_to = np.inf, None
            return
        ok, blocker = self._gap(s, v, snap['left'], SIGNAL_S)
        if ok:
            st.phase, st.v_cap, st.yield_to = 'drive', np.inf, None
            if s >= self.mission.merge_from_s:
                self._lane_change(st, t, s, v, snap, ('left', 'left', 'main'))
        elif s > self.mission.merge_from_s - 80:
            if st.phase != 'yield':  # slow down to let the main-road traffic go by
                st.phase, st.v_cap = 'yield', max(3.0, 0.5 * v)
            st.yield_to = blocker

    def _intersection_turn(self, st: _State, t: float, s: float, v: float, snap: dict) -> None:
        front = s + EGO_LENGTH / 2
        if st.phase == 'drive' and front > self._stop_line + 0.5:
            st.phase = 'turn'  # past the stop line: committed
        near = st.phase == 'drive' and front > self._stop_line - 40
        st.yield_to = self._conflict(s, v, snap, 0.5 * (st.yield_to is not None)) if near else None
        st.stop_s = self._stop_line if st.yield_to is not None else None

    def _conflict(self, s: float, v: float, snap: dict, margin: float) -> Optional[Agent]:
        """Return the crossing vehicle whose time in a conflict zone overlaps ours (+1 s / 2 s)."""
        best = None
        for i, e0, e1, c0, c1 in self._zones:
            t_in = max(0.0, e0 - s - EGO_LENGTH / 2) / max(v, V_TURN)
            t_out = _travel_s(e1 - s + EGO_LENGTH / 2, v)
            for cs, cv, ca, length, vid in snap[f'cross{i}']:
                front, rear = cs + length / 2, cs - length / 2
                if rear > c1 or (cv < 0.5 and front < c0 - 2):
                    continue  # gone, or waiting itself
                c_in, c_out = max(0.0, c0 - front) / max(cv, 0.5), (c1 - rear) / max(cv, 0.5)
                if c_in < t_out + 2.0 + margin and c_out > t_in - 1.0 - margin and (
                        best is None or c0 - front < best.distance_m):
                    best = Agent(int(vid), float(c0 - front), float(cv), float(ca))
        return best

    def _offset(self, st: _State, t: float) -> Tuple[float, float]:
        """Return the lane-change reference: lateral offset [m] from the lane, its rate [m/s]."""
        if st.phase != 'change':
            return 0.0, 0.0
        x = float(np.clip((t - st.lc_t0) / LC_TIME_S, 0.0, 1.0))
        w, rate = x ** 3 * (10 - 15 * x + 6 * x * x), 30 * x * x * (1 - x) ** 2 / LC_TIME_S
        return st.lc_d0 * (1 - w), -st.lc_d0 * rate

    def _curvature(self, t: float, ego: Box, s: float, lateral: float) -> float:
        """Return the curvature command [1/m]: feed-forward plus linearised pure pursuit."""
        path, v = self.mission.lanes[self._st.lane], max(ego.speed, 1.0)
        offset, rate = self._offset(self._st, t)
        feed = float(path.curvature(s + 0.3 * v))
        course = ego.yaw + np.arcsin(np.clip(feed * EGO_LENGTH / 2, -1, 1))  # body -> motion
        error = (course - path.heading(s) + np.pi) % (2 * np.pi) - np.pi - np.arctan2(rate, v)
        look = max(6.0, 1.1 * v)  # [m]: about a second ahead; damping ratio 0.7
        return float(feed - 2 * (lateral - offset) / look ** 2 - 2 * np.sin(error) / look)

    def _forecast(self, scene: Scene, s: float, snap: dict) -> Tuple[tuple, str]:
        """Return coc.forecast_metas of its own next 6.4 s, and its first lane change side."""
        st, ego = copy.deepcopy(self._st), scene.ego
        v, points, planned = ego.speed, np.empty((HORIZON, 2)), ''
        for k in range(HORIZON):
            t = scene.time_s + k * STEP_S
            v = max(0.0, v + STEP_S * self._decide(st, t, s, v, extrapolate(snap, k * STEP_S),
                                                   STEP_S))
            s += v * STEP_S
            planned = planned or (st.side if st.phase in ('signal', 'change') else '')
            path = self.mission.lanes[st.lane]
            offset, heading = self._offset(st, t + STEP_S)[0], path.heading(s)
            points[k] = path.point(s) + offset * np.array([-np.sin(heading), np.cos(heading)])
        return forecast_metas(points, (ego.x, ego.y, ego.yaw), ego.speed, STEP_S), planned
