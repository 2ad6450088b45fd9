"""The demo world's camera rig: four pinhole cameras where AR1's training rig has them.

Extrinsics follow runtime.overlay (and cameras.CameraSpec): (x, y, z, roll, pitch, yaw) of the
camera in the ego frame (x forward, y left, z up, origin on the ground under the ego box
centre) [m, rad], rotation Rz(yaw) Ry(pitch) Rx(roll), optical axes z forward, x right, y down.
With that order a positive pitch tilts the camera DOWN (Ry turns +x towards -z) and a positive
yaw turns it LEFT. The default rig sits at the windshield, 1.5 m above the ground; the 120°
cameras look 0.05 rad (2.9°) down so the road fills more of the image than the sky does.

There is no lens distortion: intrinsics are (fx, fy, cx, cy) [px] with fx = fy from the
horizontal field of view, principal point at the image centre (width / 2, height / 2).
config/sim_rig.yaml holds the same numbers in the format load_rig reads.
"""
import dataclasses
import math
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Tuple, Union

import yaml

from ar1_ros.runtime.cameras import AR1_CAMERA_INDEX, CameraSpec

# id -> (AR1 name, horizontal field of view [deg], extrinsics (x, y, z [m], roll, pitch, yaw
# [rad])), in AR1 prompt order. The cross cameras turn 1.0472 rad (60°) outwards, so with 120°
# they cover from straight ahead to 30° behind abeam on their side.
_DEFAULTS = {
    'cross_left': ('camera_cross_left_120fov', 120.0, (1.9, 0.6, 1.5, 0.0, 0.05, 1.0472)),
    'front_wide': ('camera_front_wide_120fov', 120.0, (1.7, 0.0, 1.5, 0.0, 0.05, 0.0)),
    'cross_right': ('camera_cross_right_120fov', 120.0, (1.9, -0.6, 1.5, 0.0, 0.05, -1.0472)),
    'front_tele': ('camera_front_tele_30fov', 30.0, (1.75, 0.0, 1.5, 0.0, 0.0, 0.0)),
}
DEFAULT_WIDTH, DEFAULT_HEIGHT = 576, 320
_TOP_KEYS = ('width', 'height', 'cameras')
_CAMERA_KEYS = ('ar1_name', 'fov_deg', 'intrinsics', 'extrinsics')


@dataclasses.dataclass(frozen=True)
class RigCamera:
    """One rendered camera.

    camera_id: our id ('front_wide'; topics /sensing/camera/<id>/...); ar1_name: the AR1
    camera name; width, height: image size [px]; fx, fy, cx, cy: pinhole intrinsics [px];
    extrinsics: (x, y, z, roll, pitch, yaw) in the ego frame [m, rad] (module docstring).
    """

    camera_id: str
    ar1_name: str
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    extrinsics: Tuple[float, float, float, float, float, float]

    @property
    def frame_id(self) -> str:
        """The TF frame of the camera's optical axes, 'camera_<id>'."""
        return f'camera_{self.camera_id}'

    @property
    def horizontal_fov_deg(self) -> float:
        """The horizontal field of view [deg] that fx gives over the image width."""
        return math.degrees(2.0 * math.atan(self.width / 2.0 / self.fx))

    def spec(self) -> CameraSpec:
        """Return the calibrated CameraSpec (AR1 name, intrinsics, extrinsics) for projections."""
        return CameraSpec(self.ar1_name, (self.fx, self.fy, self.cx, self.cy),
                          tuple(self.extrinsics))

    def camera_info(self) -> Dict[str, Any]:
        """Return the sensor_msgs/CameraInfo fields (no header) as plain Python values.

        height, width [px]; distortion_model 'plumb_bob' with d all zero (the renderer is an
        ideal pinhole); k (9), r (9, identity: no rectification), p (12): row-major matrices.
        """
        fx, fy, cx, cy = self.fx, self.fy, self.cx, self.cy
        return {'height': self.height, 'width': self.width, 'distortion_model': 'plumb_bob',
                'd': [0.0] * 5,
                'k': [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0],
                'r': [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                'p': [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]}


def intrinsics_from_fov(width: int, height: int, fov_deg: float) -> Tuple[float, ...]:
    """Return (fx, fy, cx, cy) [px] of a square-pixel pinhole with this horizontal FOV [deg]."""
    fx = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    return fx, fx, width / 2.0, height / 2.0


def default_rig(width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT
                ) -> Tuple[RigCamera, ...]:
    """Return the four AR1 cameras (cross_left, front_wide, cross_right, front_tele).

    width, height: image size [px] of every camera; intrinsics follow from each camera's FOV.
    """
    _check_size('width', width)
    _check_size('height', height)
    return tuple(RigCamera(cid, name, width, height, *intrinsics_from_fov(width, height, fov),
                           tuple(float(v) for v in extrinsics))
                 for cid, (name, fov, extrinsics) in _DEFAULTS.items())


def rig_parameters(rig: Sequence[RigCamera]) -> Dict[str, list]:
    """Return the node parameters that calibrate every camera of `rig` for overlays.

    {'camera.<id>.intrinsics': [fx, fy, cx, cy], 'camera.<id>.extrinsics': [x, y, z, roll,
    pitch, yaw]} in the node's convention, which the rig shares (runtime/overlay.py).
    """
    out: Dict[str, list] = {}
    for camera in rig:
        out[f'camera.{camera.camera_id}.intrinsics'] = [camera.fx, camera.fy, camera.cx,
                                                         camera.cy]
        out[f'camera.{camera.camera_id}.extrinsics'] = [float(v) for v in camera.extrinsics]
    return out


def load_rig(source: Union[str, Path, Mapping]) -> Tuple[RigCamera, ...]:
    """Return the rig of a YAML file (path) or dict, overriding default_rig.

    Format: {width, height, cameras: {<id>: {ar1_name, fov_deg | intrinsics [fx, fy, cx, cy],
    extrinsics [x, y, z, roll, pitch, yaw]}}}; every key is optional. Ids are those of
    default_rig; a camera given neither fov_deg nor intrinsics keeps its default FOV at the
    new size. Bad values raise ValueError naming the key.
    """
    if isinstance(source, (str, Path)):
        data = yaml.safe_load(Path(source).read_text()) or {}
    else:
        data = source
    if not isinstance(data, Mapping):
        raise ValueError(f'rig must be a mapping of {_TOP_KEYS}, got {type(data).__name__}')
    _check_keys('rig', data, _TOP_KEYS)
    width = _check_size('width', data.get('width', DEFAULT_WIDTH))
    height = _check_size('height', data.get('height', DEFAULT_HEIGHT))
    cameras = data.get('cameras') or {}
    if not isinstance(cameras, Mapping):
        raise ValueError(f'cameras must be a mapping of camera id to settings, got {cameras!r}')
    unknown = sorted(set(cameras) - set(_DEFAULTS))
    if unknown:
        raise ValueError(f'cameras: unknown camera id(s) {unknown}; known: {list(_DEFAULTS)}')
    rig = tuple(_camera(cid, cameras.get(cid) or {}, width, height) for cid in _DEFAULTS)
    names = [camera.ar1_name for camera in rig]
    if len(set(names)) != len(names):
        raise ValueError(f'cameras.*.ar1_name: AR1 names repeat: {names}')
    return rig


def _camera(cid: str, entry: Mapping, width: int, height: int) -> RigCamera:
    """Return camera `cid` with the settings of `entry` over its defaults (load_rig's format)."""
    key = f'cameras.{cid}'
    if not isinstance(entry, Mapping):
        raise ValueError(f'{key} must be a mapping of {_CAMERA_KEYS}, got {entry!r}')
    _check_keys(key, entry, _CAMERA_KEYS)
    name, fov, extrinsics = _DEFAULTS[cid]
    name = entry.get('ar1_name', name)
    if name not in AR1_CAMERA_INDEX:
        raise ValueError(f'{key}.ar1_name: unknown AR1 camera name {name!r}; '
                         f'known: {sorted(AR1_CAMERA_INDEX, key=AR1_CAMERA_INDEX.get)}')
    if 'fov_deg' in entry and 'intrinsics' in entry:
        raise ValueError(f'{key}: give fov_deg or intrinsics, not both')
    if 'intrinsics' in entry:
        intrinsics = _numbers(f'{key}.intrinsics', entry['intrinsics'], 4)
        if min(intrinsics[:2]) <= 0:
            raise ValueError(f'{key}.intrinsics: fx and fy must be positive, got {intrinsics}')
    else:
        fov = _numbers(f'{key}.fov_deg', [entry.get('fov_deg', fov)], 1)[0]
        if not 0.0 < fov < 180.0:
            raise ValueError(f'{key}.fov_deg must be in (0, 180), got {fov}')
        intrinsics = intrinsics_from_fov(width, height, fov)
    extrinsics = _numbers(f'{key}.extrinsics', entry.get('extrinsics', extrinsics), 6)
    return RigCamera(cid, name, width, height, *intrinsics, extrinsics)


def _check_keys(where: str, data: Mapping, allowed: Sequence[str]) -> None:
    """Raise ValueError naming any key of `data` that is not in `allowed`."""
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise ValueError(f'{where}: unknown key(s) {unknown}; allowed: {list(allowed)}')


def _check_size(key: str, value: Any) -> int:
    """Return `value` as an image size [px]; ValueError unless it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f'{key} must be a positive integer [px], got {value!r}')
    return value


def _numbers(key: str, values: Any, count: int) -> Tuple[float, ...]:
    """Return `values` as `count` finite floats; ValueError naming `key` otherwise."""
    if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, '__len__') \
            or len(values) != count:
        raise ValueError(f'{key} must be a list of {count} numbers, got {values!r}')
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f'{key} must be a list of {count} numbers, got {values!r}') from None
    if any(isinstance(v, bool) for v in values) or not all(map(math.isfinite, numbers)):
        raise ValueError(f'{key} must be {count} finite numbers, got {values!r}')
    return numbers
