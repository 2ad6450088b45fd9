"""Values that cross the runtime's boundaries: poses, frames, observations, results.

Times are integer nanoseconds (ROS stamps, exact, no float rounding); durations in seconds are
floats. Arrays carry their shapes in the docstrings. Nothing here imports ROS.
"""
import dataclasses
from typing import Dict, List, Optional, Tuple

import numpy as np

NS_PER_S = 1_000_000_000


def seconds_to_ns(seconds: float) -> int:
    """Convert a duration in seconds to integer nanoseconds (rounded to nearest)."""
    return int(round(seconds * NS_PER_S))


@dataclasses.dataclass(frozen=True)
class EgoState:
    """One odometry sample of the ego vehicle.

    stamp_ns: header stamp. position (3,) m and rotation (3, 3) (body -> odom) of the body in
    the odometry frame `frame_id`. velocity (3,) m/s: linear velocity in the body frame
    (nav_msgs/Odometry twist, which is expressed in child_frame_id).
    """

    stamp_ns: int
    position: np.ndarray
    rotation: np.ndarray
    velocity: np.ndarray
    frame_id: str = 'odom'


@dataclasses.dataclass(frozen=True)
class Pose:
    """A rigid pose: position (3,) and rotation (3, 3) of a body in a parent frame."""

    position: np.ndarray
    rotation: np.ndarray


@dataclasses.dataclass(frozen=True)
class EgoHistory:
    """Ego history on the exact grid ending at t0, expressed in the ego frame at t0.

    xyz (16, 3) m and rot (16, 3, 3); xyz[-1] = 0 and rot[-1] = I. stamps_ns (16,) int64 are
    t0 - (15 - k) * dt. speed: forward speed [m/s] from the odometry twist at t0, the value the
    first planned point must agree with. pose_t0: the ego pose at t0 in the odometry frame
    `frame_id`, used to re-express plans in odom/map.
    """

    xyz: np.ndarray
    rot: np.ndarray
    stamps_ns: np.ndarray
    speed: float
    pose_t0: Pose
    frame_id: str


@dataclasses.dataclass(frozen=True)
class Observation:
    """Everything one inference cycle needs, selected at t0.

    camera_names: AR1 camera names in model (index) order. frames: per camera, the selected
    frames in grid order (oldest first), each an object with `.stamp_ns` and `.rgb() ->
    (H, W, 3) uint8` (decoded lazily, once; see runtime.images.Frame). filled: human-readable
    notes for slots filled by the missing-camera policy (empty when nothing was filled).
    """

    t0_ns: int
    camera_names: Tuple[str, ...]
    frames: Tuple[Tuple[object, ...], ...]
    history: EgoHistory
    filled: Tuple[str, ...] = ()
    epoch: int = 0

    def frame_stamps_ns(self) -> np.ndarray:
        """Return (n_cameras, n_frames) int64 stamps of the selected frames (-1 if filled)."""
        return np.array([[getattr(f, 'stamp_ns', -1) for f in cam] for cam in self.frames],
                        dtype=np.int64)


@dataclasses.dataclass(frozen=True)
class Skip:
    """A cycle that did not run: `reason` is a stable key, `detail` says what was seen."""

    reason: str
    detail: str


@dataclasses.dataclass
class BackendOutput:
    """What a backend returns for one observation, in the ego frame at t0.

    trajectory_xyz (S, 64, 3) m, trajectory_rot (S, 64, 3, 3), actions (S, 64, 2) as
    (acceleration m/s², curvature 1/m), float64 numpy. reasoning: S strings; token_counts: S
    ints; timings: seconds per stage measured by the backend (monotonic clock).
    """

    trajectory_xyz: np.ndarray
    trajectory_rot: np.ndarray
    actions: np.ndarray
    reasoning: List[str]
    token_counts: List[int]
    timings: Dict[str, float]
    dt: float = 0.1


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The safety gate's answer for one sample: ok, and the reasons when it is not."""

    ok: bool
    reasons: Tuple[str, ...] = ()


@dataclasses.dataclass
class CycleResult:
    """The outcome of one inference cycle, handed from the worker back to the node.

    output is None when the cycle failed (`error` says why: decode failure, backend exception).
    verdicts: one per sample. plan_index: the sample published as the plan (the first valid
    one), or None when every sample was rejected. timings: seconds per stage, monotonic,
    including the worker's own stages (queue, decode, backend stages, validate, total).
    """

    observation: Observation
    output: Optional[BackendOutput]
    verdicts: List[Verdict]
    plan_index: Optional[int]
    timings: Dict[str, float]
    error: Optional[str] = None
