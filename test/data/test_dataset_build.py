"""`ar1 dataset build` on synthetic manoeuvre bags, checked against the runtime run directly.

The bag brakes (3 m/s^2 from 3 s) and turns (0.25 rad/s from 7 s), so braking and turning
keyframes fire. The expected samples are computed independently: every observation of the bag
fed through BagInputs/InputBuffers with a plain assemble after each message, and the future
from EgoTrack, as `ar1 eval --keyframes` scores it.
"""
import collections
import json
import math
import pickle
import shutil

from bags.drive_bag import EGO_TOPIC, Drive, camera_message, corrupt_last_chunk, odometry_message
from bags.drive_bag import overrides as drive_overrides
import cv2
import numpy as np
import pytest
from ros.processes import write_params
from ros.synthetic import CAMERAS, NS, make_image, topic_of

from ar1_ros.cli import dataset as dataset_cli
from ar1_ros.cli.eval_session import topic_map
from ar1_ros.cli.main import main
from ar1_ros.data.bags import BagReader, BagWriter
from ar1_ros.data.dataset_shards import DatasetError, TrainingDataset, read_index
from ar1_ros.data.ego_track import EgoTrack
from ar1_ros.data.keyframes import detect_keyframes
from ar1_ros.data.stream import BagInputs
from ar1_ros.nodes.params_file import load_config
from ar1_ros.runtime.assembly import InputBuffers
from ar1_ros.runtime.types import Observation

MS = NS // 1000
PICTURES = [make_image(72, 128, seed) for seed in range(4)]
START = int(Drive().start_s * NS)  # the first stamp of the bags


def write_manoeuvre_bag(path, compressed=True, drop=None):
    """14 s of driving; drop: (camera index, first frame, last frame) left out."""
    drive = Drive(duration_s=14.0, compressed=compressed)
    t = np.arange(14001) / 1000  # integrate on a 1 ms grid; odometry every 20 ms
    speed = np.clip(10 - 3 * (t - 3), 5, 10)
    yaw_rate = np.where((t >= 7) & (t < 8.5), 0.25, 0.0)
    yaw = np.cumsum(yaw_rate) / 1000
    x, y = np.cumsum(speed * np.cos(yaw)) / 1000, np.cumsum(speed * np.sin(yaw)) / 1000
    events = []
    with BagWriter(path) as writer:
        kind = 'CompressedImage' if compressed else 'Image'
        for camera_id, _ in CAMERAS:
            writer.add_topic(topic_of(camera_id, compressed), f'sensor_msgs/msg/{kind}')
        writer.add_topic(EGO_TOPIC, 'nav_msgs/msg/Odometry')
        for frame in range(140):
            for index, (camera_id, _) in enumerate(CAMERAS):
                if drop and drop[0] == index and drop[1] <= frame <= drop[2]:
                    continue
                stamp = START + frame * NS // 10
                events.append((stamp + 20 * MS + index, topic_of(camera_id, compressed),
                               camera_message(writer, drive, index, stamp, frame, PICTURES)))
        for i in range(0, 14000, 20):
            msg = odometry_message(writer, drive, START + i * MS)
            pose, twist = msg.pose.pose, msg.twist.twist
            pose.position.x, pose.position.y = float(x[i]), float(y[i])
            pose.orientation.z, pose.orientation.w = math.sin(yaw[i] / 2), math.cos(yaw[i] / 2)
            twist.linear.x, twist.angular.z = float(speed[i]), float(yaw_rate[i])
            events.append((START + i * MS + 5 * MS, EGO_TOPIC, msg))
        for log_ns, topic, msg in sorted(events, key=lambda e: e[0]):
            writer.write(topic, log_ns, msg)
    return path


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    root, out = tmp_path_factory.mktemp('bags'), {}
    for compressed in (False, True):
        params = write_params(root / f'p{compressed}.yaml',
                              drive_overrides(Drive(compressed=compressed)))
        name = 'cdrive' if compressed else 'drive'
        out[compressed] = (write_manoeuvre_bag(root / name, compressed), params)
    return out


def build(tmp_path, bags, params, *extra, out='out'):
    return main(['dataset', 'build', *map(str, bags), '--out', str(tmp_path / out), '--params',
                 str(params), '--no-progress', *extra])


def reference(bag, params):
    """Return (keyframes, {t0: Observation} of a plain replay, EgoTrack)."""
    config = load_config(params)
    store, topics, observations, last = InputBuffers(config.runtime), topic_map(config), {}, None
    with BagReader(bag) as reader:
        track = EgoTrack.from_bag(reader, EGO_TOPIC)[0]
        inputs = BagInputs(reader, topics, store)
        for message in reader.messages():
            if inputs.feed(message) is None:
                observation = store.assemble(message.log_ns, last)
                if isinstance(observation, Observation):
                    last = observation.t0_ns
                    observations[last] = observation
    return detect_keyframes(track.kinematics()), observations, track


def check_sample(sample, observation, track):
    assert sample.t0_ns == observation.t0_ns
    np.testing.assert_array_equal(sample.frame_stamps_ns, observation.frame_stamps_ns())
    history = observation.history
    np.testing.assert_allclose(sample.ego_history_xyz, history.xyz, atol=1e-5)
    np.testing.assert_allclose(sample.ego_history_rot, history.rot, atol=1e-6)
    future_xyz, future_rot = track.future(sample.t0_ns, 64, 0.1)
    np.testing.assert_allclose(sample.ego_future_xyz, future_xyz, atol=1e-4)
    np.testing.assert_allclose(sample.ego_future_rot, future_rot, atol=1e-6)
    for array, shape in ((sample.ego_history_xyz, (16, 3)), (sample.ego_future_rot, (64, 3, 3))):
        assert (array.shape, array.dtype) == (shape, np.float32)


def test_keyframe_samples_are_the_runtime_observations(tmp_path, bags, capsys):
    bag, params = bags[False]
    assert build(tmp_path, [bag], params, '--shard-size', '1') == 0
    keyframes, observations, track = reference(bag, params)
    assert [k.kind for k in keyframes] == ['braking', 'turning']
    dataset = TrainingDataset(tmp_path / 'out')
    assert (len(dataset), dataset.labelled_count) == (2, 0)
    assert dataset.camera_names == tuple(name for _, name in CAMERAS)
    for keyframe, sample in zip(keyframes, (dataset[0], dataset[1]), strict=True):
        t0 = min(t for t in observations if t >= keyframe.t_ns)  # eval's keyframe t0
        check_sample(sample, observations[t0], track)
        assert (sample.kind, sample.bag, sample.label) == (keyframe.kind, 'drive', None)
        assert sample.images.shape == (4, 4, 72, 128, 3)
        for c in range(4):
            for f, stamp in enumerate(sample.frame_stamps_ns[c]):
                frame = (int(stamp) - START) // (NS // 10)
                np.testing.assert_array_equal(sample.images[c, f], PICTURES[(frame + c) % 4])
    assert len(list((tmp_path / 'out' / 'shards').glob('drive-0000[01].safetensors'))) == 2
    assert 'drive: 2 samples (0 labelled) of 2 targets; skipped: none' in capsys.readouterr().out


def recorded_rgb(bag, topic, stamp_ns):
    with BagReader(bag) as reader:
        for message in reader.messages([topic]):
            msg = reader.deserialize(message)
            if msg.header.stamp.sec * NS + msg.header.stamp.nanosec == stamp_ns:
                return cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    raise AssertionError(f'no frame at {stamp_ns} on {topic}')


def test_labels_attach_and_unlabelled_moments_get_samples(tmp_path, bags, capsys):
    bag, params = bags[True]
    keyframes, observations, track = reference(bag, params)
    braking = keyframes[0].t_ns
    lines = [{'bag': 'cdrive', 't0_ns': t, 'decision': 'decelerate', 'coc': f'c{i}'}
             for i, t in enumerate((braking - 40 * MS, START + 5530 * MS, START + 13_500 * MS))]
    lines.append(dict(lines[0], bag='elsewhere'))
    labels = tmp_path / 'labels.jsonl'
    labels.write_text('\n'.join(map(json.dumps, lines)) + '\n{"bag": "cdrive"}\n')
    assert build(tmp_path, [bag], params, '--labels', str(labels), '--tolerance-ms', '100') == 0
    dataset = TrainingDataset(tmp_path / 'out')
    samples = [dataset[i] for i in range(len(dataset))]
    # Frames 100 ms apart: the braking keyframe moves onto the label 40 ms before it and takes
    # the frame nearest it (not the one 60 ms before the label); 5.53 s takes the frame at
    # 5.5 s (not the first at or after it); 13.5 s has no 6.4 s future.
    assert [(s.kind, s.t0_ns - START, s.label and s.label.coc) for s in samples] == [
        ('braking', braking - START, 'c0'), ('label', 5500 * MS, 'c1'),
        ('turning', keyframes[1].t_ns - START, None)]
    assert dataset.labelled_count == 2
    for sample in samples:
        check_sample(sample, observations[sample.t0_ns], track)
        for c, (camera_id, _) in enumerate(CAMERAS):
            topic, stamp = topic_of(camera_id, True), int(sample.frame_stamps_ns[c, 3])
            np.testing.assert_array_equal(sample.images[c, 3], recorded_rgb(bag, topic, stamp))
    out, problem = capsys.readouterr().out, 'labels.jsonl:5: missing required key(s) t0_ns, '
    assert f'labels on no sample at t0_ns [{START + 13_500 * MS}]' in out
    assert 'skipped: no_future 1' in out
    assert problem in out
    assert 'labels name bags that were not built: elsewhere' in out
    index = read_index(tmp_path / 'out')
    assert index['label_problems'] == [problem + 'decision, coc']
    assert (index['num_frames'], index['settings']['selection']['frame_tolerance_s']) == (4, 0.05)


def mtimes(out):
    return {p.name: p.stat().st_mtime_ns for p in (out / 'shards').iterdir()}


def test_resume_keeps_built_bags_and_rebuilds_interrupted_ones(tmp_path, bags, capsys,
                                                                monkeypatch):
    bag, params = bags[True]
    second, out = shutil.copytree(bag, tmp_path / 'second'), tmp_path / 'out'
    feed, read = dataset_cli._Bar.__call__, collections.Counter()

    def ctrl_c(bar, n, total):  # a third into cdrive: its braking sample is written
        read[bar._name] += n
        if read['cdrive'] > total // 3:
            raise KeyboardInterrupt
        feed(bar, n, total)
    monkeypatch.setattr(dataset_cli._Bar, '__call__', ctrl_c)
    assert build(tmp_path, [second, bag], params, '--shard-size', '1') == 130
    assert (out / 'shards' / 'cdrive-00000.safetensors').is_file()
    with pytest.raises(DatasetError, match='bag cdrive was interrupted while building'):
        TrainingDataset(out)
    monkeypatch.undo()
    (out / 'shards' / 'cdrive-00007.safetensors').write_bytes(b'stray')
    assert build(tmp_path, [second, bag], params, '--shard-size', '1') == 0
    assert capsys.readouterr().out.count('already built (2 samples, 0 labelled)') == 1
    before = mtimes(out)
    assert 'cdrive-00007.safetensors' not in before, 'partial shards are removed'
    assert (len(before), len(TrainingDataset(out))) == (8, 4)
    assert build(tmp_path, [second, bag], params) == 0
    assert mtimes(out) == before
    assert capsys.readouterr().out.count('already built') == 2
    (out / 'shards' / 'second-00001.safetensors').unlink()  # a shard lost
    assert build(tmp_path, [second, bag], params) == 0
    assert capsys.readouterr().out.count('already built') == 1
    assert {k for k, v in mtimes(out).items() if before.get(k) != v} == {
        'second-00000.safetensors', 'second-00000.json'}, 'rebuilt in shards of 64'
    assert build(tmp_path, [bag], params, '--tolerance-ms', '20') == 2
    assert 'other settings (tolerance_ns)' in capsys.readouterr().err
    assert build(tmp_path, [second], params, '--tolerance-ms', '20', '--overwrite') == 0
    assert len(TrainingDataset(out)) == 2


def test_bad_bags_are_reported_and_the_others_built(tmp_path, bags, capsys):
    bag, params = bags[False]
    broken = corrupt_last_chunk(shutil.copytree(bag, tmp_path / 'copy' / 'drive'), 'b')
    (tmp_path / 'empty').mkdir()
    assert build(tmp_path, [broken, tmp_path / 'empty', bag], params) == 1
    err = capsys.readouterr().err
    assert 'drive_b: read failed after the message at' in err
    assert 'empty: cannot open as a rosbag2 bag' in err
    index = read_index(tmp_path / 'out')['bags']
    assert [(index[n]['status'], index[n]['samples']) for n in ('drive_b', 'empty', 'drive')] == [
        ('failed', 2), ('failed', 0), ('complete', 2)], 'samples before the fault are kept'
    dataset = TrainingDataset(tmp_path / 'out')
    assert [(s.bag, s.t0_ns) for s in (dataset[0], dataset[1])] == [
        ('drive', s.t0_ns) for s in (dataset[2], dataset[3])]
    other = write_params(tmp_path / 'p.yaml', dict(drive_overrides(Drive()), ego_topic='/none'))
    assert build(tmp_path, [bags[True][0]], other, '--overwrite') == 1
    assert 'no topic /none' in capsys.readouterr().err


def test_missing_camera_policy_decides_skip_or_black_frames(tmp_path, bags):
    _, params = bags[True]
    keyframes, _, _ = reference(bags[True][0], params)
    frame = (keyframes[0].t_ns - START) // (NS // 10)
    bag = write_manoeuvre_bag(tmp_path / 'gap', True, drop=(3, frame - 3, frame))
    # A label inside the gap: the first complete t0 comes 300 ms after it.
    labels = tmp_path / 'l.jsonl'
    labels.write_text(json.dumps({'bag': 'gap', 't0_ns': keyframes[0].t_ns - 200 * MS,
                                  'decision': 'stop', 'coc': 'c'}))
    assert build(tmp_path, [bag], params, '--labels', str(labels)) == 0
    entry = read_index(tmp_path / 'out')['bags']['gap']
    assert (entry['skips'], entry['samples']) == ({'camera_missing': 2}, 1)
    assert build(tmp_path, [bag], params, '--labels', str(labels), '--ros-args', '-p',
                 'selection.missing_camera_policy:=black', out='black') == 0
    entry = read_index(tmp_path / 'black')['bags']['gap']
    assert (entry['skips'], entry['samples']) == ({'no_frame_near_label': 1}, 2)
    sample = TrainingDataset(tmp_path / 'black')[0]
    assert (sample.kind, len(sample.filled), sample.label) == ('braking', 3, None)
    assert (sample.frame_stamps_ns[3, :3] == -1).all()
    assert not sample.images[3, :3].any(), 'black fill'
    assert sample.images[3, 3].any()
    assert sample.images[:3].reshape(12, -1).any(axis=1).all()


def test_reader_errors_and_pickling(tmp_path, bags):
    bag, params = bags[True]
    with pytest.raises(DatasetError, match='no dataset.json'):
        TrainingDataset(tmp_path / 'none')
    assert build(tmp_path, [bag], params) == 0
    dataset = TrainingDataset(tmp_path / 'out')
    copy = pickle.loads(pickle.dumps(dataset))  # as DataLoader workers receive it
    np.testing.assert_array_equal(copy[0].images, dataset[0].images)
    assert dataset[-1].t0_ns == copy[1].t0_ns
    with pytest.raises(IndexError):
        dataset[2]
    shard = tmp_path / 'out' / 'shards' / 'cdrive-00000.safetensors'
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(DatasetError, match='the shard was changed or truncated'):
        TrainingDataset(tmp_path / 'out')
    (tmp_path / 'out' / 'dataset.json').write_text('{"bags": ')
    with pytest.raises(DatasetError, match='unreadable'):
        TrainingDataset(tmp_path / 'out')


@pytest.mark.parametrize('extra', [
    ['--shard-size', '0'], ['--uniform', '-1'], ['--no-keyframes'],
    ['--labels', 'no-such.jsonl'], ['--params', 'no-such.yaml'],
    ['--ros-args', '-r', '/a:=/b'], ['--ros-args', '-p', 'no_such_parameter:=1'],
])
def test_usage_errors_exit_2(tmp_path, bags, extra, capsys):
    bag, params = bags[True]
    assert build(tmp_path, [bag], params, *extra) == 2
    assert capsys.readouterr().err.startswith('ar1 dataset build: ')
    assert not (tmp_path / 'out' / 'dataset.json').exists()


def test_duplicate_bag_names_and_bare_command_exit_2(tmp_path, bags):
    bag, params = bags[True]
    assert build(tmp_path, [bag, shutil.copytree(bag, tmp_path / 'x' / 'cdrive')], params) == 2
    assert main(['dataset']) == 2
