"""BagReader / BagWriter: both storages, order, filters, our types, rclpy compatibility, faults."""
from pathlib import Path
import shutil

from bags.drive_bag import EGO_TOPIC, Drive, corrupt_last_chunk, write_drive_bag
import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from rosbags.typesys import get_types_from_msg

from ar1_ros.data.bags import BagError, BagReader, BagWriter
from ar1_ros.data.ego_track import EgoTrack
from ar1_ros.msg import Reasoning, Trajectory


def write_ours(path: Path, storage: str) -> Path:
    with BagWriter(path, storage) as writer:
        t = writer.typestore.types
        writer.add_topic('/traj', 'ar1_ros/msg/Trajectory')
        writer.add_topic('/why', 'ar1_ros/msg/Reasoning')
        header = t['std_msgs/msg/Header'](stamp=t['builtin_interfaces/msg/Time'](
            sec=5, nanosec=7), frame_id='base_link')
        duration = t['builtin_interfaces/msg/Duration'](sec=0, nanosec=100_000_000)
        points = [t['ar1_ros/msg/TrajectoryPoint'](
            time_from_start=duration, x=float(i), y=0.5, z=0.0, yaw=0.1, velocity=2.0,
            acceleration=0.0, curvature=0.01) for i in range(3)]
        writer.write('/traj', 5_000_000_007, t['ar1_ros/msg/Trajectory'](
            header=header, points=points, sample_index=1, num_samples=2, model_id='m',
            time_step=duration, horizon=duration))
        writer.write('/why', 5_000_000_008, t['ar1_ros/msg/Reasoning'](
            header=header, text='slow down', decision='stop', token_count=3, latency=[],
            sample_index=0, num_samples=1, model_id='m'))
    return path


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_round_trip_order_and_filters(tmp_path, storage):
    bag = write_drive_bag(tmp_path / 'b', Drive(duration_s=2.0, storage=storage))
    with BagReader(bag) as reader:
        assert reader.topics[EGO_TOPIC] == 'nav_msgs/msg/Odometry'
        assert reader.message_count() == 4 * 20 + 100
        logs = [m.log_ns for m in reader.messages()]
        assert logs == sorted(logs)
        assert (reader.start_ns, reader.end_ns) == (logs[0], logs[-1])
        window = list(reader.messages([EGO_TOPIC], logs[0], logs[0] + 10 ** 9))
        assert len(window) == 50
        assert all(m.topic == EGO_TOPIC for m in window)
        with pytest.raises(BagError, match='no topic /nope; the bag has: .*/test/odom'):
            reader.require('/nope', ('nav_msgs/msg/Odometry',))
        with pytest.raises(BagError, match='expected sensor_msgs/msg/Image'):
            reader.require(EGO_TOPIC, ('sensor_msgs/msg/Image',))


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_our_types_read_back_and_decode_with_rclpy(tmp_path, storage):
    with BagReader(write_ours(tmp_path / 'o', storage)) as reader:
        traj, why = list(reader.messages())
        msg = reader.deserialize(traj)
        assert [p.x for p in msg.points] == [0.0, 1.0, 2.0]
        assert reader.deserialize(why).decision == 'stop'
        rclpy_traj = deserialize_message(bytes(traj.raw), Trajectory)
        assert (rclpy_traj.sample_index, rclpy_traj.points[2].x) == (1, 2.0)
        assert deserialize_message(bytes(why.raw), Reasoning).text == 'slow down'


def test_copy_from_keeps_a_recorded_type(tmp_path):
    with BagWriter(tmp_path / 'src') as writer:
        writer.typestore.register(get_types_from_msg('int32 a', 'their_msgs/msg/Thing'))
        writer.add_topic('/thing', 'their_msgs/msg/Thing')
        writer.write('/thing', 10, writer.typestore.types['their_msgs/msg/Thing'](a=42))
    with BagReader(tmp_path / 'src') as reader, BagWriter(tmp_path / 'dst') as copy:
        for message in reader.messages():
            copy.add_topic(message.topic, message.msgtype, copy_from=message.connection)
            copy.write_raw(message.topic, message.log_ns, message.raw)
    with BagReader(tmp_path / 'dst') as reader:
        assert reader.deserialize(next(reader.messages())).a == 42


def test_open_errors(tmp_path):
    with pytest.raises(BagError, match='no such bag'):
        BagReader(tmp_path / 'missing')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(BagError, match='cannot open as a rosbag2 bag'):
        BagReader(tmp_path / 'empty')
    bag = write_drive_bag(tmp_path / 'b', Drive(duration_s=1.0))
    truncated = tmp_path / 'truncated'
    shutil.copytree(bag, truncated)
    data = next(truncated.glob('*.mcap'))
    data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
    with pytest.raises(BagError, match='truncated.*cannot open'):
        BagReader(truncated)
    with pytest.raises(BagError, match='exists'):
        BagWriter(bag)


def test_corrupt_chunk_fails_after_the_messages_before_it(tmp_path):
    bag = write_drive_bag(tmp_path / 'b', Drive(duration_s=10.0))
    broken = corrupt_last_chunk(bag)
    seen = []

    def read_all(reader):
        for message in reader.messages():
            seen.append(message.log_ns)

    with BagReader(broken) as reader, pytest.raises(BagError, match='after the message at'):
        read_all(reader)
    with BagReader(bag) as reader:
        total = reader.message_count()
    assert 0 < len(seen) < total
    with BagReader(broken) as reader:
        track, fault = EgoTrack.from_bag(reader, EGO_TOPIC)
    assert fault is not None
    assert 0 < len(track) < 500


def test_unknown_type_is_named(tmp_path):
    import sqlite3
    with BagWriter(tmp_path / 'c', 'sqlite3') as writer:
        writer.typestore.register(get_types_from_msg('int32 a', 'gone_msgs/msg/Thing'))
        writer.add_topic('/thing', 'gone_msgs/msg/Thing')
        writer.write('/thing', 10, writer.typestore.types['gone_msgs/msg/Thing'](a=1))
    database = next((tmp_path / 'c').glob('*.db3'))
    with sqlite3.connect(database) as connection:  # an older recorder stored no definitions
        connection.execute('delete from message_definitions')
    with BagReader(tmp_path / 'c') as reader, pytest.raises(
            BagError, match='unknown message type gone_msgs/msg/Thing on /thing'):
        reader.deserialize(next(reader.messages()))


def test_ego_track_future_is_the_drive_in_the_t0_frame(tmp_path):
    from ros.synthetic import NS, arc_pose
    drive = Drive(duration_s=8.0)
    with BagReader(write_drive_bag(tmp_path / 'b', drive)) as reader:
        track, fault = EgoTrack.from_bag(reader, EGO_TOPIC)
    assert fault is None
    t0 = int((drive.start_s + 1.0) * NS)
    xyz, rot = track.future(t0)
    x0, y0, yaw0 = arc_pose(t0 / NS, drive.speed, drive.curvature)
    for i in (0, 31, 63):
        x, y, yaw = arc_pose(t0 / NS + (i + 1) * 0.1, drive.speed, drive.curvature)
        c, s = np.cos(yaw0), np.sin(yaw0)
        expected = (c * (x - x0) + s * (y - y0), -s * (x - x0) + c * (y - y0))
        # Linear interpolation between 50 Hz samples of an arc: chord error < 1 mm.
        np.testing.assert_allclose(xyz[i, :2], expected, atol=1e-3)
        assert np.arctan2(rot[i, 1, 0], rot[i, 0, 0]) == pytest.approx(yaw - yaw0, abs=1e-6)
    assert track.future(int((drive.start_s + 2.0) * NS)) is None, 'bag ends before 6.4 s'


def test_unfinished_mcap_is_read_up_to_its_cut(tmp_path):
    bag = write_drive_bag(tmp_path / 'b', Drive(duration_s=10.0))
    with BagReader(bag) as reader:
        everything = [(m.topic, m.log_ns, bytes(m.raw)) for m in reader.messages()]
    data = next(bag.glob('*.mcap'))
    data.write_bytes(data.read_bytes()[:data.stat().st_size * 9 // 10])  # recorder killed
    seen = []

    def read_all(reader):
        for message in reader.messages():
            reader.deserialize(message)
            seen.append((message.topic, message.log_ns, bytes(message.raw)))

    with BagReader(bag) as reader:
        assert reader.recovered
        assert set(reader.topics) == {t for t, _, _ in everything}
        assert reader.message_count() == 706  # the complete chunks (writer's 1 MB chunks)
        with pytest.raises(BagError, match='never closed .* after the message at'):
            read_all(reader)
    assert seen == everything[:len(seen)]
    assert len(seen) == 706
