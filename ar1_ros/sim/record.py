"""Demo-world episodes as rosbag2 bags with ar1_ros's topic conventions, plus their CoC labels.

One episode = one scenario and seed driven by the expert. Its bag holds what a vehicle would
record, on the default topics of config/ar1.yaml: the four AR1 cameras as JPEG
CompressedImage at camera_hz with CameraInfo, Odometry (twist in base_link) at the world rate
(20 Hz) and /tf_static with the camera mounts. Header stamps equal log times and run from
`epoch_s`, so a bag replays like a recording.

Labels (the JSONL schema of data/labels.py) are the world's privileged Chain-of-Causation every
label_every_s, stamped on camera frames, from the moment 1.6 s of history exist until 6.4 s of
future remain; each also carries the meta-action of the future actually driven
(data/meta_actions.py) and whether the label's decision agrees with it.
"""
import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from ar1_ros.data.bags import BagWriter
from ar1_ros.data.labels import CocLabel
from ar1_ros.data.meta_actions import compatible, meta_action_from_path
from ar1_ros.data.pai import geometry
from ar1_ros.data.pai.messages import ClipWriter
from ar1_ros.runtime.overlay import BODY_TO_OPTICAL
from ar1_ros.runtime.rotations import matrix_to_quat, rpy_to_matrix
from ar1_ros.sim.render import Renderer
from ar1_ros.sim.rig import RigCamera
from ar1_ros.sim.scene import PrivilegedLabel, Scene, World

HISTORY_S = 1.6
HORIZON_S = 6.4
FUTURE_DT_S = 0.1


@dataclasses.dataclass(frozen=True)
class RecordSettings:
    """How an episode is recorded.

    camera_hz: camera rate [Hz]; label_every_s: label period [s]; jpeg_quality 1..100;
    storage: 'mcap' or 'sqlite3'; epoch_s: the ROS time [s] of the episode start.
    """

    camera_hz: float = 10.0
    label_every_s: float = 0.5
    jpeg_quality: int = 90
    storage: str = 'mcap'
    epoch_s: float = 1_700_000_000.0


@dataclasses.dataclass
class Drive:
    """What the expert did in one episode: ego poses per world step, frames, labels, faults.

    poses (N, 4): t [s], x, y [m], yaw [rad] at every step; speeds (N,) [m/s]; frames: (step,
    {camera_id: JPEG bytes}); labels: (step, PrivilegedLabel); collided / off_road: ever.
    """

    poses: np.ndarray
    speeds: np.ndarray
    frames: List[Tuple[int, Dict[str, bytes]]]
    labels: List[Tuple[int, PrivilegedLabel]]
    collided: bool = False
    off_road: bool = False


def encode_frames(renderers: Dict[str, Renderer], scene: Scene, quality: int) -> Dict[str, bytes]:
    """Render every camera of `scene` and JPEG-encode it: {camera_id: JPEG bytes}."""
    frames = {}
    for camera_id, renderer in renderers.items():
        bgr = cv2.cvtColor(renderer.render(scene), cv2.COLOR_RGB2BGR)
        ok, data = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise RuntimeError(f'JPEG encoding failed for camera {camera_id}')
        frames[camera_id] = data.tobytes()
    return frames


def renderers_for(world: World, rig: Sequence[RigCamera]) -> Dict[str, Renderer]:
    """Return one Renderer per rig camera for this world's road, keyed by camera id."""
    return {camera.camera_id: Renderer(world.geometry, camera) for camera in rig}


def steps_per(period_s: float, dt_s: float, name: str) -> int:
    """Return the world steps in one `name` period; ValueError unless it is whole."""
    steps = period_s / dt_s
    if steps < 1 or abs(steps - round(steps)) > 1e-6:
        raise ValueError(f'{name} period {period_s} s must be a multiple of the world step '
                         f'{dt_s} s')
    return int(round(steps))


def drive_expert(world: World, rig: Sequence[RigCamera], settings: RecordSettings) -> Drive:
    """Run `world` to its end under the expert; render frames and take labels on their grids."""
    camera_every = steps_per(1.0 / settings.camera_hz, world.dt_s, 'camera')
    label_every = steps_per(settings.label_every_s, world.dt_s, 'label')
    renderers = renderers_for(world, rig)
    poses, speeds, frames, labels = [], [], [], []
    collided = off_road = False
    step = 0
    while True:
        scene = world.scene()
        poses.append((step * world.dt_s, scene.ego.x, scene.ego.y, scene.ego.yaw))
        speeds.append(scene.ego.speed)
        if step % camera_every == 0:
            frames.append((step, encode_frames(renderers, scene, settings.jpeg_quality)))
        if step % label_every == 0:
            labels.append((step, world.label()))
        if world.done:
            break
        status = world.step(world.expert_control())
        collided, off_road = collided or status.collided, off_road or status.off_road
        step += 1
    return Drive(np.array(poses), np.array(speeds), frames, labels, collided, off_road)


def future_in_ego_frame(poses: np.ndarray, step: int, dt_s: float) -> np.ndarray:
    """Return the (64, 3) positions at t0 + k * 0.1 s, k = 1..64, in the t0 ego frame.

    poses: (N, 4) t, x, y, yaw per world step; step: the t0 step. Needs 6.4 s after it.
    """
    stride = steps_per(FUTURE_DT_S, dt_s, 'future')
    idx = step + stride * np.arange(1, int(round(HORIZON_S / FUTURE_DT_S)) + 1)
    x0, y0, yaw0 = poses[step, 1:]
    c, s = np.cos(yaw0), np.sin(yaw0)
    dx, dy = poses[idx, 1] - x0, poses[idx, 2] - y0
    return np.stack([c * dx + s * dy, -s * dx + c * dy, np.zeros(len(idx))], axis=-1)


def episode_labels(drive: Drive, bag: str, dt_s: float, settings: RecordSettings,
                   notes: str) -> List[CocLabel]:
    """Return the CocLabels of a drive that have 1.6 s of history and 6.4 s of future."""
    last_t = drive.poses[-1, 0]
    out = []
    for step, label in drive.labels:
        t0 = step * dt_s
        if t0 < HISTORY_S - 1e-9 or t0 + HORIZON_S > last_t + 1e-9:
            continue
        meta = meta_action_from_path(future_in_ego_frame(drive.poses, step, dt_s),
                                     float(drive.speeds[step]))
        out.append(CocLabel(
            bag=bag, t0_ns=stamp_ns(settings.epoch_s, t0), decision=label.decision,
            coc=label.coc, critical_components=tuple(label.critical_components),
            provenance='rule', meta_action=dataclasses.asdict(meta),
            consistent=compatible(label.decision, meta), notes=notes))
    return out


def stamp_ns(epoch_s: float, t_s: float) -> int:
    """Return the ROS time [ns] of episode time t_s (both stamps and log times use it)."""
    return int(round(epoch_s * 1e9)) + int(round(t_s * 1e9))


def _odometry(drive: Drive, dt_s: float) -> 'geometry.OdometryArrays':
    """Odometry of every step: pose in odom, body-frame twist (yaw rate by central difference)."""
    t, x, y, yaw = drive.poses.T
    yaw_rate = np.gradient(np.unwrap(yaw), dt_s) if len(yaw) > 1 else np.zeros_like(yaw)
    rotations = np.stack([rpy_to_matrix(0.0, 0.0, a) for a in yaw])
    n = len(t)
    return geometry.OdometryArrays(
        stamps_us=np.round(t * 1e6).astype(np.int64),
        positions=np.stack([x, y, np.zeros(n)], axis=-1),
        quats=np.stack([matrix_to_quat(r) for r in rotations]),
        linear=np.stack([drive.speeds, np.zeros(n), np.zeros(n)], axis=-1),
        angular=np.stack([np.zeros(n), np.zeros(n), yaw_rate], axis=-1), velocity_frame='body')


def _mounts(rig: Sequence[RigCamera]) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """Return base_link -> camera_<id> poses by AR1 name, of the optical frames.

    Optical (z out of the lens, x right, y down) is the frame ROS images are in, and the one
    the PAI conversion writes.
    """
    poses = {}
    for camera in rig:
        x, y, z, roll, pitch, yaw = camera.extrinsics
        optical = rpy_to_matrix(roll, pitch, yaw) @ BODY_TO_OPTICAL.T
        poses[camera.ar1_name] = (np.array([x, y, z]), matrix_to_quat(optical))
    return poses


def write_bag(path: Path, drive: Drive, rig: Sequence[RigCamera], dt_s: float,
              settings: RecordSettings) -> None:
    """Write a drive's messages to a new bag at `path` (replaced if it exists)."""
    by_id = {camera.camera_id: camera for camera in rig}
    odometry = _odometry(drive, dt_s)
    with BagWriter(path, settings.storage, overwrite=True) as writer:
        out = ClipWriter(writer, settings.epoch_s, {c.ar1_name: c.camera_id for c in rig})
        out.write_tf_static(0, _mounts(rig))
        frames = iter(drive.frames)
        pending = next(frames, None)
        for i in range(len(odometry.stamps_us)):
            while pending is not None and pending[0] <= i:
                t_us = int(round(pending[0] * dt_s * 1e6))
                for camera_id, jpeg in pending[1].items():
                    camera = by_id[camera_id]
                    out.write_camera(t_us, camera.ar1_name, jpeg,
                                     SimpleNamespace(**camera.camera_info()))
                pending = next(frames, None)
            out.write_odometry(odometry, i)
