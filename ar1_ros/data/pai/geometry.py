"""PhysicalAI-AV calibration and egomotion in ROS terms: CameraInfo, TF, body-frame odometry.

Cameras: PAI intrinsics are f-theta polynomials, r(theta) = sum_i fw_poly_i theta^i (pixels from
the principal point against the angle from the optical axis). sensor_msgs/CameraInfo has no
f-theta model, so the nearest standard one is fitted: 'equidistant' (Kannala-Brandt, OpenCV
fisheye) r = f (theta + k1 theta^3 + k2 theta^5 + k3 theta^7 + k4 theta^9), f = fw_poly_1,
k1..k4 by least squares over the angles the image covers. The fit's largest radial error in
pixels is reported with every conversion.
Egomotion: poses of the rig (x forward, y left, z up) in a local world frame; the velocity
columns are taken in that world frame when they point along the driven path (as the devkit's
Transformable.VECTOR marks them) and rotated into the body frame for Odometry's twist.
"""
import dataclasses
from typing import Tuple

import numpy as np

from ar1_ros.runtime.rotations import quat_to_matrix


@dataclasses.dataclass(frozen=True)
class CameraCalibration:
    """CameraInfo fields: width, height, K (9,), D (4,) equidistant, P (12,), fit error [px]."""

    width: int
    height: int
    k: Tuple[float, ...]
    d: Tuple[float, ...]
    p: Tuple[float, ...]
    fit_error_px: float
    distortion_model: str = 'equidistant'


def fit_equidistant(model) -> CameraCalibration:
    """Return the equidistant CameraInfo calibration of a devkit FThetaCameraModel."""
    cx, cy = (float(v) for v in model.principal_point)
    corners = np.array([[0, 0], [model.width, 0], [0, model.height],
                        [model.width, model.height]], dtype=np.float64)
    r_max = float(np.max(np.hypot(corners[:, 0] - cx, corners[:, 1] - cy)))
    theta_max = float(model.r2th(r_max))
    theta = np.linspace(1e-3, max(theta_max, 1e-2), 200)
    radius = model.th2r(theta)
    focal = float(model.th2r.coef[1])
    basis = np.stack([theta ** 3, theta ** 5, theta ** 7, theta ** 9], axis=1)
    coeffs, *_ = np.linalg.lstsq(basis * focal, radius - focal * theta, rcond=None)
    fitted = focal * (theta + basis @ coeffs)
    k = (focal, 0.0, cx, 0.0, focal, cy, 0.0, 0.0, 1.0)
    p = (focal, 0.0, cx, 0.0, 0.0, focal, cy, 0.0, 0.0, 0.0, 1.0, 0.0)
    return CameraCalibration(int(model.width), int(model.height), k,
                             tuple(float(c) for c in coeffs), p,
                             float(np.max(np.abs(fitted - radius))))


def sensor_pose(transform) -> Tuple[np.ndarray, np.ndarray]:
    """Return (translation (3,), quaternion xyzw (4,)) of a scipy RigidTransform."""
    return (np.asarray(transform.translation, dtype=np.float64).reshape(3),
            np.asarray(transform.rotation.as_quat(), dtype=np.float64).reshape(4))


def odometry_arrays(df):
    """Return the odometry arrays of an egomotion DataFrame sorted by time.

    (stamps µs (N,), positions (N, 3), quaternions xyzw (N, 4), body velocity (N, 3),
    yaw rate (N,) rad/s, the frame the velocity columns were found in).
    """
    stamps = df['timestamp'].to_numpy(np.int64)
    positions = df[['x', 'y', 'z']].to_numpy(np.float64)
    quats = df[['qx', 'qy', 'qz', 'qw']].to_numpy(np.float64)
    velocity = df[['vx', 'vy', 'vz']].to_numpy(np.float64)
    rotations = np.stack([quat_to_matrix(q) for q in quats])
    frame = velocity_frame(positions, rotations, velocity)
    if frame == 'world':
        velocity = np.einsum('nji,nj->ni', rotations, velocity)  # R^T v
    yaw = np.unwrap(np.arctan2(rotations[:, 1, 0], rotations[:, 0, 0]))
    seconds = stamps / 1e6
    yaw_rate = np.gradient(yaw, seconds) if len(stamps) > 1 else np.zeros(len(stamps))
    return stamps, positions, quats, velocity, yaw_rate, frame


def velocity_frame(positions: np.ndarray, rotations: np.ndarray, velocity: np.ndarray) -> str:
    """Return 'world' or 'body': which frame makes the velocity point along the path."""
    step = np.diff(positions, axis=0)
    moving = np.linalg.norm(step, axis=1) > 1e-3
    if not np.any(moving):
        return 'body'
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
