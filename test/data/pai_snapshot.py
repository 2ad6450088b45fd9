"""A tiny synthetic PhysicalAI-AV dataset tree in the devkit's layout, built at test time.

features.csv (feature, directory, chunk_path with {chunk_id}, clip_files_in_zip as JSON
templates with {clip_id}), clip_index.parquet, metadata/*.parquet, calibration parquets indexed
by (clip_id, sensor), an egomotion zip and one zip per camera (mp4 + frame timestamps). The ego
drives an arc (closed form: ros.synthetic.arc_pose); every frame of camera c, index i is a flat
grey of level frame_level(c, i), so decoded JPEGs can be checked.
"""
import io
import json
import math
from pathlib import Path
import zipfile

import av
import numpy as np
import pandas as pd
from ros.synthetic import arc_pose

CLIP = '0f1e2d3c-0000-4000-8000-000000000001'
CAMERAS = ('camera_cross_left_120fov', 'camera_front_wide_120fov',
           'camera_cross_right_120fov', 'camera_front_tele_30fov')
SPEED, CURVATURE = 10.0, 0.02
EGO_HZ, EGO_S, VIDEO_FPS, VIDEO_S = 10, 8.0, 30, 3.0
VIDEO_START_US = 1_000_000
SIZE = (64, 96)  # height, width
FOCAL = 60.0


def frame_level(camera_index: int, frame: int) -> int:
    return 30 + (7 * frame + 40 * camera_index) % 190


def _features(cameras):
    rows = [(c, 'camera', f'camera/{c}/{c}.chunk_{{chunk_id:04d}}.zip',
             json.dumps({'video': f'{{clip_id}}.{c}.mp4',
                         'frame_timestamps': f'{{clip_id}}.{c}.timestamps.parquet'}))
            for c in cameras]
    rows.append(('egomotion', 'labels', 'labels/egomotion/egomotion.chunk_{chunk_id:04d}.zip',
                 json.dumps({'egomotion': '{clip_id}.egomotion.parquet'})))
    for name in ('camera_intrinsics', 'sensor_extrinsics'):
        rows.append((name, 'calibration',
                     f'calibration/{name}/{name}.chunk_{{chunk_id:04d}}.parquet', None))
    return pd.DataFrame(rows, columns=['feature', 'directory', 'chunk_path',
                                       'clip_files_in_zip'])


def egomotion_frame() -> pd.DataFrame:
    """Return the synthetic egomotion: an arc, velocity in the world frame."""
    rows = []
    for i in range(int(EGO_S * EGO_HZ) + 1):
        t = i / EGO_HZ
        x, y, yaw = arc_pose(t, SPEED, CURVATURE)
        rows.append({'timestamp': int(round(t * 1e6)), 'x': x, 'y': y, 'z': 0.0, 'qx': 0.0,
                     'qy': 0.0, 'qz': math.sin(yaw / 2), 'qw': math.cos(yaw / 2),
                     'vx': SPEED * math.cos(yaw), 'vy': SPEED * math.sin(yaw), 'vz': 0.0,
                     'ax': 0.0, 'ay': 0.0, 'az': 0.0, 'curvature': CURVATURE})
    return pd.DataFrame(rows)


def _parquet(df: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    df.to_parquet(buffer)
    return buffer.getvalue()


def _video(camera_index: int):
    buffer = io.BytesIO()
    with av.open(buffer, 'w', format='mp4') as container:
        stream = container.add_stream('mpeg4', rate=VIDEO_FPS)
        stream.height, stream.width = SIZE
        stream.pix_fmt = 'yuv420p'
        for i in range(int(VIDEO_S * VIDEO_FPS)):
            rgb = np.full(SIZE + (3,), frame_level(camera_index, i), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format='rgb24')):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    stamps = VIDEO_START_US + np.round(np.arange(int(VIDEO_S * VIDEO_FPS)) * 1e6 / VIDEO_FPS)
    return buffer.getvalue(), pd.DataFrame({'timestamp': stamps.astype(np.int64)})


def _calibration(cameras):
    theta = np.linspace(0, 1.2, 50)
    fw = [0.0, FOCAL, 0.0, -0.05 * FOCAL, 0.0]
    bw = np.polynomial.polynomial.polyfit(np.polynomial.polynomial.polyval(theta, fw), theta, 4)
    index = pd.MultiIndex.from_tuples([(CLIP, c) for c in cameras],
                                      names=['clip_id', 'camera_name'])
    intrinsics = pd.DataFrame([{'width': SIZE[1], 'height': SIZE[0], 'cx': SIZE[1] / 2,
                                'cy': SIZE[0] / 2, **{f'fw_poly_{i}': fw[i] for i in range(5)},
                                **{f'bw_poly_{i}': bw[i] for i in range(5)}}
                               for _ in cameras], index=index)
    # Optical frames (z forward, x right) looking along the rig's x axis, 1.5 m up.
    quat = (-0.5, 0.5, -0.5, 0.5)
    extrinsics = pd.DataFrame([{'qx': quat[0], 'qy': quat[1], 'qz': quat[2], 'qw': quat[3],
                                'x': 1.0 + i, 'y': 0.0, 'z': 1.5}
                               for i, _ in enumerate(cameras)],
                              index=index.rename(['clip_id', 'sensor_name']))
    return intrinsics, extrinsics


def build_snapshot(root, cameras=CAMERAS) -> Path:
    """Write the synthetic dataset tree under `root`; return it."""
    root = Path(root)
    (root / 'metadata').mkdir(parents=True)
    _features(cameras).to_csv(root / 'features.csv', index=False)
    pd.DataFrame({'chunk': [0]}, index=pd.Index([CLIP], name='clip_id')).to_parquet(
        root / 'clip_index.parquet')
    pd.DataFrame({c: [True] for c in cameras}, index=pd.Index([CLIP], name='clip_id')) \
        .to_parquet(root / 'metadata' / 'feature_presence.parquet')
    intrinsics, extrinsics = _calibration(cameras)
    for name, df in (('camera_intrinsics', intrinsics), ('sensor_extrinsics', extrinsics)):
        (root / 'calibration' / name).mkdir(parents=True)
        df.to_parquet(root / 'calibration' / name / f'{name}.chunk_0000.parquet')
    _zip(root / 'labels/egomotion/egomotion.chunk_0000.zip',
         {f'{CLIP}.egomotion.parquet': _parquet(egomotion_frame())})
    for index, camera in enumerate(cameras):
        video, stamps = _video(index)
        _zip(root / f'camera/{camera}/{camera}.chunk_0000.zip',
             {f'{CLIP}.{camera}.mp4': video, f'{CLIP}.{camera}.timestamps.parquet':
              _parquet(stamps)})
    return root


def _zip(path: Path, members) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, 'w') as archive:
        for name, data in members.items():
            archive.writestr(name, data)
