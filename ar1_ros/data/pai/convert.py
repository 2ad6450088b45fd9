"""One PhysicalAI-AV clip into one rosbag2 bag with ar1_ros's topic conventions.

Topics (config/ar1.yaml's defaults, so `ar1 run` / `ar1 eval` read the bag unchanged):
/sensing/camera/<id>/image_raw/compressed (JPEG) and /sensing/camera/<id>/camera_info per
frame, /localization/kinematic_state (Odometry, odom -> base_link, twist in the body frame) per
egomotion sample, and /tf_static (base_link -> camera_<id>) once, first. Stamps are `epoch_s`
plus the clip time; log time = stamp; messages are written in time order. Each camera's video
is decoded in a thread of its own a few frames ahead, so memory does not grow with the clip.
A bag is written under a temporary name and moved into place only when complete.
"""
import dataclasses
import heapq
import json
from pathlib import Path
import shutil
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ar1_ros.data.bags import STORAGES, BagError, BagWriter
from ar1_ros.data.pai import messages as pai_msgs
from ar1_ros.data.pai.geometry import (
    fit_equidistant,
    odometry_arrays,
    overlay_extrinsics,
    sensor_pose,
)
from ar1_ros.data.pai.snapshot import PaiError, PaiSnapshot
from ar1_ros.data.pai.video import Prefetch, jpeg_frames, keep_mask
from ar1_ros.runtime.cameras import DEFAULT_CAMERAS

CAMERA_IDS = {
    'camera_cross_left_120fov': 'cross_left', 'camera_front_wide_120fov': 'front_wide',
    'camera_cross_right_120fov': 'cross_right', 'camera_front_tele_30fov': 'front_tele',
    'camera_rear_left_70fov': 'rear_left', 'camera_rear_right_70fov': 'rear_right',
    'camera_rear_tele_30fov': 'rear_tele',
}
AR1_CAMERAS = DEFAULT_CAMERAS
DEFAULT_EPOCH_S = 1_700_000_000.0  # 2023-11-14T22:13:20Z: any non-zero absolute time works
FIT_WARN_PX = 1.0  # a CameraInfo fit worse than this is called out in the summary


@dataclasses.dataclass(frozen=True)
class ConvertOptions:
    """cameras (PAI names), camera_hz (0: every frame), JPEG quality, epoch [s], storage."""

    cameras: Tuple[str, ...] = AR1_CAMERAS
    camera_hz: float = 0.0
    jpeg_quality: int = 90
    epoch_s: float = DEFAULT_EPOCH_S
    storage: str = 'mcap'
    overwrite: bool = False

    def __post_init__(self):
        unknown = sorted(set(self.cameras) - set(CAMERA_IDS))
        if unknown or not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f'cameras must be distinct PAI camera names, got {unknown or "none"}'
                             f'; known: {list(CAMERA_IDS)}')
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f'JPEG quality must be 1..100, got {self.jpeg_quality}')
        if not self.camera_hz >= 0 or not self.epoch_s > 0:
            raise ValueError('camera_hz must be >= 0 and epoch_s > 0')
        if self.storage not in STORAGES:
            raise ValueError(f'storage must be one of {sorted(STORAGES)}, got {self.storage!r}')


@dataclasses.dataclass
class ClipSummary:
    """What a conversion wrote; stored as `<out>/<clip_id>.json`.

    cameras: per PAI camera name, its id, frames written, first/last clip time [s], the
    CameraInfo fit (error px, angle covered deg) and calibration for config/ar1.yaml's overlay
    (`intrinsics` fx, fy, cx, cy; `extrinsics` x, y, z, roll, pitch, yaw).
    """

    clip_id: str
    bag: str
    epoch_s: float
    source: str = ''  # the dataset tree read (a hub cache's snapshot folder names its commit)
    cameras: Dict[str, dict] = dataclasses.field(default_factory=dict)
    odometry: int = 0
    span_s: Tuple[float, float] = (0.0, 0.0)
    velocity_frame: str = ''
    notes: List[str] = dataclasses.field(default_factory=list)

    @property
    def worst_fit_px(self) -> float:
        """Return the largest CameraInfo fit error over the cameras [px]."""
        return max((c['fit_error_px'] for c in self.cameras.values()), default=0.0)


@dataclasses.dataclass
class _Camera:
    """One camera's inputs: calibration, pose in the rig, video, timestamps, kept frames."""

    calibration: object
    pose: Tuple[np.ndarray, np.ndarray]
    video: bytes
    stamps_us: np.ndarray
    keep: np.ndarray


def _load(snapshot: PaiSnapshot, clip_id: str, options: ConvertOptions):
    """Return (odometry arrays, {camera name: _Camera}); PaiError on any missing piece."""
    odometry = odometry_arrays(snapshot.egomotion(clip_id))
    intrinsics, extrinsics = snapshot.intrinsics(clip_id), snapshot.extrinsics(clip_id)
    cameras = {}
    for name in options.cameras:
        if name not in intrinsics.camera_models or name not in extrinsics.sensor_poses:
            raise PaiError(f'clip {clip_id}: no calibration for {name}')
        try:
            calibration = fit_equidistant(intrinsics.camera_models[name])
        except ValueError as exc:
            raise PaiError(f'clip {clip_id}: {name}: {exc}') from exc
        video, stamps = snapshot.camera(clip_id, name)
        cameras[name] = _Camera(calibration, sensor_pose(extrinsics.sensor_poses[name]),
                                video, stamps, keep_mask(stamps, options.camera_hz))
    return odometry, cameras


def _summary(clip_id: str, bag: Path, options: ConvertOptions, odometry, cameras) -> ClipSummary:
    summary = ClipSummary(clip_id, str(bag), options.epoch_s, odometry=len(odometry.stamps_us),
                          velocity_frame=odometry.velocity_frame)
    starts = [odometry.stamps_us[0]] + [c.stamps_us[c.keep][0] for c in cameras.values()]
    ends = [odometry.stamps_us[-1]] + [c.stamps_us[c.keep][-1] for c in cameras.values()]
    summary.span_s = (float(min(starts)) / 1e6, float(max(ends)) / 1e6)
    for name, camera in cameras.items():
        c, kept = camera.calibration, camera.stamps_us[camera.keep]
        summary.cameras[name] = {
            'id': CAMERA_IDS[name], 'frames': 0, 'first_s': kept[0] / 1e6,
            'last_s': kept[-1] / 1e6, 'width': c.width, 'height': c.height,
            'fit_error_px': c.fit_error_px, 'fit_angle_deg': float(np.degrees(c.max_angle_rad)),
            'intrinsics': [c.k[0], c.k[4], c.k[2], c.k[5]],
            'extrinsics': list(overlay_extrinsics(*camera.pose))}
        if c.fit_error_px > FIT_WARN_PX:
            summary.notes.append(
                f'{name}: the equidistant CameraInfo is off the f-theta lens by up to '
                f'{c.fit_error_px:.2f} px (> {FIT_WARN_PX:g} px); use the dataset calibration '
                f'for exact geometry')
    if odometry.velocity_frame != 'world':
        summary.notes.append('egomotion velocity matched the body frame, not the documented '
                             'anchor frame: written as given')
    return summary


def _odometry_events(odometry) -> Iterator[Tuple[int, str, str, int]]:
    for i, t in enumerate(odometry.stamps_us):
        yield int(t), 'odom', '', i


def _write(bag: Path, options: ConvertOptions, odometry, cameras: Dict[str, _Camera],
           summary: ClipSummary, progress: Callable[[int], None]) -> None:
    """Write every message of the clip into a new bag at `bag`, in time order."""
    with BagWriter(bag, options.storage, overwrite=True) as writer:
        out = pai_msgs.ClipWriter(writer, options.epoch_s, {n: CAMERA_IDS[n] for n in cameras})
        first_us = min([int(odometry.stamps_us[0])] + [int(c.stamps_us[c.keep][0])
                                                        for c in cameras.values()])
        out.write_tf_static(first_us, {n: c.pose for n, c in cameras.items()})
        decoders = [Prefetch(jpeg_frames(name, c.video, c.stamps_us, c.keep,
                                         options.jpeg_quality, summary.notes))
                    for name, c in cameras.items()]
        try:
            for t, kind, name, payload in heapq.merge(
                    _odometry_events(odometry), *decoders, key=lambda e: (e[0], e[1])):
                if kind == 'odom':
                    out.write_odometry(odometry, payload)
                else:
                    out.write_camera(t, name, payload, cameras[name].calibration)
                    summary.cameras[name]['frames'] += 1
                progress(1)
        finally:
            for decoder in decoders:
                decoder.close()


def convert_clip(snapshot: PaiSnapshot, clip_id: str, out_dir, options: ConvertOptions,
                 progress_factory: Optional[Callable] = None) -> ClipSummary:
    """Convert `clip_id` into the bag `out_dir/<clip_id>` plus `out_dir/<clip_id>.json`.

    progress_factory(clip_id, total messages) returns a callable taking a count, or is None.
    Nothing is left at `out_dir/<clip_id>` when the conversion fails.
    """
    out_dir = Path(out_dir)
    bag = out_dir / clip_id
    if bag.exists() and not options.overwrite:
        raise PaiError(f'{bag} exists; choose another --out or pass --overwrite')
    odometry, cameras = _load(snapshot, clip_id, options)
    summary = _summary(clip_id, bag, options, odometry, cameras)
    summary.source = str(snapshot.root)
    if options.epoch_s + summary.span_s[0] <= 0:
        raise PaiError(f'epoch {options.epoch_s} s is too small: the clip starts at '
                       f'{summary.span_s[0]:.3f} s and ROS stamps must be positive')
    total = summary.odometry + sum(int(c.keep.sum()) for c in cameras.values())
    progress = progress_factory(clip_id, total) if progress_factory else (lambda n: None)
    staging = out_dir / f'.{clip_id}.partial'
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _write(staging / clip_id, options, odometry, cameras, summary, progress)
        shutil.rmtree(bag, ignore_errors=True)
        (staging / clip_id).rename(bag)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    (out_dir / f'{clip_id}.json').write_text(json.dumps(dataclasses.asdict(summary), indent=1))
    return summary


def convert_clips(snapshot: PaiSnapshot, clip_ids: Sequence[str], out_dir,
                  options: ConvertOptions, progress_factory: Optional[Callable] = None):
    """Convert each clip; return (summaries, {clip_id: error}): a bad clip does not stop it."""
    summaries, errors = [], {}
    for clip_id in clip_ids:
        try:
            summaries.append(convert_clip(snapshot, clip_id, out_dir, options,
                                          progress_factory))
        except (PaiError, BagError, OSError, ValueError, KeyError) as exc:
            errors[clip_id] = str(exc)
    return summaries, errors
