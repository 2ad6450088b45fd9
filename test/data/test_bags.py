"""BagReader / BagWriter in both storages: log-time order across topics, windows, every type
we write field by field, RIHS01 hashes and CDR against rclpy, copy_from, faults."""
import importlib
from pathlib import Path
import re
import shutil
import struct

from bags.drive_bag import Drive, corrupt_last_chunk, write_drive_bag
import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.serialization import deserialize_message
from rosbags.typesys import get_types_from_msg

from ar1_ros.data.bags import BagError, BagReader, BagWriter
from ar1_ros.data.typestore import ar1_typestore
from ar1_ros.msg import Reasoning, Trajectory

STORAGES = ['mcap', 'sqlite3']
TOPICS = {'/cam': 'sensor_msgs/msg/CompressedImage', '/raw': 'sensor_msgs/msg/Image',
          '/odom': 'nav_msgs/msg/Odometry', '/info': 'sensor_msgs/msg/CameraInfo',
          '/tf': 'tf2_msgs/msg/TFMessage', '/traj': 'ar1_ros/msg/Trajectory',
          '/why': 'ar1_ros/msg/Reasoning'}
# Every type we write whose rclpy package is installed here (tf2_msgs is not).
HASHED = sorted(set(TOPICS.values()) - {'tf2_msgs/msg/TFMessage'})
# Written in this order: log times go back and forth across topics.
LOG_NS = {'/odom': (50, 10, 30), '/cam': (40, 20), '/raw': (25,), '/info': (5,),
          '/tf': (60,), '/traj': (35,), '/why': (35,)}


def header(t):
    stamp = t['builtin_interfaces/msg/Time'](sec=7, nanosec=5)
    return t['std_msgs/msg/Header'](stamp=stamp, frame_id='base_link')


def duration(t, ns):
    return t['builtin_interfaces/msg/Duration'](sec=ns // 10 ** 9, nanosec=ns % 10 ** 9)


def trajectory(t):
    points = [t['ar1_ros/msg/TrajectoryPoint'](
        time_from_start=duration(t, (i + 1) * 10 ** 8), x=8.3 * i + 1e-9, y=-0.25 * i, z=0.5,
        yaw=0.01 * i, velocity=8.3, acceleration=-0.5, curvature=1 / 250) for i in range(64)]
    return t['ar1_ros/msg/Trajectory'](
        header=header(t), horizon=duration(t, 6_400_000_000), time_step=duration(t, 10 ** 8),
        points=points, sample_index=2, num_samples=3, model_id='nvidia/Alpamayo-R1-10B')


def reasoning(t):
    latency = [t['ar1_ros/msg/StageLatency'](stage=s, seconds=v)
               for s, v in (('vision', 0.0125), ('total', 0.5))]
    return t['ar1_ros/msg/Reasoning'](
        header=header(t), text='A pedestrian steps out: slow down.', decision='yield',
        token_count=17, latency=latency, sample_index=1, num_samples=3, model_id='m')


def sensors(t):
    """Return {topic: message} of the standard types."""
    vec, zero = t['geometry_msgs/msg/Vector3'], np.zeros(36)
    odom = t['nav_msgs/msg/Odometry'](
        header=header(t), child_frame_id='base_link',
        pose=t['geometry_msgs/msg/PoseWithCovariance'](pose=t['geometry_msgs/msg/Pose'](
            position=t['geometry_msgs/msg/Point'](x=1.5, y=-2.0, z=0.25),
            orientation=t['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.6, w=0.8)),
            covariance=np.arange(36.0)),
        twist=t['geometry_msgs/msg/TwistWithCovariance'](twist=t['geometry_msgs/msg/Twist'](
            linear=vec(x=8.0, y=0.0, z=0.0), angular=vec(x=0.0, y=0.0, z=0.08)),
            covariance=zero))
    info = t['sensor_msgs/msg/CameraInfo'](
        header=header(t), height=1080, width=1920, distortion_model='plumb_bob',
        d=np.array([0.1, -0.2, 0.0, 0.0, 0.01]), k=np.arange(9.0), r=np.eye(3).ravel(),
        p=np.arange(12.0), binning_x=0, binning_y=0, roi=t['sensor_msgs/msg/RegionOfInterest'](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
    transform = t['geometry_msgs/msg/TransformStamped'](
        header=header(t), child_frame_id='camera_front_wide',
        transform=t['geometry_msgs/msg/Transform'](
            translation=vec(x=1.7, y=0.0, z=1.4),
            rotation=t['geometry_msgs/msg/Quaternion'](x=-0.5, y=0.5, z=-0.5, w=0.5)))
    return {'/cam': t['sensor_msgs/msg/CompressedImage'](
                header=header(t), format='jpeg', data=np.arange(256, dtype=np.uint8)),
            '/raw': t['sensor_msgs/msg/Image'](
                header=header(t), height=2, width=3, encoding='rgb8', is_bigendian=0, step=9,
                data=np.arange(18, dtype=np.uint8)),
            '/odom': odom, '/info': info,
            '/tf': t['tf2_msgs/msg/TFMessage'](transforms=[transform])}


def write_all(path: Path, storage: str):
    """Write every TOPICS type at the LOG_NS times; return {topic: message written}."""
    with BagWriter(path, storage) as writer:
        t = writer.typestore.types
        written = dict(sensors(t), **{'/traj': trajectory(t), '/why': reasoning(t)})
        for topic, msgtype in TOPICS.items():
            writer.add_topic(topic, msgtype)
        for topic, times in LOG_NS.items():
            for log_ns in times:
                writer.write(topic, log_ns, written[topic])
    return written


def assert_same(actual, expected, where='msg'):
    """Compare rosbags message objects field by field (numpy arrays elementwise)."""
    if hasattr(expected, '__dataclass_fields__'):
        assert type(actual).__name__ == type(expected).__name__, where
        for name in expected.__dataclass_fields__:
            if name != '__msgtype__':
                assert_same(getattr(actual, name), getattr(expected, name), f'{where}.{name}')
    elif isinstance(expected, list):
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f'{where}[{i}]')
    elif isinstance(expected, np.ndarray):
        np.testing.assert_array_equal(actual, expected, err_msg=where)
    else:
        assert actual == expected, where


@pytest.mark.parametrize('storage', STORAGES)
def test_log_time_order_windows_and_every_type(tmp_path, storage):
    written = write_all(tmp_path / 'b', storage)
    expected = sorted((ns, topic) for topic, times in LOG_NS.items() for ns in times)
    with BagReader(tmp_path / 'b') as reader:
        assert reader.topics == TOPICS
        assert (reader.message_count(), reader.message_count('/odom')) == (len(expected), 3)
        assert (reader.start_ns, reader.end_ns) == (5, 60)
        got = [(m.log_ns, m.topic) for m in reader.messages()]
        assert [ns for ns, _ in got] == [ns for ns, _ in expected]
        assert sorted(got) == expected
        assert [m.log_ns for m in reader.messages(['/odom', '/cam'])] == [10, 20, 30, 40, 50]
        window = reader.messages(start_ns=20, stop_ns=40)  # [start, stop)
        assert [m.log_ns for m in window] == [20, 25, 30, 35, 35]
        assert [m.log_ns for m in reader.messages(['/odom'], 30, 31)] == [30]
        assert list(reader.messages(['/absent'])) == []
        for message in reader.messages():
            assert message.msgtype == TOPICS[message.topic]
            assert_same(reader.deserialize(message), written[message.topic], message.topic)


@pytest.mark.parametrize('storage', STORAGES)
def test_require_names_what_the_bag_has(tmp_path, storage):
    write_all(tmp_path / 'b', storage)
    with BagReader(tmp_path / 'b') as reader:
        assert reader.require('/odom', ('nav_msgs/msg/Odometry',)) == 'nav_msgs/msg/Odometry'
        with pytest.raises(BagError) as error:
            reader.require('/ego', ('nav_msgs/msg/Odometry',))
        for topic, msgtype in TOPICS.items():
            assert f'{topic} ({msgtype})' in str(error.value)
        assert str(tmp_path / 'b') in str(error.value)
        with pytest.raises(BagError, match='/cam is sensor_msgs/msg/CompressedImage, expected '
                                           'sensor_msgs/msg/Image or foo/msg/Bar'):
            reader.require('/cam', ('sensor_msgs/msg/Image', 'foo/msg/Bar'))


@pytest.fixture(scope='module')
def rclpy_hashes():
    """Return {msgtype: 'RIHS01_...'} as rclpy reports them for publishers of each type."""
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node('hash_probe', context=context)
    try:
        hashes = {}
        for index, msgtype in enumerate(HASHED):
            package, _, name = msgtype.split('/')
            node.create_publisher(getattr(importlib.import_module(f'{package}.msg'), name),
                                  f'/probe{index}', 1)
            info = node.get_publishers_info_by_topic(f'/probe{index}')
            hashes[msgtype] = str(info[0].topic_type_hash)
        return hashes
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


@pytest.mark.parametrize('storage', STORAGES)
def test_type_hashes_and_cdr_match_rclpy(tmp_path, storage, rclpy_hashes):
    write_all(tmp_path / 'b', storage)
    with BagReader(tmp_path / 'b') as reader:
        digests = {m.msgtype: m.connection.digest for m in reader.messages()
                   if m.msgtype in HASHED}
        raws = {m.topic: bytes(m.raw) for m in reader.messages(['/traj', '/why'])}
    assert all(h.startswith('RIHS01_') for h in rclpy_hashes.values())
    assert digests == rclpy_hashes, 'our .msg files and the generated types must agree'
    traj = deserialize_message(raws['/traj'], Trajectory)
    assert (len(traj.points), traj.points[63].x, traj.points[1].time_from_start.nanosec) == (
        64, 8.3 * 63 + 1e-9, 200_000_000)
    assert (traj.horizon.sec, traj.header.stamp.nanosec, traj.model_id) == (
        6, 5, 'nvidia/Alpamayo-R1-10B')
    why = deserialize_message(raws['/why'], Reasoning)
    assert (why.decision, why.token_count, why.num_samples) == ('yield', 17, 3)
    assert [(s.stage, s.seconds) for s in why.latency] == [('vision', 0.0125), ('total', 0.5)]


NESTED = {'their_msgs/msg/Inner': 'float64[] values\nstring label',
          'their_msgs/msg/Thing': 'int32 a\ntheir_msgs/Inner[] inner'}


def test_copy_from_carries_a_nested_recorded_type(tmp_path):
    with BagWriter(tmp_path / 'src') as writer:
        for name, text in NESTED.items():
            writer.typestore.register(get_types_from_msg(text, name))
        t = writer.typestore.types
        writer.add_topic('/thing', 'their_msgs/msg/Thing')
        writer.write('/thing', 10, t['their_msgs/msg/Thing'](a=42, inner=[
            t['their_msgs/msg/Inner'](values=np.array([1.5, -2.0]), label='x')]))
    assert 'their_msgs/msg/Thing' not in ar1_typestore().types
    with BagReader(tmp_path / 'src') as reader, BagWriter(tmp_path / 'dst', 'sqlite3') as copy:
        source = next(reader.messages())
        copy.add_topic('/copied', source.msgtype, copy_from=source.connection)
        copy.write_raw('/copied', 20, source.raw)
    with BagReader(tmp_path / 'dst') as reader:
        message = next(reader.messages())
        assert (message.topic, message.log_ns, message.raw) == ('/copied', 20, source.raw)
        assert message.connection.digest == source.connection.digest
        assert message.connection.msgdef.data == source.connection.msgdef.data
        thing = reader.deserialize(message)
    assert thing.a == 42
    assert thing.inner[0].label == 'x'
    np.testing.assert_array_equal(thing.inner[0].values, [1.5, -2.0])


def data_file(bag: Path) -> Path:
    return next(p for p in bag.iterdir() if p.suffix in ('.mcap', '.db3'))


@pytest.mark.parametrize('storage', STORAGES)
@pytest.mark.parametrize('keep', [0, 7, 0.5])
def test_truncated_data_file_fails_at_open_naming_the_bag(tmp_path, storage, keep):
    bag = write_drive_bag(tmp_path / 'b', Drive(duration_s=1.0, storage=storage))
    data = data_file(bag).read_bytes()
    data_file(bag).write_bytes(data[:int(len(data) * keep) if keep < 1 else keep])
    with pytest.raises(BagError, match=f'^{re.escape(str(bag))}: cannot open as a rosbag2 bag'):
        BagReader(bag)


def test_missing_and_foreign_paths(tmp_path):
    with pytest.raises(BagError, match=f'{re.escape(str(tmp_path / "nope"))}: no such bag'):
        BagReader(tmp_path / 'nope')
    (tmp_path / 'notes').mkdir()
    (tmp_path / 'notes' / 'readme.txt').write_text('not a bag')
    with pytest.raises(BagError, match='notes: cannot open as a rosbag2 bag'):
        BagReader(tmp_path / 'notes')


def test_writer_refuses_an_existing_path_unless_overwrite(tmp_path):
    bag = write_drive_bag(tmp_path / 'b', Drive(duration_s=1.0))
    with pytest.raises(BagError, match='exists; choose another output'):
        BagWriter(bag)
    with BagWriter(bag, 'sqlite3', overwrite=True) as writer:
        writer.add_topic('/why', 'ar1_ros/msg/Reasoning')
        writer.write('/why', 3, reasoning(writer.typestore.types))
    with BagReader(bag) as reader:
        assert (reader.topics, reader.message_count()) == ({'/why': 'ar1_ros/msg/Reasoning'}, 1)
    with pytest.raises(BagError, match="storage must be one of .*got 'rosbag1'"):
        BagWriter(tmp_path / 'c', 'rosbag1')


def corrupt_sqlite(bag: Path) -> Path:
    """Return a copy of a sqlite3 bag with an overflow-page link 70 % into the file broken.

    Opening never follows the overflow chains of the image blobs; reading that message fails.
    """
    broken = bag.parent / f'{bag.name}_broken'
    shutil.copytree(bag, broken)
    data = bytearray(data_file(broken).read_bytes())
    page = struct.unpack_from('>H', data, 16)[0]
    pages = len(data) // page
    # B-tree pages start with their type (2, 5, 10, 13); a chained overflow page of a small
    # database with the high byte of its next-page number, 0.
    victim = next(p for p in range(pages * 7 // 10, pages)
                  if data[p * page] == 0 and 0 < struct.unpack_from('>I', data, p * page)[0]
                  <= pages)
    struct.pack_into('>I', data, victim * page, 0x7FFFFFFF)
    data_file(broken).write_bytes(bytes(data))
    return broken


@pytest.mark.parametrize('storage', STORAGES)
def test_corruption_part_way_fails_after_the_good_messages(tmp_path, storage):
    bag = write_drive_bag(tmp_path / 'b', Drive(duration_s=6.0, size=(240, 320),
                                                storage=storage))
    with BagReader(bag) as reader:
        intact = [(m.topic, m.log_ns, bytes(m.raw)) for m in reader.messages()]
    broken = corrupt_last_chunk(bag) if storage == 'mcap' else corrupt_sqlite(bag)
    seen = []

    def read_all(reader):
        for message in reader.messages():
            reader.deserialize(message)
            seen.append((message.topic, message.log_ns, bytes(message.raw)))

    with BagReader(broken) as reader:
        assert reader.message_count() == len(intact), 'the fault is not visible at open'
        with pytest.raises(BagError) as error:
            read_all(reader)
    assert 0 < len(seen) < len(intact)
    assert seen == intact[:len(seen)]
    assert str(error.value).startswith(f'{broken}: read failed after the message at '
                                       f'{seen[-1][1] / 1e9:.3f} s (')
    assert 'corrupt or truncated' in str(error.value)
