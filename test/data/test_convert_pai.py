"""`ar1 convert-pai` on a synthetic snapshot in the devkit's layout, read back like the node."""
import json
import math
from pathlib import Path
import subprocess
import sys
import zipfile

import cv2
import numpy as np
import pandas as pd
import pytest
from ros.synthetic import arc_pose

from ar1_ros.cli.main import main
from ar1_ros.data.bags import BagReader
from ar1_ros.data.pai.convert import ConvertOptions, convert_clip
from ar1_ros.data.pai.snapshot import PaiError, PaiSnapshot
from ar1_ros.data.stream import BagInputs, CameraTopic, TopicMap
from ar1_ros.nodes.params_file import load_config
from ar1_ros.runtime.assembly import InputBuffers
from ar1_ros.runtime.types import Observation
from data.pai_snapshot import (
    CAMERAS,
    CLIP,
    CURVATURE,
    EGO_HZ,
    EGO_S,
    EGO_START_S,
    MOUNTS,
    SPEED,
    build_snapshot,
    frame_rgb,
    frame_stamps_us,
    hub_cache,
    read_messages,
)

AR1 = str(Path(sys.executable).parent / 'ar1')
CONFIG = Path(__file__).resolve().parents[2] / 'config' / 'ar1.yaml'
EPOCH_NS = 1_700_000_000 * 10 ** 9
IDS = ('cross_left', 'front_wide', 'cross_right', 'front_tele')
EGO = '/localization/kinematic_state'


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp('pai')
    tree = build_snapshot(root / 'dataset')
    summary = convert_clip(PaiSnapshot(tree), CLIP, root / 'bags',
                           ConvertOptions(camera_hz=10.0))
    return tree, Path(summary.bag), summary


def stamp(msg) -> int:
    return msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec


def image_topic(camera_id: str) -> str:
    return f'/sensing/camera/{camera_id}/image_raw/compressed'


def test_topics_counts_and_stamps(converted):
    _, bag, summary = converted
    with BagReader(bag) as reader:
        assert reader.topics[EGO] == 'nav_msgs/msg/Odometry'
        assert reader.topics['/tf_static'] == 'tf2_msgs/msg/TFMessage'
        for camera_id in IDS:
            assert reader.topics[image_topic(camera_id)] == 'sensor_msgs/msg/CompressedImage'
            assert reader.topics[f'/sensing/camera/{camera_id}/camera_info'] == \
                'sensor_msgs/msg/CameraInfo'
        everything = [(m.topic, m.log_ns, reader.deserialize(m)) for m in reader.messages()]
    assert everything[0][0] == '/tf_static'
    logs = [log for _, log, _ in everything]
    assert logs == sorted(logs)
    for topic, log, msg in everything[1:]:
        assert log == stamp(msg if topic != '/tf_static' else msg.transforms[0]), topic
    # 10 Hz from jittery 30 fps stamps: every third frame, none lost to the jitter.
    kept = EPOCH_NS + frame_stamps_us()[::3] * 1000
    for camera_id in IDS:
        for topic in (image_topic(camera_id), f'/sensing/camera/{camera_id}/camera_info'):
            assert [log for t, log, _ in everything if t == topic] == kept.tolist()
    ego = [log for t, log, _ in everything if t == EGO]
    assert len(ego) == int(EGO_S * EGO_HZ) + 1 == summary.odometry
    assert ego[0] == EPOCH_NS + int(EGO_START_S * 1e9)  # negative clip times are kept
    assert {c['frames'] for c in summary.cameras.values()} == {30}
    assert summary.span_s == pytest.approx((EGO_START_S, EGO_START_S + EGO_S))


def test_odometry_is_the_egomotion_with_body_twist(converted):
    _, bag, summary = converted
    assert summary.velocity_frame == 'world'
    for _, msg in read_messages(bag, [EGO]):
        x, y, yaw = arc_pose((stamp(msg) - EPOCH_NS) / 1e9, SPEED, CURVATURE)
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        assert (p.x, p.y, p.z) == pytest.approx((x, y, 0.0), abs=1e-9)
        assert 2 * math.atan2(q.z, q.w) == pytest.approx(yaw, abs=1e-9)
        v, w = msg.twist.twist.linear, msg.twist.twist.angular
        assert (v.x, v.y, v.z) == pytest.approx((SPEED, 0.0, 0.0), abs=1e-9)
        assert (w.x, w.y, w.z) == pytest.approx((0.0, 0.0, SPEED * CURVATURE), abs=1e-9)
        assert (msg.header.frame_id, msg.child_frame_id) == ('odom', 'base_link')


def test_jpeg_frames_are_the_video_frames(converted):
    _, bag, _ = converted
    for index, camera_id in enumerate(IDS):
        frames = read_messages(bag, [image_topic(camera_id)])
        for k, (_, msg) in enumerate(frames):
            assert (msg.format, msg.header.frame_id) == ('jpeg', f'camera_{camera_id}')
            bgr = cv2.imdecode(np.asarray(msg.data), cv2.IMREAD_COLOR)
            assert bgr.shape == (64, 96, 3)
            rgb = bgr[..., ::-1].reshape(-1, 3).mean(axis=0)
            # Kept frames are 3 video frames apart (21 grey levels): this names the frame.
            assert np.abs(rgb - frame_rgb(index, 3 * k)).max() < 6, (camera_id, k)


def test_camera_info_is_the_lens_within_the_reported_error(converted):
    tree, bag, summary = converted
    models = PaiSnapshot(tree).intrinsics(CLIP).camera_models
    for name, camera_id in zip(CAMERAS, IDS, strict=True):
        _, info = read_messages(bag, [f'/sensing/camera/{camera_id}/camera_info'])[0]
        model = models[name]
        assert (info.width, info.height, info.distortion_model) == (96, 64, 'equidistant')
        assert (info.k[2], info.k[5]) == (model.principal_point[0], model.principal_point[1])
        assert info.k[0] == info.k[4] == info.p[0] == info.p[5]
        assert len(info.d) == 4
        assert list(info.r) == np.eye(3).ravel().tolist()
        # Rays through a grid of pixels: OpenCV's fisheye projection with the CameraInfo lands
        # where the dataset's f-theta polynomial does, within the summary's fit error.
        u, v = np.meshgrid(np.linspace(0, 96, 13), np.linspace(0, 64, 9))
        pixels = np.stack([u.ravel(), v.ravel()], axis=1) + 1e-3
        rays = model.pixel2ray(pixels)
        exact = model.ray2pixel(rays)
        fitted, _ = cv2.fisheye.projectPoints(rays.reshape(-1, 1, 3), np.zeros(3), np.zeros(3),
                                              np.asarray(info.k).reshape(3, 3),
                                              np.asarray(info.d, dtype=np.float64))
        error = np.abs(fitted.reshape(-1, 2) - exact).max()
        reported = summary.cameras[name]['fit_error_px']
        assert error <= reported + 1e-6, name
        assert reported < 0.05, name


def test_tf_static_and_overlay_calibration(converted):
    from ar1_ros.runtime.cameras import CameraSpec
    from ar1_ros.runtime.overlay import project
    tree, bag, summary = converted
    (_, tf), = read_messages(bag, ['/tf_static'])
    frames = {t.child_frame_id: t for t in tf.transforms}
    assert set(frames) == {f'camera_{i}' for i in IDS}
    models = PaiSnapshot(tree).intrinsics(CLIP).camera_models
    for name, camera_id in zip(CAMERAS, IDS, strict=True):
        t = frames[f'camera_{camera_id}']
        assert t.header.frame_id == 'base_link'
        x, y, z, yaw = MOUNTS[name]
        assert (t.transform.translation.x, t.transform.translation.y,
                t.transform.translation.z) == pytest.approx((x, y, z))
        # The summary's overlay calibration puts points seen near the optical axis where the
        # lens does (pinhole ~ f-theta there): the axis at (cx, cy), 3 degrees left of it too.
        c = summary.cameras[name]
        spec = CameraSpec(name, tuple(c['intrinsics']), tuple(c['extrinsics']))
        for angle in (0.0, math.radians(3)):
            direction = np.array([math.cos(yaw + angle), math.sin(yaw + angle), 0.0])
            uv, visible = project(np.array([[x, y, z]]) + 20 * direction, spec)
            ray = np.array([-math.sin(angle), 0.0, math.cos(angle)])  # optical: x right
            # (the devkit's ray2pixel is 0/0 exactly on the axis)
            lens = models[name].ray2pixel(ray) if angle else models[name].principal_point
            assert visible[0]
            assert uv[0] == pytest.approx(lens, abs=0.05)


def test_the_node_runtime_assembles_an_observation(converted):
    _, bag, _ = converted
    config = load_config(CONFIG)
    topics = TopicMap(tuple(CameraTopic(i.topic, i.spec.name, i.compressed)
                            for i in config.inputs), config['ego_topic'])
    buffers = InputBuffers(config.runtime)
    observations = []
    with BagReader(bag) as reader:
        topics.check(reader)
        inputs = BagInputs(reader, topics, buffers)
        for message in reader.messages(topics.topics):
            assert inputs.feed(message) is None
            candidate = buffers.assemble(message.log_ns)
            if isinstance(candidate, Observation):
                observations.append(candidate)
    assert observations
    last = observations[-1]
    assert [len(frames) for frames in last.frames] == [4] * 4
    assert last.history.speed == pytest.approx(SPEED)
    assert last.frames[1][0].rgb().shape == (64, 96, 3)


def test_cli(tmp_path, converted):
    tree, _, _ = converted
    cache = hub_cache(tree, tmp_path / 'hub')
    result = subprocess.run(
        [AR1, 'convert-pai', '--dataset', str(cache), '--revision', 'main', '--out',
         str(tmp_path / 'out'), '--clip', CLIP, 'missing-clip', '--cameras',
         'camera_front_tele_30fov', 'camera_front_wide_120fov', '--camera-hz', '5',
         '--storage', 'sqlite3', '--epoch', '1e9', '--no-progress'],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr  # one clip failed, the other converted
    assert result.stderr.strip() == ("ar1 convert-pai: missing-clip: unknown clip "
                                     "'missing-clip' (not in clip_index.parquet)")
    assert f'{CLIP}: ' in result.stdout
    assert list((tmp_path / 'out' / CLIP).glob('*.db3'))
    summary = json.loads((tmp_path / 'out' / f'{CLIP}.json').read_text())
    assert {c['frames'] for c in summary['cameras'].values()} == {15}
    with BagReader(tmp_path / 'out' / CLIP) as reader:
        assert reader.start_ns == 10 ** 18 + int(EGO_START_S * 1e9)
        assert sorted(t for t in reader.topics if t.endswith('compressed')) == [
            image_topic('front_tele'), image_topic('front_wide')]


def _fail(capsys, *argv) -> str:
    assert main(['convert-pai', *argv, '--no-progress']) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1  # one line, no traceback
    return err


def test_usage_and_clip_errors_exit_2(converted, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')  # run() sets it; restored after the test
    tree, _, _ = converted
    out = ['--out', str(tmp_path / 'out')]
    assert 'does not exist' in _fail(capsys, '--dataset', str(tmp_path / 'no'), *out,
                                     '--clip', CLIP)
    assert 'not a PhysicalAI-AV snapshot' in _fail(capsys, '--dataset', str(tmp_path), *out,
                                                   '--clip', CLIP)
    assert "unknown clip 'x'" in _fail(capsys, '--dataset', str(tree), *out, '--clip', 'x')
    assert 'known: [' in _fail(capsys, '--dataset', str(tree), *out, '--clip', CLIP,
                               '--cameras', 'camera_front_wide')
    assert 'JPEG quality' in _fail(capsys, '--dataset', str(tree), *out, '--clip', CLIP,
                                   '--jpeg-quality', '0')
    (tmp_path / 'out' / CLIP).mkdir(parents=True)
    assert '--overwrite' in _fail(capsys, '--dataset', str(tree), *out, '--clip', CLIP)


def test_a_corrupt_video_leaves_no_bag(tmp_path, capsys):
    tree = build_snapshot(tmp_path / 'dataset')
    camera = CAMERAS[1]
    archive = tree / f'camera/{camera}/{camera}.chunk_0000.zip'
    with zipfile.ZipFile(archive) as z:
        stamps = z.read(f'{CLIP}.{camera}.timestamps.parquet')
    with zipfile.ZipFile(archive, 'w') as z:
        z.writestr(f'{CLIP}.{camera}.mp4', b'\x00\x00\x00\x18ftypmp42' + b'\x00' * 300)
        z.writestr(f'{CLIP}.{camera}.timestamps.parquet', stamps)
    assert main(['convert-pai', '--dataset', str(tree), '--out', str(tmp_path / 'out'),
                 '--clip', CLIP, '--no-progress']) == 2
    assert f'{CLIP}: {camera}: cannot decode the video' in capsys.readouterr().err
    assert not list((tmp_path / 'out').iterdir())  # neither the bag nor its staging folder
    with zipfile.ZipFile(archive, 'w') as z:
        z.writestr(f'{CLIP}.{camera}.mp4', b'')
        z.writestr(f'{CLIP}.{camera}.timestamps.parquet', b'not parquet')
    with pytest.raises(PaiError, match='frame timestamps unreadable'):
        convert_clip(PaiSnapshot(tree), CLIP, tmp_path / 'out', ConvertOptions())


def test_a_lens_the_camera_info_cannot_hold_is_called_out(tmp_path):
    tree = build_snapshot(tmp_path / 'dataset', cameras=CAMERAS[1:2])
    path = tree / 'calibration/camera_intrinsics/camera_intrinsics.chunk_0000.parquet'
    intrinsics = pd.read_parquet(path)
    intrinsics['fw_poly_0'] = 3.0  # r(0) = 3 px: Kannala-Brandt's r(0) is 0 by construction
    intrinsics.to_parquet(path)
    summary = convert_clip(PaiSnapshot(tree), CLIP, tmp_path / 'out',
                           ConvertOptions(cameras=CAMERAS[1:2], camera_hz=1.0))
    error = summary.cameras[CAMERAS[1]]['fit_error_px']
    assert error > 1.0
    assert any(f'up to {error:.2f} px (> 1 px)' in note for note in summary.notes)
