"""`ar1 convert-pai` on a synthetic snapshot in the devkit's layout, read back like the node."""
import math
from pathlib import Path
import subprocess
import sys
import zipfile

import cv2
import numpy as np
import pytest
from ros.synthetic import arc_pose

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
    SPEED,
    VIDEO_START_US,
    build_snapshot,
    frame_level,
)

AR1 = str(Path(sys.executable).parent / 'ar1')
CONFIG = Path(__file__).resolve().parents[2] / 'config' / 'ar1.yaml'
EPOCH_NS = 1_700_000_000 * 10 ** 9


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp('pai')
    snapshot = build_snapshot(root / 'dataset')
    summary = convert_clip(PaiSnapshot(snapshot), CLIP, root / 'bags',
                           ConvertOptions(camera_hz=10.0))
    return snapshot, Path(summary.bag), summary


def stamp(msg) -> int:
    return msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec


def test_topics_counts_and_stamps(converted):
    _, bag, summary = converted
    with BagReader(bag) as reader:
        assert reader.topics['/localization/kinematic_state'] == 'nav_msgs/msg/Odometry'
        assert reader.topics['/tf_static'] == 'tf2_msgs/msg/TFMessage'
        for camera_id in ('cross_left', 'front_wide', 'cross_right', 'front_tele'):
            images = f'/sensing/camera/{camera_id}/image_raw/compressed'
            assert reader.message_count(images) == 30  # 3 s of 30 fps video kept at 10 Hz
            assert reader.message_count(f'/sensing/camera/{camera_id}/camera_info') == 30
        assert reader.message_count('/localization/kinematic_state') == 81
        logs = [m.log_ns for m in reader.messages()]
        assert logs == sorted(logs)
        first = next(reader.messages(['/sensing/camera/front_wide/image_raw/compressed']))
        assert first.log_ns == stamp(reader.deserialize(first)) == EPOCH_NS + VIDEO_START_US * 1000
    assert summary.velocity_frame == 'world'


def test_odometry_is_the_egomotion_with_body_twist(converted):
    _, bag, _ = converted
    with BagReader(bag) as reader:
        for message in reader.messages(['/localization/kinematic_state']):
            msg = reader.deserialize(message)
            t = (stamp(msg) - EPOCH_NS) / 1e9
            x, y, yaw = arc_pose(t, SPEED, CURVATURE)
            p, q = msg.pose.pose.position, msg.pose.pose.orientation
            assert (p.x, p.y) == pytest.approx((x, y), abs=1e-9)
            assert 2 * math.atan2(q.z, q.w) == pytest.approx(yaw, abs=1e-9)
            v = msg.twist.twist.linear
            assert (v.x, v.y, v.z) == pytest.approx((SPEED, 0.0, 0.0), abs=1e-6)
            assert msg.twist.twist.angular.z == pytest.approx(SPEED * CURVATURE, rel=1e-3)
            assert (msg.header.frame_id, msg.child_frame_id) == ('odom', 'base_link')


def test_images_camera_info_and_tf(converted):
    _, bag, summary = converted
    with BagReader(bag) as reader:
        for index, message in enumerate(reader.messages(
                ['/sensing/camera/cross_right/image_raw/compressed'])):
            rgb = cv2.imdecode(np.asarray(reader.deserialize(message).data), cv2.IMREAD_COLOR)
            assert rgb.shape == (64, 96, 3)
            # Kept frames are 3 video frames (21 grey levels) apart: this identifies the frame.
            assert abs(float(rgb.mean()) - frame_level(2, 3 * index)) < 8, index
        info = reader.deserialize(next(reader.messages(
            ['/sensing/camera/front_wide/camera_info'])))
        assert (info.width, info.height, info.distortion_model) == (96, 64, 'equidistant')
        assert info.k[0] == pytest.approx(60.0)
        assert info.k[2] == pytest.approx(48.0)
        assert len(info.d) == 4
        tf = reader.deserialize(next(reader.messages(['/tf_static'])))
        frames = {t.child_frame_id: t for t in tf.transforms}
        assert set(frames) == {'camera_cross_left', 'camera_front_wide', 'camera_cross_right',
                               'camera_front_tele'}
        assert frames['camera_front_wide'].transform.translation.x == pytest.approx(2.0)
    assert max(summary.fit_error_px.values()) < 0.5


def test_the_node_runtime_assembles_an_observation(converted):
    _, bag, _ = converted
    config = load_config(CONFIG)
    topics = TopicMap(tuple(CameraTopic(i.topic, i.spec.name, i.compressed)
                            for i in config.inputs), config['ego_topic'])
    buffers = InputBuffers(config.runtime)
    with BagReader(bag) as reader:
        topics.check(reader)
        inputs = BagInputs(reader, topics, buffers)
        observation = None
        for message in reader.messages(topics.topics):
            assert inputs.feed(message) is None
            candidate = buffers.assemble(message.log_ns)
            if isinstance(candidate, Observation):
                observation = candidate
    assert observation is not None
    assert len(observation.frames) == 4
    assert observation.history.speed == pytest.approx(SPEED)


def test_errors(tmp_path, converted):
    snapshot, _, _ = converted
    with pytest.raises(PaiError, match='not a PhysicalAI-AV snapshot'):
        PaiSnapshot(tmp_path)
    with pytest.raises(PaiError, match='unknown clip'):
        convert_clip(PaiSnapshot(snapshot), 'nope', tmp_path, ConvertOptions())
    broken = build_snapshot(tmp_path / 'broken')
    (broken / 'labels/egomotion/egomotion.chunk_0000.zip').unlink()
    with pytest.raises(PaiError, match='egomotion is not downloaded'):
        convert_clip(PaiSnapshot(broken), CLIP, tmp_path / 'o1', ConvertOptions())
    build_ok = build_snapshot(tmp_path / 'ok')
    (broken / 'labels/egomotion/egomotion.chunk_0000.zip').write_bytes(
        (build_ok / 'labels/egomotion/egomotion.chunk_0000.zip').read_bytes())
    archive = broken / f'camera/{CAMERAS[1]}/{CAMERAS[1]}.chunk_0000.zip'
    with zipfile.ZipFile(archive) as z:
        stamps = z.read(f'{CLIP}.{CAMERAS[1]}.timestamps.parquet')
    with zipfile.ZipFile(archive, 'w') as z:
        z.writestr(f'{CLIP}.{CAMERAS[1]}.mp4', b'\x00\x00\x00\x18ftypmp42' + b'\x00' * 300)
        z.writestr(f'{CLIP}.{CAMERAS[1]}.timestamps.parquet', stamps)
    with pytest.raises(PaiError, match=f'{CAMERAS[1]}: cannot decode the video'):
        convert_clip(PaiSnapshot(broken), CLIP, tmp_path / 'o2', ConvertOptions())
    with zipfile.ZipFile(archive, 'w') as z:
        z.writestr(f'{CLIP}.{CAMERAS[1]}.mp4', b'')
        z.writestr(f'{CLIP}.{CAMERAS[1]}.timestamps.parquet', b'not parquet')
    with pytest.raises(PaiError, match='frame timestamps unreadable'):
        convert_clip(PaiSnapshot(broken), CLIP, tmp_path / 'o3', ConvertOptions())


def test_cli(tmp_path, converted):
    snapshot, _, _ = converted
    result = subprocess.run([AR1, 'convert-pai', '--dataset', str(snapshot), '--out',
                             str(tmp_path), '--clip', CLIP, 'missing-clip', '--camera-hz', '5',
                             '--no-progress'], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert 'missing-clip: unknown clip' in result.stderr
    assert f'{CLIP}: ' in result.stdout
    assert (tmp_path / CLIP / 'metadata.yaml').is_file()
    result = subprocess.run([AR1, 'convert-pai', '--dataset', str(tmp_path / 'nothing'),
                             '--out', str(tmp_path), '--clip', CLIP], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert 'not a PhysicalAI-AV snapshot' in result.stderr
