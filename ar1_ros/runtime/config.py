"""Settings of the runtime, one frozen dataclass per concern, validated on construction.

The node fills these from ROS parameters (config/ar1.yaml), offline evaluation and training
from the same YAML, so every consumer selects inputs with the same numbers.
"""
import dataclasses
import math
from typing import Tuple

from ar1_ros.runtime.cameras import CameraSpec, model_order

MISSING_CAMERA_POLICIES = ('skip', 'repeat', 'black')


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclasses.dataclass(frozen=True)
class SelectionConfig:
    """How frames and ego poses are picked around t0.

    frame_offsets_s: the camera grid relative to t0, oldest first (AR1: -0.3, -0.2, -0.1, 0).
    frame_tolerance_s: a frame counts for a grid time when |stamp - time| <= this.
    missing_camera_policy: 'skip' the cycle (default); 'repeat' the nearest frame of that
    camera when it lies within fill_max_offset_s of the grid time; 'black' a zero image of the
    camera's last known size. Filled slots are reported in Observation.filled.
    buffer_s: how much history every buffer keeps (2 s of context plus a margin).
    history_steps / history_dt_s: the ego grid (AR1: 16 poses at 0.1 s ending at t0).
    max_ego_gap_s: the longest odometry gap interpolation may bridge.
    max_speed_mismatch_mps / max_speed_mismatch_ratio: the speed implied by the last history
    step may differ from the odometry twist by max(abs, ratio * speed).
    max_input_age_s: a cycle whose t0 is older than this against the clock is skipped as stale
    (bag ended, sensor dead). clock_jump_back_s: a clock step backwards larger than this
    clears every buffer (bag restart).
    """

    frame_offsets_s: Tuple[float, ...] = (-0.3, -0.2, -0.1, 0.0)
    frame_tolerance_s: float = 0.05
    missing_camera_policy: str = 'skip'
    fill_max_offset_s: float = 0.5
    buffer_s: float = 2.5
    history_steps: int = 16
    history_dt_s: float = 0.1
    max_ego_gap_s: float = 0.25
    max_speed_mismatch_mps: float = 1.0
    max_speed_mismatch_ratio: float = 0.2
    max_input_age_s: float = 1.0
    clock_jump_back_s: float = 0.5

    def __post_init__(self):
        offsets = self.frame_offsets_s
        _require(len(offsets) >= 1, 'frame_offsets_s must not be empty')
        _require(all(math.isfinite(o) and o <= 0 for o in offsets),
                 f'frame_offsets_s must be finite and <= 0, got {offsets}')
        _require(list(offsets) == sorted(offsets) and len(set(offsets)) == len(offsets),
                 f'frame_offsets_s must be strictly increasing, got {offsets}')
        _require(self.missing_camera_policy in MISSING_CAMERA_POLICIES,
                 f'missing_camera_policy must be one of {MISSING_CAMERA_POLICIES}, '
                 f'got {self.missing_camera_policy!r}')
        _require(self.history_steps >= 2, 'history_steps must be >= 2')
        for name in ('frame_tolerance_s', 'fill_max_offset_s', 'buffer_s', 'history_dt_s',
                     'max_ego_gap_s', 'max_speed_mismatch_mps', 'max_input_age_s',
                     'clock_jump_back_s'):
            value = getattr(self, name)
            _require(math.isfinite(value) and value > 0, f'{name} must be > 0, got {value}')
        _require(self.max_speed_mismatch_ratio >= 0, 'max_speed_mismatch_ratio must be >= 0')
        span = max(-min(offsets), (self.history_steps - 1) * self.history_dt_s)
        _require(self.buffer_s > span + self.frame_tolerance_s,
                 f'buffer_s={self.buffer_s} cannot hold the {span:.2f} s the grid needs')


@dataclasses.dataclass(frozen=True)
class ValidatorConfig:
    """Bounds of the safety gate (runtime.validator), per sample.

    Acceleration [m/s²] in [min_accel, max_accel]; |curvature| [1/m] <= max_curvature; |jerk|
    (difference of consecutive accelerations / dt) <= max_jerk [m/s³]; lateral acceleration
    v²|κ| <= max_lateral_accel; the first point's distance from the origin must match the
    current speed's travel in one step within first_point_tolerance_m plus
    first_point_tolerance_ratio of that travel; speeds must stay >= min_speed (AR1 does not
    reverse; a small negative margin absorbs integration noise).
    """

    min_accel: float = -9.8
    max_accel: float = 9.8
    max_curvature: float = 0.25
    max_jerk: float = 40.0
    max_lateral_accel: float = 12.0
    first_point_tolerance_m: float = 0.5
    first_point_tolerance_ratio: float = 0.5
    min_speed: float = -0.5

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            _require(math.isfinite(value), f'validator {field.name} must be finite')
        _require(self.min_accel < self.max_accel, 'validator min_accel must be < max_accel')
        for name in ('max_curvature', 'max_jerk', 'max_lateral_accel', 'first_point_tolerance_m'):
            _require(getattr(self, name) > 0, f'validator {name} must be > 0')


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """The whole runtime: cameras (any order; model order is derived), selection, validator."""

    cameras: Tuple[CameraSpec, ...]
    selection: SelectionConfig = SelectionConfig()
    validator: ValidatorConfig = ValidatorConfig()

    def __post_init__(self):
        _require(len(self.cameras) >= 1, 'at least one camera is required')
        model_order([c.name for c in self.cameras])

    @property
    def camera_names(self) -> Tuple[str, ...]:
        """AR1 camera names in model order."""
        return tuple(model_order([c.name for c in self.cameras]))

    def camera(self, name: str) -> CameraSpec:
        """Return the spec of the camera called `name` (KeyError if absent)."""
        for spec in self.cameras:
            if spec.name == name:
                return spec
        raise KeyError(name)
