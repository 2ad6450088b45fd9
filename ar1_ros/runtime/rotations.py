"""Rotation helpers in float64 numpy: quaternions (x, y, z, w), matrices, yaw, slerp.

Rotation matrices map body coordinates to the parent frame (columns are the body axes), the
ROS convention for poses; quaternions use the ROS (geometry_msgs) component order x, y, z, w.
"""
import math

import numpy as np


def quat_to_matrix(q_xyzw) -> np.ndarray:
    """Return rotation matrices (..., 3, 3) for quaternions (..., 4) in x, y, z, w order.

    The quaternion is normalised first (odometry often carries slightly denormalised ones);
    a zero-norm or non-finite quaternion raises ValueError, because it encodes no rotation.
    """
    q = np.asarray(q_xyzw, dtype=np.float64)
    if q.shape[-1:] != (4,):
        raise ValueError(f'quaternion must have 4 components (x, y, z, w), got shape {q.shape}')
    if not np.all(np.isfinite(q)):
        raise ValueError(f'quaternion is not finite: {q.tolist()}')
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(norm < 1e-12):
        raise ValueError(f'quaternion has zero norm: {q.tolist()}')
    x, y, z, w = np.moveaxis(q / norm, -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def matrix_to_quat(rotation) -> np.ndarray:
    """Return the unit quaternion (4,) x, y, z, w of a rotation matrix (3, 3), with w >= 0.

    Uses the branch with the largest diagonal term (Shepperd's method) so the result stays
    accurate near 180° rotations.
    """
    m = np.asarray(rotation, dtype=np.float64)
    if m.shape != (3, 3):
        raise ValueError(f'rotation must be (3, 3), got shape {m.shape}')
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    candidates = (trace, m[0, 0], m[1, 1], m[2, 2])
    branch = int(np.argmax(candidates))
    if branch == 0:
        s = 2.0 * math.sqrt(max(1.0 + trace, 0.0))
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    elif branch == 1:
        s = 2.0 * math.sqrt(max(1.0 + m[0, 0] - m[1, 1] - m[2, 2], 0.0))
        q = [s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif branch == 2:
        s = 2.0 * math.sqrt(max(1.0 - m[0, 0] + m[1, 1] - m[2, 2], 0.0))
        q = [(m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(max(1.0 - m[0, 0] - m[1, 1] + m[2, 2], 0.0))
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s]
    q = np.array(q, dtype=np.float64)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def yaw_of(rotation) -> np.ndarray:
    """Return the yaw [rad] (...) of rotations (..., 3, 3): atan2(R[1, 0], R[0, 0])."""
    r = np.asarray(rotation, dtype=np.float64)
    return np.arctan2(r[..., 1, 0], r[..., 0, 0])


def slerp(r0, r1, alpha: float) -> np.ndarray:
    """Interpolate between rotations r0 and r1 (3, 3) along the shortest arc; returns (3, 3).

    alpha = 0 gives r0, alpha = 1 gives r1; the rotation angle grows linearly with alpha, so a
    constant yaw rate is reproduced exactly.
    """
    q0 = matrix_to_quat(r0)
    q1 = matrix_to_quat(r1)
    dot = float(np.dot(q0, q1))
    if dot < 0:
        q1, dot = -q1, -dot
    dot = min(dot, 1.0)
    theta = math.acos(dot)
    if theta < 1e-9:
        q = (1 - alpha) * q0 + alpha * q1
    else:
        q = (math.sin((1 - alpha) * theta) * q0 + math.sin(alpha * theta) * q1) / math.sin(theta)
    return quat_to_matrix(q)


def rot_z(yaw: float) -> np.ndarray:
    """Return the rotation (3, 3) by `yaw` [rad] about the z axis."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rpy_to_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Return Rz(yaw) @ Ry(pitch) @ Rx(roll) (3, 3), the ROS fixed-axis roll-pitch-yaw order."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    return rot_z(yaw) @ ry @ rx
