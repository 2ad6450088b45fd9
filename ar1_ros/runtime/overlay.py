"""Draw a plan and its reasoning onto a camera image (pinhole projection, no lens distortion).

Camera convention (see cameras.CameraSpec): extrinsics (x, y, z, roll, pitch, yaw) place a
body-aligned frame B (x forward, y left, z up) in the ego frame with rotation
Rz(yaw) Ry(pitch) Rx(roll); the camera's optical frame O (z forward, x right, y down) is B
with its axes renamed: x_O = -y_B, y_O = -z_B, z_O = x_B. All-zero angles therefore mean a
camera looking straight ahead along the ego x axis.

The projection ignores distortion: on wide-angle cameras the drawn path is an approximation,
good for a glance at what the plan does, not for measuring it.
"""
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from ar1_ros.runtime.cameras import CameraSpec
from ar1_ros.runtime.rotations import rpy_to_matrix

# Body-aligned axes -> optical axes (rows: x_O = -y_B, y_O = -z_B, z_O = x_B).
BODY_TO_OPTICAL = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
# Points closer than this in front of the camera are treated as behind it: they would project
# to enormous pixel coordinates.
NEAR_M = 0.1
# OpenCV draws with int32 pixel coordinates; far off-image ends are clamped to this range.
_PIXEL_LIMIT = 1e6
_PATH_RGB = (0, 255, 80)
_TEXT_RGB = (255, 255, 255)
_BOX_RGB = (0, 0, 0)
_BOX_ALPHA = 0.6


def camera_from_ego(extrinsics: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """Return (R (3, 3), t (3,)) with p_optical = R @ p_ego + t for a camera's extrinsics.

    extrinsics: (x, y, z, roll, pitch, yaw) of the camera in the ego frame [m, rad], in the
    convention of the module docstring.
    """
    x, y, z, roll, pitch, yaw = (float(v) for v in extrinsics)
    rotation = BODY_TO_OPTICAL @ rpy_to_matrix(roll, pitch, yaw).T
    return rotation, -rotation @ np.array([x, y, z])


def _calibration(spec: CameraSpec) -> Tuple[np.ndarray, np.ndarray, Tuple[float, ...]]:
    """Return (R, t, (fx, fy, cx, cy)) of a calibrated camera; ValueError otherwise."""
    if not spec.calibrated:
        raise ValueError(f'camera {spec.name} has no intrinsics/extrinsics: cannot project')
    rotation, translation = camera_from_ego(spec.extrinsics)
    return rotation, translation, tuple(float(v) for v in spec.intrinsics)


def calibration_mismatch(spec: CameraSpec, width: int, height: int) -> str:
    """Return why `spec` cannot project into a width x height [px] image; '' when it can.

    Uncalibrated, or a principal point outside the image: intrinsics calibrated for another
    resolution put a drawn path off the picture or in the wrong place, without any error.
    """
    if not spec.calibrated:
        return f'camera {spec.name} has no intrinsics/extrinsics'
    cx, cy = (float(v) for v in spec.intrinsics[2:4])
    if 0.0 < cx < width and 0.0 < cy < height:
        return ''
    return (f'camera {spec.name}: principal point ({cx:g}, {cy:g}) outside the {width}x{height}'
            ' image: the intrinsics are for another resolution')


def _pixels(cam: np.ndarray, intrinsics: Tuple[float, ...]) -> np.ndarray:
    """Return (N, 2) pixel coordinates (u, v) of optical-frame points (N, 3) with z > 0."""
    fx, fy, cx, cy = intrinsics
    return np.stack([fx * cam[:, 0] / cam[:, 2] + cx, fy * cam[:, 1] / cam[:, 2] + cy], axis=-1)


def project(points_ego: np.ndarray, spec: CameraSpec) -> Tuple[np.ndarray, np.ndarray]:
    """Project ego-frame points (N, 3) [m] into the image of camera `spec`.

    Returns uv (N, 2) float64 pixels (u right, v down; NaN where invisible) and visible (N,)
    bool: the point lies at least NEAR_M in front of the camera (it may still be outside the
    image). Raises ValueError when the camera is not calibrated.
    """
    rotation, translation, intrinsics = _calibration(spec)
    cam = np.asarray(points_ego, dtype=np.float64).reshape(-1, 3) @ rotation.T + translation
    visible = cam[:, 2] >= NEAR_M
    uv = np.full((len(cam), 2), np.nan)
    uv[visible] = _pixels(cam[visible], intrinsics)
    return uv, visible


def _clipped_segments(cam: np.ndarray) -> np.ndarray:
    """Return (M, 2, 3) segments of the polyline cam (N, 3) cut to the part with z >= NEAR_M."""
    start, end = cam[:-1], cam[1:]
    keep = (start[:, 2] >= NEAR_M) | (end[:, 2] >= NEAR_M)
    start, end = start[keep].copy(), end[keep].copy()
    for a, b in ((start, end), (end, start)):
        behind = a[:, 2] < NEAR_M
        # Move the end that is behind along the segment to the near plane.
        alpha = (NEAR_M - a[behind, 2]) / (b[behind, 2] - a[behind, 2])
        a[behind] += alpha[:, None] * (b[behind] - a[behind])
    return np.stack([start, end], axis=1)


def _draw_path(out: np.ndarray, xyz: np.ndarray, spec: CameraSpec) -> None:
    """Draw the ground track of xyz (N, 3) (z = 0, from the ego origin) into `out` in place."""
    rotation, translation, intrinsics = _calibration(spec)
    ground = np.concatenate([np.zeros((1, 3)), np.asarray(xyz, dtype=np.float64)[:, :3]])
    ground[:, 2] = 0.0
    ground = ground[np.isfinite(ground).all(axis=1)]
    segments = _clipped_segments(ground @ rotation.T + translation)
    if not len(segments):
        return
    uv = _pixels(segments.reshape(-1, 3), intrinsics).reshape(-1, 2, 2)
    uv = np.round(np.clip(uv, -_PIXEL_LIMIT, _PIXEL_LIMIT)).astype(np.int32)
    thickness = max(2, out.shape[1] // 320)
    cv2.polylines(out, list(uv), isClosed=False, color=_PATH_RGB, thickness=thickness,
                  lineType=cv2.LINE_AA)


def _draw_text(out: np.ndarray, lines: List[str]) -> None:
    """Draw `lines` in a translucent dark box at the top left of `out` in place."""
    lines = [line.encode('ascii', 'replace').decode('ascii') for line in lines if line]
    if not lines:
        return
    scale = max(0.4, out.shape[0] / 1080 * 0.8)
    thickness = max(1, round(scale * 1.5))
    font = cv2.FONT_HERSHEY_SIMPLEX
    (_, text_h), baseline = cv2.getTextSize('Ag', font, scale, thickness)
    pitch, margin = text_h + baseline + 4, 6
    width = max(cv2.getTextSize(line, font, scale, thickness)[0][0] for line in lines)
    box_w = min(out.shape[1], width + 2 * margin)
    box_h = min(out.shape[0], pitch * len(lines) + 2 * margin)
    region = out[:box_h, :box_w]
    region[:] = (region * (1 - _BOX_ALPHA) + np.array(_BOX_RGB) * _BOX_ALPHA).astype(np.uint8)
    for i, line in enumerate(lines):
        origin = (margin, margin + text_h + i * pitch)
        cv2.putText(out, line, origin, font, scale, _TEXT_RGB, thickness, cv2.LINE_AA)


def draw_overlay(rgb: np.ndarray, xyz: np.ndarray, spec: CameraSpec,
                 text_lines: Sequence[str]) -> np.ndarray:
    """Return a copy of rgb (H, W, 3) uint8 with the plan and the text drawn on it.

    xyz (N, 3): the plan in the ego frame at t0, drawn on the ego ground plane (z = 0) as a
    polyline from the ego origin; text_lines: already wrapped lines (non-ASCII shown as '?'),
    drawn top left. spec must be calibrated (ValueError otherwise), for the image as received:
    when its principal point lies outside the image (calibration_mismatch), the path is not
    drawn and the first text lines say so, instead of a path drawn off the picture unnoticed.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'draw_overlay needs (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}')
    _calibration(spec)
    out = np.array(rgb, order='C', copy=True)
    cx, cy = (float(v) for v in spec.intrinsics[2:4])
    if calibration_mismatch(spec, out.shape[1], out.shape[0]):
        text_lines = [f'PATH NOT DRAWN: {spec.name} intrinsics (cx {cx:g}, cy {cy:g})',
                      f'are for another resolution than {out.shape[1]}x{out.shape[0]}',
                      *text_lines]
    else:
        _draw_path(out, xyz, spec)
    _draw_text(out, list(text_lines))
    return out
