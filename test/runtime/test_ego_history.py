import numpy as np
import pytest

from ar1_ros.runtime.buffers import StampedRing
from ar1_ros.runtime.config import SelectionConfig
from ar1_ros.runtime.ego_history import build_history, check_ego_state, interpolate_pose
from ar1_ros.runtime.rotations import rot_z, yaw_of
from ar1_ros.runtime.types import EgoHistory, EgoState, Skip

from .synthetic import MS, Circle, S, odometry_stamps

CFG = SelectionConfig()


def _ring(states):
    ring = StampedRing(10 * S)
    for state in states:
        ring.insert(state.stamp_ns, state)
    return ring


def _circle_ring(car, stamps, **kwargs):
    return _ring([car.state(s, **kwargs) for s in stamps])


def _state(stamp=0, position=(0, 0, 0), rotation=None, velocity=(0, 0, 0)):
    return EgoState(stamp, np.array(position, dtype=float),
                    np.eye(3) if rotation is None else np.array(rotation, dtype=float),
                    np.array(velocity, dtype=float))


def test_check_ego_state_accepts_a_good_state():
    assert check_ego_state(Circle().state(5 * S)) is None


@pytest.mark.parametrize(('kwargs', 'expected'), [
    ({'position': (np.nan, 0, 0)}, 'position is not finite'),
    ({'velocity': (0, np.inf, 0)}, 'velocity is not finite'),
    ({'rotation': np.full((3, 3), np.nan)}, 'rotation is not finite'),
    ({'rotation': np.diag([1.0, 1.0, 1.01])}, 'not orthonormal'),
    ({'rotation': np.diag([1.0, 1.0, -1.0])}, 'det = -1.000'),
    ({'position': (0, 0)}, 'position has shape (2,)'),
])
def test_check_ego_state_reasons(kwargs, expected):
    assert expected in check_ego_state(_state(**kwargs))


def test_interpolate_pose_linear_and_slerp():
    ring = _ring([_state(0, (0, 0, 0), rot_z(0.1), (1, 0, 0)),
                  _state(100 * MS, (2, 4, 0), rot_z(0.5), (3, 0, 0))])
    position, rotation, velocity = interpolate_pose(ring, 25 * MS, 200 * MS)
    np.testing.assert_allclose(position, [0.5, 1.0, 0.0])
    assert yaw_of(rotation) == pytest.approx(0.2, abs=1e-12)
    np.testing.assert_allclose(velocity, [1.5, 0, 0])
    position, rotation, _ = interpolate_pose(ring, 100 * MS, 200 * MS)
    np.testing.assert_array_equal(position, [2, 4, 0])
    np.testing.assert_array_equal(rotation, rot_z(0.5))


def test_interpolate_pose_skips():
    ring = _ring([_state(0), _state(100 * MS), _state(500 * MS)])
    outside = interpolate_pose(ring, 600 * MS, 250 * MS)
    assert outside.reason == 'ego_not_covered'
    assert '[0.000, 0.500] s' in outside.detail
    assert interpolate_pose(ring, -1, 250 * MS).reason == 'ego_not_covered'
    gap = interpolate_pose(ring, 300 * MS, 250 * MS)
    assert gap.reason == 'ego_gap'
    assert '400 ms' in gap.detail
    assert interpolate_pose(StampedRing(S), 0, S).reason == 'ego_not_covered'


@pytest.mark.parametrize('speed', [10.0, 0.5, 25.0])
def test_history_of_a_circle_matches_the_analytic_t0_frame(speed):
    car = Circle(speed=speed, radius=40.0)
    t0 = 3 * S
    # 50 Hz odometry whose samples fall on the 0.1 s grid: interpolation is exact.
    history = build_history(_circle_ring(car, odometry_stamps(S, t0 + S)), t0, CFG)
    assert isinstance(history, EgoHistory)
    dts = (np.arange(16) - 15) * 0.1
    expected = np.stack([car.relative(dt)[0] for dt in dts])
    np.testing.assert_allclose(history.xyz, expected, atol=1e-6)
    np.testing.assert_allclose(yaw_of(history.rot), car.rate * dts, atol=1e-9)
    np.testing.assert_array_equal(history.xyz[-1], np.zeros(3))
    np.testing.assert_array_equal(history.rot[-1], np.eye(3))
    np.testing.assert_array_equal(history.stamps_ns, t0 - (15 - np.arange(16)) * 100 * MS)
    assert history.stamps_ns.dtype == np.int64
    assert history.speed == pytest.approx(speed)
    np.testing.assert_allclose(history.pose_t0.position, car.position(t0), atol=1e-12)
    np.testing.assert_allclose(history.pose_t0.rotation, rot_z(car.yaw(t0)), atol=1e-12)
    assert history.frame_id == 'odom'


def test_history_between_samples_slerps_the_analytic_yaw():
    car = Circle()
    t0 = 3 * S + 7 * MS  # off the odometry stamps: every grid pose is interpolated
    history = build_history(_circle_ring(car, odometry_stamps(S, 4 * S), frame_id='map'),
                            t0, CFG)
    dts = (np.arange(16) - 15) * 0.1
    np.testing.assert_allclose(yaw_of(history.rot), car.rate * dts, atol=1e-9)
    expected = np.stack([car.relative(dt)[0] for dt in dts])
    # Linear position interpolation across 20 ms cuts the arc by at most its sagitta.
    sagitta = car.radius * (car.rate * 0.02) ** 2 / 8
    assert np.max(np.abs(history.xyz - expected)) < 2 * sagitta
    assert history.frame_id == 'map'


def test_history_with_jittered_odometry():
    car = Circle()
    stamps = odometry_stamps(S, 4 * S, jitter_ns=5 * MS, seed=3)
    history = build_history(_circle_ring(car, stamps), 3 * S, CFG)
    dts = (np.arange(16) - 15) * 0.1
    np.testing.assert_allclose(yaw_of(history.rot), car.rate * dts, atol=1e-9)
    expected = np.stack([car.relative(dt)[0] for dt in dts])
    assert np.max(np.abs(history.xyz - expected)) < 1e-2


def test_history_out_of_order_odometry_gives_the_same_result():
    car = Circle()
    stamps = odometry_stamps(S, 4 * S)
    ordered = build_history(_circle_ring(car, stamps), 3 * S, CFG)
    shuffled = build_history(_circle_ring(car, stamps[::-1]), 3 * S, CFG)
    np.testing.assert_array_equal(ordered.xyz, shuffled.xyz)


def test_history_gap_in_odometry():
    car = Circle()
    stamps = [s for s in odometry_stamps(S, 4 * S) if not 2 * S < s < 2 * S + 300 * MS]
    gap = build_history(_circle_ring(car, stamps), 3 * S, CFG)
    assert isinstance(gap, Skip)
    assert gap.reason == 'ego_gap'
    # A gap within max_ego_gap_s (0.25 s) is bridged.
    stamps = [s for s in odometry_stamps(S, 4 * S) if not 2 * S < s < 2 * S + 200 * MS]
    assert isinstance(build_history(_circle_ring(car, stamps), 3 * S, CFG), EgoHistory)


def test_history_needs_the_whole_span():
    car = Circle()
    short = build_history(_circle_ring(car, odometry_stamps(2 * S, 4 * S)), 3 * S, CFG)
    assert short.reason == 'ego_not_covered'
    ahead = build_history(_circle_ring(car, odometry_stamps(S, 3 * S)), 3 * S + MS, CFG)
    assert ahead.reason == 'ego_not_covered'


def test_history_rejects_twist_inconsistent_with_motion():
    car = Circle(speed=10.0)
    stamps = odometry_stamps(S, 4 * S)
    bad = build_history(_circle_ring(car, stamps, speed=14.0), 3 * S, CFG)
    assert bad.reason == 'ego_history_invalid'
    assert '10.00 m/s' in bad.detail
    assert '14.00 m/s' in bad.detail
    # Within max(1 m/s, 20 %) it passes; a reversing car (negative body x) also passes.
    assert build_history(_circle_ring(car, stamps, speed=11.5), 3 * S, CFG).speed == 11.5
    assert build_history(_circle_ring(car, stamps, speed=-10.0), 3 * S, CFG).speed == -10.0
    standing = build_history(_circle_ring(Circle(speed=0.0), stamps, speed=1.5), 3 * S, CFG)
    assert standing.reason == 'ego_history_invalid'


def test_history_rejects_nan_poses_stored_directly():
    car = Circle()
    states = [car.state(s) for s in odometry_stamps(S, 4 * S)]
    states[60] = EgoState(states[60].stamp_ns, np.full(3, np.nan), states[60].rotation,
                          states[60].velocity)
    bad = build_history(_ring(states), 3 * S, CFG)
    assert bad.reason == 'ego_history_invalid'
    assert 'position is not finite' in bad.detail


def test_history_rejects_overflowing_positions():
    states = [_state(s, (1e308 * (-1) ** (s // (100 * MS)), 0, 0))
              for s in odometry_stamps(S, 4 * S, period_ns=100 * MS)]
    with np.errstate(all='ignore'):
        bad = build_history(_ring(states), 3 * S, CFG)
    assert bad.reason == 'ego_history_invalid'
    assert 'not finite' in bad.detail
