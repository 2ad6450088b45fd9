"""Bag inputs into the runtime's buffers, ego ground truth, and keyframe rules at their onsets.

The drive bag is an arc of constant speed and curvature (ros.synthetic.arc_pose), so histories
and futures are known in closed form; every 0.1 s grid time of a camera-stamped t0 falls on a
50 Hz odometry sample, so interpolation adds no error and 1e-6 holds.
"""
import math
import re

from bags.drive_bag import (
    EGO_TOPIC,
    Drive,
    camera_message,
    corrupt_last_chunk,
    odometry_message,
    write_drive_bag,
)
import numpy as np
import pytest
from ros.synthetic import CAMERAS, NS, arc_pose, make_image, topic_of

from ar1_ros.data.bags import BagReader, BagWriter
from ar1_ros.data.ego_track import EgoTrack, Kinematics
from ar1_ros.data.keyframes import KeyframeRules, detect_keyframes
from ar1_ros.data.stream import BagInputs, CameraTopic, TopicMap
from ar1_ros.runtime.assembly import InputBuffers
from ar1_ros.runtime.cameras import CameraSpec
from ar1_ros.runtime.config import RuntimeConfig
from ar1_ros.runtime.types import Observation


def topic_map(compressed=True) -> TopicMap:
    return TopicMap(tuple(CameraTopic(topic_of(cid, compressed), name, compressed)
                          for cid, name in CAMERAS), EGO_TOPIC)


def buffers() -> InputBuffers:
    return InputBuffers(RuntimeConfig(cameras=tuple(CameraSpec(name) for _, name in CAMERAS)))


def rotz(yaw):
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def in_frame_of(t0_ns, stamps_ns, drive):
    """Return xyz (N, 3) and rot (N, 3, 3) of the arc at stamps_ns in the ego frame at t0."""
    x0, y0, yaw0 = arc_pose(t0_ns / NS, drive.speed, drive.curvature)
    r0 = rotz(yaw0)
    poses = [arc_pose(int(t) / NS, drive.speed, drive.curvature) for t in stamps_ns]
    xyz = np.array([r0.T @ np.array([x - x0, y - y0, 0.0]) for x, y, _ in poses])
    return xyz, np.stack([rotz(yaw - yaw0) for _, _, yaw in poses])


def replay(reader, inputs, store, problems=None):
    """Feed every message as eval does, assembling after each; return the observations.

    problems: a list receiving (topic, reason) of every rejected message.
    """
    observations, last = [], None
    for message in reader.messages():
        problem = inputs.feed(message)
        if problem and problems is not None:
            problems.append((message.topic, problem))
        observation = store.assemble(message.log_ns, last)
        if isinstance(observation, Observation):
            observations.append(observation)
            last = observation.t0_ns
    return observations


@pytest.mark.parametrize('compressed', [True, False])
def test_bag_inputs_give_camera_stamped_t0_and_the_arc_history(tmp_path, compressed):
    drive = Drive(duration_s=3.0, compressed=compressed)
    store, states = buffers(), []
    with BagReader(write_drive_bag(tmp_path / 'b', drive)) as reader:
        inputs = BagInputs(reader, topic_map(compressed), store, on_ego=states.append)
        observations = replay(reader, inputs, store)
    start = int(drive.start_s * NS)
    assert [o.t0_ns for o in observations] == [start + k * NS // 10 for k in range(15, 30)]
    assert not inputs.rejected
    assert len(states) == 150
    for observation in observations:
        t0 = observation.t0_ns
        frames = observation.frame_stamps_ns()
        assert frames.shape == (4, 4)
        assert (frames == t0 + np.array([-3, -2, -1, 0]) * NS // 10).all()
        assert observation.frames[1][3].rgb().shape == (*drive.size, 3)
        history = observation.history
        xyz, rot = in_frame_of(t0, history.stamps_ns, drive)
        np.testing.assert_allclose(history.xyz, xyz, atol=1e-6)
        np.testing.assert_allclose(history.rot, rot, atol=1e-6)
        assert history.speed == pytest.approx(drive.speed, abs=1e-9)
    assert list(observations[0].history.stamps_ns) == [start + k * NS // 10 for k in range(16)]


def write_faulty_bag(path, drive):
    """A 2 s drive with one unstamped frame, one corrupt JPEG, one NaN pose, one other topic."""
    pictures = [make_image(*drive.size, seed) for seed in range(4)]
    start = int(drive.start_s * NS)
    with BagWriter(path) as writer:
        compressed = writer.typestore.types['sensor_msgs/msg/CompressedImage']
        for camera_id, _ in CAMERAS:
            writer.add_topic(topic_of(camera_id, True), 'sensor_msgs/msg/CompressedImage')
        writer.add_topic(EGO_TOPIC, 'nav_msgs/msg/Odometry')
        writer.add_topic('/other/odom', 'nav_msgs/msg/Odometry')
        for step in range(100):
            stamp = start + step * NS // 50
            odom = odometry_message(writer, drive, stamp)
            if step == 60:
                odom.pose.pose.position.x = float('nan')
            writer.write(EGO_TOPIC, stamp, odom)
            writer.write('/other/odom', stamp + 1, odom)
        for frame in range(20):
            stamp = start + frame * NS // 10
            for index, (camera_id, _) in enumerate(CAMERAS):
                msg = camera_message(writer, drive, index, 0 if (frame, index) == (12, 0)
                                     else stamp, frame, pictures)
                if (frame, index) == (14, 1):
                    msg = compressed(header=msg.header, format='jpeg', data=np.frombuffer(
                        b'\xff\xd8\xff' + b'garbage' * 40, dtype=np.uint8))
                writer.write(topic_of(camera_id, True), stamp + 1 + index, msg)


def test_rejected_messages_are_counted_and_kept_out(tmp_path):
    drive = Drive(duration_s=2.0)
    write_faulty_bag(tmp_path / 'b', drive)
    store, problems, states = buffers(), [], []
    with BagReader(tmp_path / 'b') as reader:
        inputs = BagInputs(reader, topic_map(), store, on_ego=states.append)
        observations = replay(reader, inputs, store, problems)
    left, wide = topic_of(CAMERAS[0][0], True), topic_of(CAMERAS[1][0], True)
    assert [t for t, _ in problems] == [EGO_TOPIC, left, wide]
    assert 'not finite' in problems[0][1]
    assert 'stamp is zero' in problems[1][1]
    assert 'JPEG' in problems[2][1]
    assert dict(inputs.rejected) == {(EGO_TOPIC, 'ego position is not finite'): 1,
                                     (left, 'header.stamp is zero'): 1,
                                     (wide, problems[2][1].split(':')[0]): 1}
    assert len(states) == 99, 'the NaN pose never reaches on_ego; /other/odom is ignored'
    # t0 of 1.5 s to 1.7 s would need a rejected frame (1.2 s, 1.4 s); the NaN pose at 1.2 s
    # lies between two good ones, so histories interpolate across it.
    start = int(drive.start_s * NS)
    assert [o.t0_ns for o in observations] == [start + 18 * NS // 10, start + 19 * NS // 10]


@pytest.fixture(scope='module')
def drive_track(tmp_path_factory):
    drive = Drive(duration_s=8.0)
    bag = write_drive_bag(tmp_path_factory.mktemp('track') / 'b', drive)
    with BagReader(bag) as reader:
        track, fault = EgoTrack.from_bag(reader, EGO_TOPIC)
    assert fault is None
    return drive, bag, track


def test_future_is_the_arc_in_the_t0_frame(drive_track):
    drive, _, track = drive_track
    start = int(drive.start_s * NS)
    for t0 in (start, start + 15 * NS // 10):
        xyz, rot = track.future(t0)
        expected = in_frame_of(t0, t0 + np.arange(1, 65) * NS // 10, drive)
        np.testing.assert_allclose(xyz, expected[0], atol=1e-6)
        np.testing.assert_allclose(rot, expected[1], atol=1e-6)
    last_odometry = start + int((drive.duration_s - 0.02) * NS)
    assert track.future(last_odometry - 64 * NS // 10) is not None
    assert track.future(last_odometry - 64 * NS // 10 + 1) is None, 'horizon past the end'
    assert track.future(start - 1) is None


def test_kinematics_of_the_arc(drive_track):
    drive, _, track = drive_track
    k = track.kinematics()
    assert len(k.stamps_ns) == 80
    np.testing.assert_allclose(k.speed, drive.speed, atol=1e-9)
    np.testing.assert_allclose(k.accel, 0.0, atol=1e-9)
    np.testing.assert_allclose(k.yaw_rate, drive.speed * drive.curvature, atol=1e-6)
    x, y, _ = arc_pose(int(k.stamps_ns[33]) / NS, drive.speed, drive.curvature)
    np.testing.assert_allclose(k.xy[33], [x, y], atol=1e-6)
    assert detect_keyframes(k) == []


def test_track_of_a_corrupt_bag_keeps_the_samples_before_the_fault(drive_track):
    drive, bag, _ = drive_track
    with BagReader(bag) as reader:
        logs = [m.log_ns for m in reader.messages([EGO_TOPIC])]
    with BagReader(corrupt_last_chunk(bag)) as reader:
        track, fault = EgoTrack.from_bag(reader, EGO_TOPIC)
    last_good = float(re.search(r'after the message at ([0-9.]+) s', str(fault)).group(1))
    before = [log for log in logs if log <= last_good * NS + NS // 2000]
    assert 0 < len(before) < len(logs)
    assert len(track) == len(before)
    stamp_of = int(drive.odom_latency_s * NS)
    assert track.span_ns == (before[0] - stamp_of, before[-1] - stamp_of)


DT = 0.1
T = np.arange(300) * DT  # 30 s at 10 Hz


def kinematics(speed, yaw, y_offset=None) -> Kinematics:
    """Kinematics (10 Hz) of a speed and heading profile; y_offset (N,) shifts sideways."""
    speed, yaw = np.broadcast_to(speed, T.shape).astype(float), np.asarray(yaw, dtype=float)
    xy = np.cumsum(np.stack([speed * np.cos(yaw), speed * np.sin(yaw)], 1), 0) * DT
    if y_offset is not None:
        xy[:, 1] += y_offset
    return Kinematics((T * NS).round().astype(np.int64), speed, np.gradient(speed, DT), yaw,
                      np.gradient(yaw, DT), xy)


def found(k, rules=None, uniform_s=0.0):
    rules = rules or KeyframeRules()
    return [(f.kind, f.t_ns / NS) for f in detect_keyframes(k, rules, uniform_s)]


def turn(start_s, rate=0.3, length_s=3.0):
    """Heading (N,) of a turn at `rate` rad/s from start_s for length_s."""
    t = T
    return np.cumsum(np.where((t >= start_s) & (t < start_s + length_s), rate, 0.0)) * DT


def assert_events(events, expected):
    assert [kind for kind, _ in events] == [kind for kind, _ in expected], events
    for (_, t), (_, want) in zip(events, expected, strict=True):
        assert t == pytest.approx(want, abs=0.3), events


def test_braking_stopping_starting_and_accelerating_onsets():
    # 10 m/s, brake at 2.5 m/s^2 from 3 s to a stop at 7 s, start at 11 s with 1.5 m/s^2.
    speed = np.where(T < 3, 10.0, np.maximum(10 - 2.5 * (T - 3), 0.0))
    speed = np.where(T >= 11, np.minimum(1.5 * (T - 11), 9.0), speed)
    assert_events(found(kinematics(speed, np.zeros_like(T))),
                  [('braking', 3.0), ('stopping', 3 + 9.7 / 2.5), ('starting', 11 + 0.5 / 1.5)])
    cruise = np.where(T < 5, 5.0, np.minimum(5 + 1.5 * (T - 5), 12.0))
    assert_events(found(kinematics(cruise, np.zeros_like(T))), [('accelerating', 5.0)])


def test_turn_onset_and_no_lane_change_after_it():
    assert_events(found(kinematics(8.0, turn(5.0))), [('turning', 5.0)])
    # A long highway curve: 0.02 rad/s at 30 m/s turns 0.08 rad in 4 s, 4.8 m sideways.
    assert found(kinematics(30.0, turn(3.0, rate=0.02, length_s=20.0))) == []


def test_lane_change_onset():
    # 3.5 m to the left over 4 s from 8 s at 15 m/s; the heading swings out and back to 0.
    u = np.clip(T - 8.0, 0.0, 4.0)
    lateral = 3.5 * (1 - np.cos(np.pi * u / 4)) / 2
    yaw = np.arctan2(np.gradient(lateral, DT), 15.0)
    k = Kinematics((T * NS).round().astype(np.int64), np.full_like(T, 15.0), np.zeros_like(T),
                   yaw, np.gradient(yaw, DT), np.stack([15.0 * T, lateral], 1))
    assert abs(yaw[-1]) < 1e-12
    assert 0.05 < yaw.max() < 0.1
    assert_events(found(k), [('lane_change', 8.0)])


def test_straight_constant_speed_has_none():
    assert found(kinematics(12.0, np.zeros_like(T))) == []
    assert found(kinematics(12.0, np.zeros_like(T)), uniform_s=0.0) == []
    assert detect_keyframes(None) == []


def brake_and_turn(brake_s, turn_s):
    """Braking 10 -> 6 m/s from brake_s, then a turn from turn_s."""
    speed = np.clip(10 - 2.5 * (T - brake_s), 6.0, 10.0)
    return kinematics(speed, turn(turn_s, length_s=1.0))


def test_min_gap_merges_into_the_earlier_event():
    assert_events(found(brake_and_turn(5.0, 6.0)), [('braking', 5.0)])
    assert_events(found(brake_and_turn(5.0, 6.0), KeyframeRules(min_gap_s=0.5)),
                  [('braking', 5.0), ('turning', 6.0)])
    assert_events(found(brake_and_turn(5.0, 7.5)), [('braking', 5.0), ('turning', 7.5)])


def test_history_and_horizon_margins():
    # Braking at 1 s lacks 1.6 s of history: dropped, and it does not swallow the turn.
    assert_events(found(brake_and_turn(1.0, 2.5)), [('turning', 2.5)])
    end = T[-1]
    assert_events(found(brake_and_turn(end - 7.0, end - 6.0)), [('braking', end - 7.0)])
    rules = KeyframeRules(history_s=3.0, horizon_s=3.0)
    assert_events(found(brake_and_turn(2.5, end - 4.0), rules), [('turning', end - 4.0)])


def test_uniform_keyframes_never_displace_events():
    k = brake_and_turn(7.6, 20.0)  # braking at 7.6 s: on the uniform grid 1.6 + 3 x 2 s
    events = found(k)
    assert_events(events, [('braking', 7.6), ('turning', 20.0)])
    rules = KeyframeRules()
    with_uniform = found(k, rules, uniform_s=1.0)
    assert [e for e in with_uniform if e[0] != 'uniform'] == events
    times = [t for _, t in with_uniform]
    assert times == sorted(times)
    assert all(b - a >= rules.min_gap_s - 1e-9 for a, b in zip(times[:-1], times[1:], strict=True))
    uniform = [t for kind, t in with_uniform if kind == 'uniform']
    assert uniform[0] == pytest.approx(rules.history_s)
    assert uniform[-1] <= T[-1] - rules.horizon_s
    assert len(uniform) >= 5
