"""AR1 camera names, their model order, and calibration (spec §3.1).

The model was trained with cameras sorted by this index; the official code maps unknown names
silently to 0, we refuse them instead.
"""
import dataclasses
from typing import Iterable, List, Optional, Tuple

AR1_CAMERA_INDEX = {
    'camera_cross_left_120fov': 0,
    'camera_front_wide_120fov': 1,
    'camera_cross_right_120fov': 2,
    'camera_rear_left_70fov': 3,
    'camera_rear_tele_30fov': 4,
    'camera_rear_right_70fov': 5,
    'camera_front_tele_30fov': 6,
}

# The released AR1 was trained on these four (prompt order: cross_left, front_wide, cross_right,
# front_tele).
DEFAULT_CAMERAS = ('camera_cross_left_120fov', 'camera_front_wide_120fov',
                   'camera_cross_right_120fov', 'camera_front_tele_30fov')


@dataclasses.dataclass(frozen=True)
class CameraSpec:
    """One camera: its AR1 name and optional calibration.

    intrinsics: (fx, fy, cx, cy) in pixels of the image as received. extrinsics: the camera
    pose in the ego frame as (x, y, z, roll, pitch, yaw) [m, rad], where the camera's own axes
    are the ROS optical convention (z forward, x right, y down) after that rotation is applied
    to a body-aligned frame (x forward, y left, z up); see runtime.overlay.camera_from_ego.
    """

    name: str
    intrinsics: Optional[Tuple[float, float, float, float]] = None
    extrinsics: Optional[Tuple[float, float, float, float, float, float]] = None

    @property
    def calibrated(self) -> bool:
        """Whether both intrinsics and extrinsics are known (needed for the overlay)."""
        return self.intrinsics is not None and self.extrinsics is not None


def model_order(names: Iterable[str]) -> List[str]:
    """Return camera names sorted by AR1 index; unknown or repeated names raise ValueError."""
    names = list(names)
    unknown = [n for n in names if n not in AR1_CAMERA_INDEX]
    if unknown:
        raise ValueError(f'unknown AR1 camera name(s) {unknown}; known: '
                         f'{sorted(AR1_CAMERA_INDEX, key=AR1_CAMERA_INDEX.get)}')
    if len(set(names)) != len(names):
        raise ValueError(f'camera names repeat: {names}')
    return sorted(names, key=AR1_CAMERA_INDEX.get)
