"""PhysicalAI-AV calibration and egomotion in ROS terms: CameraInfo, TF, body-frame odometry.

Cameras: PAI intrinsics are f-theta polynomials, r(theta) = sum_i fw_poly_i theta^i (pixels from
the principal point against the angle from the optical axis). sensor_msgs/CameraInfo has no
f-theta model, so the nearest standard one is fitted: 'equidistant' (Kannala-Brandt, OpenCV
fisheye) r = f (theta + k1 theta^3 + k2 theta^5 + k3 theta^7 + k4 theta^9), with f and k1..k4
least-squares fitted over the angles the image covers. Odd powers only: even f-theta terms are
approximated, and the fit's largest error in pixels is reported with every conversion.
Frames: the camera frame of the f-theta model and of the extrinsics is the optical one (z out of
the lens, x right, y down), and the extrinsics are camera poses in the rig frame (origin at the
rear axle centre on the ground, x forward, y left, z up): base_link -> camera_<id> as given.
Egomotion: poses of the rig in the clip's anchor frame (the rig at clip time 0, yaw zeroed,
roll/pitch against gravity); the dataset documents the velocity columns in that frame, so they
are rotated into the body frame for Odometry's twist (the data is checked against the driven
path, and the summary says which frame it matched). Angular velocity (body frame, all three
axes) comes from the orientations: central differences of the rotation between neighbours.
"""
import dataclasses
import math
from typing import Tuple

import numpy as np

from ar1_ros.runtime.rotations import quat_to_matrix

# Body-aligned axes (x forward, y left, z up) -> optical axes (z forward, x right, y down), as
# in runtime.overlay: rows x_O = -y_B, y_O = -z_B, z_O = x_B.
_BODY_TO_OPTICAL = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
FIT_SAMPLES = 400


@dataclasses.dataclass(frozen=True)
class CameraCalibration:
    """CameraInfo fields: width, height, K (9,), D (4,) equidistant, P (12,), fit error [px]."""

    width: int
    height: int
    k: Tuple[float, ...]
    d: Tuple[float, ...]
    p: Tuple[float, ...]
    fit_error_px: float
    max_angle_rad: float
    distortion_model: str = 'equidistant'


def _image_angle(model) -> float:
    """Return the largest angle from the optical axis [rad] that the image covers."""
    cx, cy = (float(v) for v in model.principal_point)
    r_max = max(math.hypot(u - cx, v - cy) for u in (0.0, model.width)
                for v in (0.0, model.height))
    theta = np.linspace(0.0, math.pi * 0.999, 4000)
    radius = model.th2r(theta)
    # Past its first maximum the polynomial folds back (outside its calibrated range).
    rising = np.flatnonzero(np.diff(radius) <= 0)
    end = int(rising[0]) + 1 if len(rising) else len(theta)
    reach = np.flatnonzero(radius[:end] >= r_max)
    return float(theta[reach[0]] if len(reach) else theta[end - 1])


def fit_equidistant(model) -> CameraCalibration:
    """Return the equidistant CameraInfo calibration of a devkit FThetaCameraModel.

    r(theta) ~ a1 theta + a3 theta^3 + ... + a9 theta^9 is linear in a; f = a1, k_i = a_2i+1 / f.
    """
    cx, cy = (float(v) for v in model.principal_point)
    theta_max = _image_angle(model)
    theta = np.linspace(0.0, theta_max, FIT_SAMPLES)
    radius = model.th2r(theta)
    basis = np.stack([theta ** p for p in (1, 3, 5, 7, 9)], axis=1)
    coeffs, *_ = np.linalg.lstsq(basis, radius, rcond=None)
    focal = float(coeffs[0])
    if not focal > 0:
        raise ValueError(f'f-theta polynomial gives no positive focal length: {model.th2r}')
    error = float(np.max(np.abs(basis @ coeffs - radius)))
    k = (focal, 0.0, cx, 0.0, focal, cy, 0.0, 0.0, 1.0)
    p = (focal, 0.0, cx, 0.0, 0.0, focal, cy, 0.0, 0.0, 0.0, 1.0, 0.0)
    return CameraCalibration(int(model.width), int(model.height), k,
                             tuple(float(c) / focal for c in coeffs[1:]), p, error, theta_max)


def sensor_pose(transform) -> Tuple[np.ndarray, np.ndarray]:
    """Return (translation (3,), quaternion xyzw (4,)) of a scipy RigidTransform."""
    return (np.asarray(transform.translation, dtype=np.float64).reshape(3),
            np.asarray(transform.rotation.as_quat(), dtype=np.float64).reshape(4))


def overlay_extrinsics(translation: np.ndarray, quat_xyzw: np.ndarray) -> Tuple[float, ...]:
    """Return a camera pose as runtime.cameras.CameraSpec extrinsics (x, y, z, roll, pitch, yaw).

    CameraSpec rotates a body-aligned frame B and renames its axes into the optical frame, so
    R_B = R_optical @ _BODY_TO_OPTICAL; roll, pitch, yaw are R_B's fixed-axis angles.
    """
    body = quat_to_matrix(quat_xyzw) @ _BODY_TO_OPTICAL
    pitch = math.asin(max(-1.0, min(1.0, -body[2, 0])))
    roll, yaw = math.atan2(body[2, 1], body[2, 2]), math.atan2(body[1, 0], body[0, 0])
    return tuple(float(v) + 0.0 for v in (*translation, roll, pitch, yaw))  # no -0.0


@dataclasses.dataclass(frozen=True)
class OdometryArrays:
    """Odometry per egomotion sample, arrays over the N samples in time order.

    stamps_us (N,) clip time, positions (N, 3), quats (N, 4) x, y, z, w; linear and angular
    (N, 3) body-frame velocity; velocity_frame: the frame the dataset's velocity was found in.
    """

    stamps_us: np.ndarray
    positions: np.ndarray
    quats: np.ndarray
    linear: np.ndarray
    angular: np.ndarray
    velocity_frame: str


def odometry_arrays(df) -> OdometryArrays:
    """Return the odometry of an egomotion DataFrame sorted by time (>= 2 samples)."""
    stamps = df['timestamp'].to_numpy(np.int64)
    positions = df[['x', 'y', 'z']].to_numpy(np.float64)
    quats = df[['qx', 'qy', 'qz', 'qw']].to_numpy(np.float64)
    velocity = df[['vx', 'vy', 'vz']].to_numpy(np.float64)
    rotations = quat_to_matrix(quats)
    frame = velocity_frame(positions, rotations, velocity)
    if frame == 'world':
        velocity = np.einsum('nji,nj->ni', rotations, velocity)  # R^T v
    return OdometryArrays(stamps, positions, quats, velocity,
                          body_rates(stamps / 1e6, rotations), frame)


def body_rates(seconds: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Return body-frame angular velocity (N, 3) [rad/s] of orientations (N, 3, 3) at times (N,).

    Central differences: log(R_{i-1}^T R_{i+1}) / (t_{i+1} - t_{i-1}); one-sided at the ends.
    """
    before = np.concatenate([[0], np.arange(len(seconds) - 1)])
    after = np.concatenate([np.arange(1, len(seconds)), [len(seconds) - 1]])
    relative = np.einsum('nji,njk->nik', rotations[before], rotations[after])
    return _log_map(relative) / (seconds[after] - seconds[before])[:, None]


def _log_map(rotations: np.ndarray) -> np.ndarray:
    """Return rotation vectors (N, 3) of rotation matrices (N, 3, 3) (angles below pi)."""
    trace = np.einsum('nii->n', rotations)
    angle = np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0))
    axis = np.stack([rotations[:, 2, 1] - rotations[:, 1, 2],
                     rotations[:, 0, 2] - rotations[:, 2, 0],
                     rotations[:, 1, 0] - rotations[:, 0, 1]], axis=1)
    sin = np.sin(angle)
    scale = np.where(sin > 1e-9, angle / (2.0 * np.where(sin > 1e-9, sin, 1.0)), 0.5)
    return axis * scale[:, None]


def velocity_frame(positions: np.ndarray, rotations: np.ndarray, velocity: np.ndarray) -> str:
    """Return 'world' or 'body': which frame makes the velocity point along the path."""
    step = np.diff(positions, axis=0)
    moving = np.linalg.norm(step, axis=1) > 1e-3
    if not np.any(moving):
        return 'world'  # standing still: nothing to tell them apart; the documented frame
    v = velocity[:-1][moving]
    world = _alignment(v, step[moving])
    body_step = np.einsum('nji,nj->ni', rotations[:-1][moving], step[moving])
    return 'world' if world >= _alignment(v, body_step) else 'body'


def _alignment(a: np.ndarray, b: np.ndarray) -> float:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    valid = norms > 1e-9
    if not np.any(valid):
        return -1.0
    return float(np.median(np.sum(a[valid] * b[valid], axis=1) / norms[valid]))
