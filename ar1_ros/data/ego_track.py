"""A bag's whole odometry track: ground-truth futures and kinematics for keyframes.

The ground truth of a keyframe is the path the car actually drove after t0, expressed in the
ego frame at t0, on the same 0.1 s grid as the plan. It is interpolated with the very function
that builds the model's history (runtime.ego_history.interpolate_pose), so history and future
share one definition of "the pose at time t".
"""
import dataclasses
from typing import Optional, Sequence, Tuple

import numpy as np

from ar1_ros.data.bags import BagError, BagReader
from ar1_ros.runtime.buffers import StampedRing
from ar1_ros.runtime.ego_history import check_ego_state, interpolate_pose
from ar1_ros.runtime.messages import odometry_to_ego, stamp_to_ns
from ar1_ros.runtime.rotations import yaw_of
from ar1_ros.runtime.types import EgoState, Skip, seconds_to_ns

# Longer than any recording: the ring keeps the whole track.
_FOREVER_NS = 10 ** 18


@dataclasses.dataclass(frozen=True)
class Kinematics:
    """The track resampled on a regular grid.

    stamps_ns (N,), speed (N,) m/s (body x), accel (N,) m/s^2, yaw (N,) rad (unwrapped),
    yaw_rate (N,) rad/s, xy (N, 2) m (odometry frame).
    """

    stamps_ns: np.ndarray
    speed: np.ndarray
    accel: np.ndarray
    yaw: np.ndarray
    yaw_rate: np.ndarray
    xy: np.ndarray


class EgoTrack:
    """Every usable odometry sample of one bag, in stamp order."""

    def __init__(self, states: Sequence[EgoState] = (), max_gap_s: float = 0.25):
        self._ring: StampedRing = StampedRing(_FOREVER_NS)
        self._max_gap_ns = seconds_to_ns(max_gap_s)
        for state in states:
            self.add(state)

    def add(self, state: EgoState) -> None:
        """Append one odometry sample (ignored when check_ego_state rejects it)."""
        if check_ego_state(state) is None:
            self._ring.insert(state.stamp_ns, state)

    def __len__(self) -> int:
        return len(self._ring)

    @property
    def span_ns(self) -> Optional[Tuple[int, int]]:
        """Return (first, last) stamp [ns], or None for an empty track."""
        if not len(self._ring):
            return None
        return self._ring.oldest()[0], self._ring.newest()[0]

    @classmethod
    def from_bag(cls, reader: BagReader, ego_topic: str,
                 max_gap_s: float = 0.25) -> Tuple['EgoTrack', Optional[BagError]]:
        """Read every Odometry of `ego_topic`; return the track and the read fault, if any.

        A fault (corrupt or truncated bag) keeps the samples read before it.
        """
        states, fault = [], None
        try:
            for message in reader.messages([ego_topic]):
                msg = reader.deserialize(message)
                if stamp_to_ns(msg.header.stamp) == 0:
                    continue
                try:
                    states.append(odometry_to_ego(msg))
                except ValueError:
                    continue  # counted and reported by the input stream
        except BagError as exc:
            fault = exc
        return cls(states, max_gap_s), fault

    def pose(self, t_ns: int):
        """Return (position (3,), rotation (3, 3), velocity (3,)) at t_ns, or a Skip."""
        return interpolate_pose(self._ring, int(t_ns), self._max_gap_ns)

    def future(self, t0_ns: int, steps: int = 64,
               dt_s: float = 0.1) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """Return the driven path at t0 + (i + 1) dt in the ego frame at t0, or None.

        xyz (steps, 3), rot (steps, 3, 3); None where the track does not cover (or cannot
        bridge) the whole horizon.
        """
        origin = self.pose(t0_ns)
        if isinstance(origin, Skip):
            return None
        p0, r0 = origin[0], origin[1]
        dt_ns = seconds_to_ns(dt_s)
        xyz, rot = np.empty((steps, 3)), np.empty((steps, 3, 3))
        for i in range(steps):
            pose = self.pose(int(t0_ns) + (i + 1) * dt_ns)
            if isinstance(pose, Skip):
                return None
            xyz[i] = r0.T @ (pose[0] - p0)
            rot[i] = r0.T @ pose[1]
        return xyz, rot

    def kinematics(self, dt_s: float = 0.1) -> Optional[Kinematics]:
        """Return the track resampled every dt_s over its span (gaps interpolated across)."""
        span = self.span_ns
        if span is None or span[1] - span[0] < 2 * seconds_to_ns(dt_s):
            return None
        stamps = np.arange(span[0], span[1] + 1, seconds_to_ns(dt_s), dtype=np.int64)
        ring, positions, rotations, speeds = self._ring, [], [], []
        for stamp in stamps:
            pose = interpolate_pose(ring, int(stamp), _FOREVER_NS)
            positions.append(pose[0])
            rotations.append(pose[1])
            speeds.append(pose[2][0])
        speed = np.asarray(speeds)
        yaw = np.unwrap(yaw_of(np.stack(rotations)))
        return Kinematics(stamps, speed, np.gradient(speed, dt_s), yaw,
                          np.gradient(yaw, dt_s), np.stack(positions)[:, :2])

