"""A tiny synthetic PhysicalAI-AV dataset in the devkit's layout, built at test time (~0.3 MB).

features.csv (feature, directory, chunk_path with {chunk_id}, clip_files_in_zip JSON templates
with {clip_id}; names as the hub's), clip_index.parquet, metadata/feature_presence.parquet and
data_collection.parquet, calibration parquets indexed by (clip_id, camera_name / sensor_name)
and clip_id, an egomotion zip and one zip per camera (mp4 + frame timestamps parquet).
Closed forms to check against: the ego drives an arc (ros.synthetic.arc_pose) from clip time
EGO_START_S, velocity in the anchor frame as the dataset documents it; frame i of camera c is
a flat colour frame_rgb(c, i); frame timestamps jitter by up to 2 ms like real cameras.
"""
import io
import json
import math
import os
from pathlib import Path
import zipfile

import av
import numpy as np
import pandas as pd
from ros.synthetic import arc_pose

CLIP = '0f1e2d3c-0000-4000-8000-000000000001'
REVISION = '0123456789abcdef0123456789abcdef01234567'
CAMERAS = ('camera_cross_left_120fov', 'camera_front_wide_120fov',
           'camera_cross_right_120fov', 'camera_front_tele_30fov')
SPEED, CURVATURE = 10.0, 0.02
EGO_HZ, EGO_START_S, EGO_S = 20, -0.5, 4.5
VIDEO_FPS, VIDEO_FRAMES, VIDEO_START_US = 30, 90, 200_000
SIZE = (64, 96)  # height, width
# f-theta forward polynomials (fw_poly_0..4): a 120-degree lens with even terms, a 30-degree one.
FW_WIDE = (0.0, 46.0, 0.8, -2.0, 0.3)
FW_TELE = (0.0, 180.0, 0.0, 60.0, 0.0)
MOUNTS = {  # x, y, z [m] and yaw [rad] of each camera's optical axis in the rig frame
    'camera_cross_left_120fov': (2.0, 0.9, 1.5, math.radians(60)),
    'camera_front_wide_120fov': (1.8, 0.0, 1.6, 0.0),
    'camera_cross_right_120fov': (2.0, -0.9, 1.5, math.radians(-60)),
    'camera_front_tele_30fov': (1.8, 0.1, 1.6, 0.0),
}


def forward_poly(camera: str):
    return FW_TELE if 'tele' in camera else FW_WIDE


def frame_rgb(camera_index: int, frame: int):
    level = 30 + (7 * frame + 40 * camera_index) % 190
    return level, 255 - level, 60 + 40 * camera_index


def frame_stamps_us() -> np.ndarray:
    i = np.arange(VIDEO_FRAMES)
    jitter = ((i * 7) % 5 - 2) * 1000
    return (VIDEO_START_US + np.round(i * 1e6 / VIDEO_FPS) + jitter).astype(np.int64)


def optical_quat(yaw: float):
    """Return (qx, qy, qz, qw) of an optical frame (z along the yawed rig x, x right, y down)."""
    c, s = math.cos(yaw), math.sin(yaw)
    matrix = np.array([[s, 0.0, c], [-c, 0.0, s], [0.0, -1.0, 0.0]])  # columns: optical axes
    w = math.sqrt(1.0 + np.trace(matrix)) / 2
    return ((matrix[2, 1] - matrix[1, 2]) / (4 * w), (matrix[0, 2] - matrix[2, 0]) / (4 * w),
            (matrix[1, 0] - matrix[0, 1]) / (4 * w), w)


def egomotion_frame() -> pd.DataFrame:
    rows = []
    for i in range(int(EGO_S * EGO_HZ) + 1):
        t = EGO_START_S + i / EGO_HZ
        x, y, yaw = arc_pose(t, SPEED, CURVATURE)
        rows.append({'timestamp': int(round(t * 1e6)), 'x': x, 'y': y, 'z': 0.0, 'qx': 0.0,
                     'qy': 0.0, 'qz': math.sin(yaw / 2), 'qw': math.cos(yaw / 2),
                     'vx': SPEED * math.cos(yaw), 'vy': SPEED * math.sin(yaw), 'vz': 0.0,
                     'ax': 0.0, 'ay': 0.0, 'az': 0.0, 'curvature': CURVATURE})
    return pd.DataFrame(rows)


def _features(cameras) -> pd.DataFrame:
    rows = [(c, 'camera', f'camera/{c}/{c}.chunk_{{chunk_id:04d}}.zip',
             json.dumps({'video': f'{{clip_id}}.{c}.mp4',
                         'frame_timestamps': f'{{clip_id}}.{c}.timestamps.parquet'}))
            for c in cameras]
    rows.append(('egomotion', 'labels', 'labels/egomotion/egomotion.chunk_{chunk_id:04d}.zip',
                 json.dumps({'egomotion': '{clip_id}.egomotion.parquet'})))
    for name in ('camera_intrinsics', 'sensor_extrinsics', 'vehicle_dimensions'):
        rows.append((name, 'calibration',
                     f'calibration/{name}/{name}.chunk_{{chunk_id:04d}}.parquet', None))
    return pd.DataFrame(rows, columns=['feature', 'directory', 'chunk_path',
                                       'clip_files_in_zip'])


def _parquet(df: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    df.to_parquet(buffer)
    return buffer.getvalue()


def _video(camera_index: int) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, 'w', format='mp4') as container:
        stream = container.add_stream('mpeg4', rate=VIDEO_FPS)
        stream.height, stream.width = SIZE
        stream.pix_fmt = 'yuv420p'
        stream.bit_rate = 4_000_000  # near-lossless: decoded colours within a few levels
        for i in range(VIDEO_FRAMES):
            rgb = np.empty(SIZE + (3,), np.uint8)
            rgb[:] = frame_rgb(camera_index, i)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format='rgb24')):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def _calibration(cameras):
    rows, poses = [], []
    for camera in cameras:
        fw = forward_poly(camera)
        theta = np.linspace(0, 1.3 if fw is FW_WIDE else 0.4, 60)
        radius = np.polynomial.polynomial.polyval(theta, fw)
        bw = np.polynomial.polynomial.polyfit(radius, theta, 4)
        rows.append({'width': SIZE[1], 'height': SIZE[0], 'cx': SIZE[1] / 2 + 0.5,
                     'cy': SIZE[0] / 2 - 0.5, **{f'fw_poly_{i}': fw[i] for i in range(5)},
                     **{f'bw_poly_{i}': bw[i] for i in range(5)}})
        x, y, z, yaw = MOUNTS[camera]
        qx, qy, qz, qw = optical_quat(yaw)
        poses.append({'qx': qx, 'qy': qy, 'qz': qz, 'qw': qw, 'x': x, 'y': y, 'z': z})
    index = pd.MultiIndex.from_tuples([(CLIP, c) for c in cameras],
                                      names=['clip_id', 'camera_name'])
    return (pd.DataFrame(rows, index=index),
            pd.DataFrame(poses, index=index.rename(['clip_id', 'sensor_name'])))


def _metadata(root: Path, cameras, absent) -> None:
    clip = pd.Index([CLIP], name='clip_id')
    pd.DataFrame({'chunk': [0]}, index=clip).to_parquet(root / 'clip_index.parquet')
    presence = {f: [f not in absent] for f in _features(cameras)['feature']}
    pd.DataFrame(presence, index=clip).to_parquet(root / 'metadata/feature_presence.parquet')
    pd.DataFrame({'country': ['Germany'], 'hour_of_day': [14]}, index=clip).to_parquet(
        root / 'metadata/data_collection.parquet')


def build_snapshot(root, cameras=CAMERAS, absent=()) -> Path:
    """Write the dataset tree under `root` (cameras in `absent`: marked absent, no files)."""
    root = Path(root)
    (root / 'metadata').mkdir(parents=True)
    _features(cameras).to_csv(root / 'features.csv', index=False)
    _metadata(root, cameras, absent)
    intrinsics, extrinsics = _calibration(cameras)
    dimensions = pd.DataFrame({'length': [4.9], 'width': [1.9], 'height': [1.5],
                               'rear_axle_to_bbox_center': [1.4], 'wheelbase': [2.9],
                               'track_width': [1.6]}, index=pd.Index([CLIP], name='clip_id'))
    for name, df in (('camera_intrinsics', intrinsics), ('sensor_extrinsics', extrinsics),
                     ('vehicle_dimensions', dimensions)):
        (root / 'calibration' / name).mkdir(parents=True)
        df.to_parquet(root / 'calibration' / name / f'{name}.chunk_0000.parquet')
    _zip(root / 'labels/egomotion/egomotion.chunk_0000.zip',
         {f'{CLIP}.egomotion.parquet': _parquet(egomotion_frame())})
    stamps = _parquet(pd.DataFrame({'timestamp': frame_stamps_us()}))
    for camera in (c for c in cameras if c not in absent):
        _zip(root / f'camera/{camera}/{camera}.chunk_0000.zip',
             {f'{CLIP}.{camera}.mp4': _video(CAMERAS.index(camera)),
              f'{CLIP}.{camera}.timestamps.parquet': stamps})
    return root


def hub_cache(tree: Path, cache: Path) -> Path:
    """Make `cache` a hub cache whose refs/main snapshot is `tree` (linked); return `cache`."""
    repo = Path(cache) / 'datasets--nvidia--PhysicalAI-Autonomous-Vehicles'
    (repo / 'snapshots').mkdir(parents=True)
    (repo / 'refs').mkdir()
    (repo / 'refs' / 'main').write_text(REVISION)
    os.symlink(Path(tree).resolve(), repo / 'snapshots' / REVISION)
    return Path(cache)


def read_messages(bag: Path, topics):
    """Return [(log time ns, deserialized message)] of `topics` in a bag."""
    from ar1_ros.data.bags import BagReader
    with BagReader(bag) as reader:
        return [(m.log_ns, reader.deserialize(m)) for m in reader.messages(topics)]


def _zip(path: Path, members) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, 'w') as archive:
        for name, data in members.items():
            archive.writestr(name, data)
