"""One cycle result (runtime.types.CycleResult) plus ground truth into a KeyframeRecord."""
from typing import Optional

import cv2
import numpy as np

from ar1_ros.evaluation.records import KeyframeRecord
from ar1_ros.runtime.config import RuntimeConfig
from ar1_ros.runtime.overlay import calibration_mismatch, draw_overlay
from ar1_ros.runtime.presentation import parse_decision, wrap_text
from ar1_ros.runtime.types import CycleResult

FRONT_CAMERAS = ('camera_front_wide_120fov', 'camera_front_tele_30fov')


def _status(result: CycleResult):
    if result.output is None:
        return 'failed', result.error or 'unknown failure'
    if result.plan_index is None:
        return 'rejected', '; '.join(r for v in result.verdicts for r in v.reasons[:1])
    return 'ok', ''


def _camera_name(result: CycleResult, preferred: str) -> str:
    names = result.observation.camera_names
    for name in (preferred,) + FRONT_CAMERAS:
        if name in names:
            return name
    return names[0]


def camera_picture(result: CycleResult, runtime: RuntimeConfig, preferred: str,
                   width: int, sample: Optional[int]):
    """Return (rgb (h, width, 3) uint8 or None, note): the front frame at t0, plan drawn.

    The path is drawn with the camera's configured calibration (the node's overlay code); an
    uncalibrated camera is shown without it, and the note says so.
    """
    obs = result.observation
    name = _camera_name(result, preferred)
    frame = obs.frames[obs.camera_names.index(name)][-1]
    try:
        rgb = frame.rgb()
    except Exception as exc:  # noqa: BLE001 - the picture is decoration; the cycle decoded it
        return None, f'{name}: cannot decode ({exc})'
    spec = runtime.camera(name)
    note = f'{name} at t0'
    mismatch = calibration_mismatch(spec, rgb.shape[1], rgb.shape[0])
    if sample is not None and not mismatch:
        text = wrap_text(result.output.reasoning[sample], 56, 4)
        rgb = draw_overlay(rgb, result.output.trajectory_xyz[sample], spec, text)
        note += ', plan projected with the configured calibration'
    elif sample is not None:
        note += f' ({mismatch}): path not drawn'
    scale = width / rgb.shape[1]
    if scale < 1:
        rgb = cv2.resize(rgb, (width, max(int(round(rgb.shape[0] * scale)), 1)),
                         interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb), note


def make_record(bag: str, result: CycleResult, runtime: RuntimeConfig,
                preferred_camera: str, camera_width: int) -> KeyframeRecord:
    """Return the KeyframeRecord of `result` (ground truth and metrics are attached later)."""
    obs, out = result.observation, result.output
    status, detail = _status(result)
    record = KeyframeRecord(bag=bag, t0_ns=obs.t0_ns, status=status, detail=detail,
                            history_xyz=obs.history.xyz, speed=obs.history.speed,
                            timings=dict(result.timings))
    sample = None
    if out is not None:
        sample = result.plan_index if result.plan_index is not None else 0
        record.pred_xyz, record.pred_rot = out.trajectory_xyz, out.trajectory_rot
        record.valid = tuple(bool(v.ok) for v in result.verdicts)
        record.plan_index, record.dt = result.plan_index, float(out.dt)
        record.reasoning = tuple(out.reasoning)
        record.decision = parse_decision(out.reasoning[sample])
    record.camera_rgb, record.camera_note = camera_picture(result, runtime, preferred_camera,
                                                           camera_width, sample)
    return record
