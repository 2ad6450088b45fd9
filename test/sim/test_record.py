"""Demo-world episodes as bags and labels: topics, rates, stamps, messages, labels, reuse.

One real episode (the shortest scenario, rendered at a small size) is generated once per
module and read back with the package's own bag reader and label checker; `ar1 dataset build`
then takes the bag and its labels unchanged.
"""
import json

import numpy as np
import pytest

from ar1_ros.cli.main import main
from ar1_ros.data.bags import BagReader
from ar1_ros.data.dataset_shards import TrainingDataset
from ar1_ros.data.labels import read_labels
from ar1_ros.data.meta_actions import compatible, meta_action_from_path
from ar1_ros.sim.generate import LABELS, MANIFEST, generate, parse_scenarios, parse_seeds
from ar1_ros.sim.record import RecordSettings, future_in_ego_frame, stamp_ns
from ar1_ros.sim.rig import default_rig

RIG = default_rig(width=192, height=112)
SETTINGS = RecordSettings()
SCENARIO, SEED = 'lead_brake', 3
CAMERA = '/sensing/camera/front_wide/image_raw/compressed'
EGO = '/localization/kinematic_state'


@pytest.fixture(scope='module')
def episode(tmp_path_factory):
    out = tmp_path_factory.mktemp('sim')
    seen = []
    summary = generate([SCENARIO], [SEED], out, RIG, SETTINGS,
                       on_episode=lambda s, reused: seen.append(reused))[0]
    assert seen == [False]
    return out, summary


def _messages(bag):
    with BagReader(bag) as reader:
        return reader.topics, [(m.topic, m.log_ns, reader.deserialize(m))
                               for m in reader.messages()]


def test_bag_has_the_node_topics_at_their_rates(episode):
    out, summary = episode
    topics, messages = _messages(out / summary.bag)
    for camera in RIG:
        assert topics[f'/sensing/camera/{camera.camera_id}/image_raw/compressed'] == \
            'sensor_msgs/msg/CompressedImage'
        assert topics[f'/sensing/camera/{camera.camera_id}/camera_info'] == \
            'sensor_msgs/msg/CameraInfo'
    assert topics[EGO] == 'nav_msgs/msg/Odometry'
    assert '/tf_static' in topics
    stamps = {t: [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
                  for topic, _, m in messages if topic == t] for t in (CAMERA, EGO)}
    assert np.allclose(np.diff(stamps[CAMERA]), 0.1e9)
    assert np.allclose(np.diff(stamps[EGO]),
                                                                       0.05e9)
    assert len(stamps[CAMERA]) == summary.frames
    assert all(log == m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
               for topic, log, m in messages if topic != '/tf_static')


def test_messages_carry_the_rig_and_the_drive(episode):
    out, summary = episode
    _, messages = _messages(out / summary.bag)
    front = next(c for c in RIG if c.camera_id == 'front_wide')
    info = next(m for t, _, m in messages if t == '/sensing/camera/front_wide/camera_info')
    assert (info.width, info.height) == (front.width, front.height)
    np.testing.assert_allclose(info.k, front.camera_info()['k'])
    image = next(m for t, _, m in messages if t == CAMERA)
    assert image.format == 'jpeg'
    assert bytes(image.data[:2]) == b'\xff\xd8'
    odometry = [m for t, _, m in messages if t == EGO]
    speeds = np.array([m.twist.twist.linear.x for m in odometry])
    xs = np.array([m.pose.pose.position.x for m in odometry])
    # Body-frame speed integrates to the distance driven (the lead_brake road is straight).
    assert abs(np.sum(speeds[:-1]) * 0.05 - (xs[-1] - xs[0])) < 0.02 * (xs[-1] - xs[0]) + 0.5
    tf = next(m for t, _, m in messages if t == '/tf_static')
    assert sorted(x.child_frame_id for x in tf.transforms) == sorted(c.frame_id for c in RIG)


def test_labels_are_valid_stamped_on_frames_and_agree_with_the_drive(episode):
    out, summary = episode
    labels = read_labels(out / LABELS)
    assert not labels.problems
    assert len(labels) == len(summary.labels) > 10
    _, messages = _messages(out / summary.bag)
    frame_stamps = {log for topic, log, _ in messages if topic == CAMERA}
    for label in labels.labels:
        assert label.t0_ns in frame_stamps
        assert label.provenance == 'rule'
        assert label.meta_action is not None
        assert label.consistent is not None
    start = stamp_ns(SETTINGS.epoch_s, 0.0)
    assert min(lb.t0_ns for lb in labels.labels) - start >= 1.6e9
    assert 'decelerate' in summary.decisions
    assert summary.agreement >= 0.8


def test_dataset_build_takes_bag_and_labels_unchanged(episode, tmp_path):
    out, summary = episode
    code = main(['dataset', 'build', str(out / summary.bag), '--labels', str(out / LABELS),
                 '--out', str(tmp_path / 'ds'), '--no-progress'])
    assert code == 0
    index = json.loads((tmp_path / 'ds' / 'dataset.json').read_text())
    assert index['camera_names'] == [c.ar1_name for c in RIG]
    dataset = TrainingDataset(tmp_path / 'ds')
    labelled = [dataset[i].label for i in range(len(dataset)) if dataset[i].label is not None]
    assert len(labelled) == len(summary.labels)


def test_second_run_reuses_and_changed_settings_rebuild(episode):
    out, summary = episode
    bag_file = next((out / summary.bag).glob('*.mcap'))
    mtime = bag_file.stat().st_mtime_ns
    seen = []
    again = generate([SCENARIO], [SEED], out, RIG, SETTINGS,
                     on_episode=lambda s, reused: seen.append(reused))[0]
    assert seen == [True]
    assert again.labels == summary.labels
    assert bag_file.stat().st_mtime_ns == mtime
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest['settings']['camera_hz'] == SETTINGS.camera_hz


def test_future_in_ego_frame_of_a_known_turn():
    dt, yaw_rate, speed = 0.05, 0.2, 10.0
    t = np.arange(0, 8.0, dt)
    yaw = yaw_rate * t
    poses = np.stack([t, speed / yaw_rate * np.sin(yaw) + 5.0,
                      speed / yaw_rate * (1 - np.cos(yaw)) - 2.0, yaw], axis=-1)
    future = future_in_ego_frame(poses, 20, dt)  # t0 = 1 s
    tau = 0.1 * np.arange(1, 65)
    expected = np.stack([speed / yaw_rate * np.sin(yaw_rate * tau),
                         speed / yaw_rate * (1 - np.cos(yaw_rate * tau))], axis=-1)
    np.testing.assert_allclose(future[:, :2], expected, atol=1e-9)
    meta = meta_action_from_path(future, speed)
    assert meta.lateral == 'turn_left'
    assert compatible('turn_left', meta)


@pytest.mark.parametrize(('text', 'expected'), [
    ('3', (3,)), ('0-2', (0, 1, 2)), ('0,4,7-8', (0, 4, 7, 8)), ('2,2', (2,))])
def test_parse_seeds(text, expected):
    assert parse_seeds(text) == expected


@pytest.mark.parametrize('text', ['', 'a', '1-x', '-3', '4,,a'])
def test_parse_seeds_rejects(text):
    with pytest.raises(ValueError, match='seeds'):
        parse_seeds(text)


def test_parse_scenarios():
    assert parse_scenarios('all')[0] == 'lead_brake'
    assert parse_scenarios('curve, overtake') == ('curve', 'overtake')
    with pytest.raises(ValueError, match='known: lead_brake'):
        parse_scenarios('curve,parking')


@pytest.mark.parametrize('argv', [
    ['sim', 'generate', '--out', 'x', '--scenarios', 'parking'],
    ['sim', 'generate', '--out', 'x', '--seeds', 'a-b'],
    ['sim', 'generate', '--out', 'x', '--jpeg-quality', '0'],
    ['sim', 'generate', '--out', 'x', '--rig', '/nonexistent/rig.yaml'],
    ['sim'],
])
def test_cli_usage_errors_exit_2(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert not (tmp_path / 'x').exists()


def test_cli_writes_the_rig_calibration_for_overlays(tmp_path):
    rig_file = tmp_path / 'rig.yaml'
    rig_file.write_text('width: 96\nheight: 64\n')
    out = tmp_path / 'world'
    assert main(['sim', 'generate', '--scenarios', 'lead_brake', '--seeds', '1', '--out',
                 str(out), '--rig', str(rig_file)]) == 0
    from ar1_ros.nodes.params_file import load_config
    from ar1_ros.runtime.overlay import calibration_mismatch
    from ar1_ros.sim.rig import load_rig
    runtime = load_config(out / 'params.yaml').runtime
    for camera in load_rig(rig_file):
        spec = runtime.camera(camera.ar1_name)
        assert spec.intrinsics == pytest.approx((camera.fx, camera.fy, camera.cx, camera.cy))
        assert spec.extrinsics == pytest.approx(camera.extrinsics)
        assert calibration_mismatch(spec, 96, 64) == ''
