"""One PhysicalAI-AV clip into one rosbag2 bag with ar1_ros's topic conventions.

Topics (config/ar1.yaml's defaults, so `ar1 run` / `ar1 eval` read the bag unchanged):
/sensing/camera/<id>/image_raw/compressed (JPEG) and /sensing/camera/<id>/camera_info per
frame, /localization/kinematic_state (Odometry, odom -> base_link, twist in the body frame) per
egomotion sample, and /tf_static (base_link -> camera_<id>). Stamps are `epoch_s` plus the
clip's relative time; log time = stamp. Videos are decoded one frame at a time, in step with
the other streams, so memory does not grow with the clip.
"""
import dataclasses
import heapq
import io
import json
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ar1_ros.data.bags import BagWriter
from ar1_ros.data.pai import messages as pai_msgs
from ar1_ros.data.pai.geometry import fit_equidistant, odometry_arrays, sensor_pose
from ar1_ros.data.pai.snapshot import PaiError, PaiSnapshot

CAMERA_IDS = {
    'camera_cross_left_120fov': 'cross_left', 'camera_front_wide_120fov': 'front_wide',
    'camera_cross_right_120fov': 'cross_right', 'camera_front_tele_30fov': 'front_tele',
    'camera_rear_left_70fov': 'rear_left', 'camera_rear_right_70fov': 'rear_right',
    'camera_rear_tele_30fov': 'rear_tele',
}
AR1_CAMERAS = tuple(list(CAMERA_IDS)[:4])
DEFAULT_EPOCH_S = 1_700_000_000  # 2023-11-14T22:13:20Z: any non-zero absolute time works


@dataclasses.dataclass(frozen=True)
class ConvertOptions:
    """cameras (PAI names), camera_hz (0: every frame), JPEG quality, epoch [s], storage."""

    cameras: Tuple[str, ...] = AR1_CAMERAS
    camera_hz: float = 0.0
    jpeg_quality: int = 90
    epoch_s: float = DEFAULT_EPOCH_S
    storage: str = 'mcap'
    overwrite: bool = False


@dataclasses.dataclass
class ClipSummary:
    """What a conversion wrote."""

    clip_id: str
    bag: str
    frames: Dict[str, int] = dataclasses.field(default_factory=dict)
    odometry: int = 0
    span_s: Tuple[float, float] = (0.0, 0.0)
    fit_error_px: Dict[str, float] = dataclasses.field(default_factory=dict)
    velocity_frame: str = ''
    notes: List[str] = dataclasses.field(default_factory=list)


def camera_topic(camera_id: str) -> str:
    """Return the image topic of a camera id (config/ar1.yaml's convention)."""
    return f'/sensing/camera/{camera_id}/image_raw/compressed'


def _frames(name: str, video: bytes, stamps: np.ndarray, options: ConvertOptions,
            notes: List[str]) -> Iterator[Tuple[int, str, str, bytes]]:
    """Yield (t µs, 'camera', name, JPEG) per kept frame, decoding the mp4 sequentially."""
    import av
    step_us = int(1e6 / options.camera_hz) if options.camera_hz > 0 else 0
    due, index = None, -1
    try:
        with av.open(io.BytesIO(video)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index >= len(stamps):
                    notes.append(f'{name}: video has more frames than timestamps; extra dropped')
                    return
                t = int(stamps[index])
                if due is not None and t < due:
                    continue
                due = t + step_us
                bgr = frame.to_ndarray(format='bgr24')
                ok, jpeg = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY,
                                                      options.jpeg_quality])
                yield t, 'camera', name, jpeg.tobytes()
    except (av.error.FFmpegError, ValueError) as exc:
        raise PaiError(f'{name}: cannot decode the video after frame {index} ({exc})') from exc
    if index + 1 < len(stamps):
        notes.append(f'{name}: {len(stamps)} timestamps but {index + 1} video frames')


def _odometry(arrays) -> Iterator[Tuple[int, str, str, int]]:
    for i, t in enumerate(arrays[0]):
        yield int(t), 'odom', '', i


def convert_clip(snapshot: PaiSnapshot, clip_id: str, out_dir, options: ConvertOptions,
                 progress: Optional[Callable[[int], None]] = None) -> ClipSummary:
    """Convert `clip_id` into the bag `out_dir/<clip_id>`; return what was written."""
    bag = Path(out_dir) / clip_id
    summary = ClipSummary(clip_id, str(bag))
    arrays = odometry_arrays(snapshot.egomotion(clip_id))
    summary.velocity_frame = arrays[5]
    intrinsics, extrinsics = snapshot.intrinsics(clip_id), snapshot.extrinsics(clip_id)
    streams, calibration = [_odometry(arrays)], {}
    for name in options.cameras:
        if name not in intrinsics.camera_models or name not in extrinsics.sensor_poses:
            raise PaiError(f'clip {clip_id}: no calibration for {name}')
        calibration[name] = fit_equidistant(intrinsics.camera_models[name])
        summary.fit_error_px[name] = calibration[name].fit_error_px
        video, stamps = snapshot.camera(clip_id, name)
        streams.append(_frames(name, video, stamps, options, summary.notes))
    with BagWriter(bag, options.storage, overwrite=options.overwrite) as writer:
        out = pai_msgs.ClipWriter(writer, options.epoch_s, {n: CAMERA_IDS[n] for n in
                                                            options.cameras})
        first = int(arrays[0][0]) if len(arrays[0]) else 0
        out.write_tf_static(first, {n: sensor_pose(extrinsics.sensor_poses[n])
                                    for n in options.cameras})
        for t, kind, name, payload in heapq.merge(*streams, key=lambda e: (e[0], e[1])):
            if kind == 'odom':
                out.write_odometry(t, arrays, payload)
                summary.odometry += 1
            else:
                out.write_camera(t, name, payload, calibration[name])
                summary.frames[name] = summary.frames.get(name, 0) + 1
            if progress is not None:
                progress(1)
    summary.span_s = (float(arrays[0][0]) / 1e6, float(arrays[0][-1]) / 1e6)
    (Path(out_dir) / f'{clip_id}.json').write_text(json.dumps(dataclasses.asdict(summary),
                                                              indent=1))
    return summary


def convert_clips(snapshot: PaiSnapshot, clip_ids: Sequence[str], out_dir,
                  options: ConvertOptions, progress_factory=None):
    """Convert each clip; return (summaries, {clip_id: error}) — a bad clip does not stop it."""
    summaries, errors = [], {}
    for clip_id in clip_ids:
        try:
            progress = progress_factory(clip_id) if progress_factory else None
            summaries.append(convert_clip(snapshot, clip_id, out_dir, options, progress))
        except (PaiError, OSError, ValueError, KeyError) as exc:
            errors[clip_id] = str(exc)
    return summaries, errors
