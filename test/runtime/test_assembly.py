import numpy as np
import pytest

from ar1_ros.runtime.assembly import ClockWatch, InputBuffers
from ar1_ros.runtime.cameras import DEFAULT_CAMERAS, CameraSpec
from ar1_ros.runtime.config import RuntimeConfig, SelectionConfig
from ar1_ros.runtime.types import EgoState, Observation

from .synthetic import MS, Circle, S, frame, odometry_stamps

T0 = 20 * S
FRONT, TELE = 'camera_front_wide_120fov', 'camera_front_tele_30fov'


def _buffers(policy='skip', cameras=DEFAULT_CAMERAS):
    # Given in reverse: the buffers must still come out in model order.
    specs = tuple(CameraSpec(name) for name in reversed(cameras))
    return InputBuffers(RuntimeConfig(specs, SelectionConfig(missing_camera_policy=policy)))


def _feed_camera(buffers, name, newest_ns, count=20, jitter_ms=0, seed=0, size=(4, 6)):
    rng = np.random.default_rng(seed)
    for k in range(count):
        jitter = int(rng.integers(-jitter_ms, jitter_ms + 1)) * MS if jitter_ms and k else 0
        buffers.add_frame(name, frame(newest_ns - k * 100 * MS + jitter, size))


def _feed_ego(buffers, newest_ns, car=None):
    car = car or Circle()
    for stamp in odometry_stamps(newest_ns - 2 * S, newest_ns):
        assert buffers.add_ego(car.state(stamp)) is None


def _full(buffers, t0=T0, lag=None, jitter_ms=20):
    lag = lag or {}
    for i, name in enumerate(buffers.camera_names):
        _feed_camera(buffers, name, t0 + lag.get(name, 0), jitter_ms=jitter_ms, seed=i)
    _feed_ego(buffers, t0 + 40 * MS)


def test_buffers_follow_model_order():
    assert _buffers().camera_names == DEFAULT_CAMERAS


def test_assemble_with_jittered_cameras():
    buffers = _buffers()
    _full(buffers)
    obs = buffers.assemble(T0 + 100 * MS)
    assert isinstance(obs, Observation)
    assert obs.t0_ns == T0
    assert obs.camera_names == DEFAULT_CAMERAS
    stamps = obs.frame_stamps_ns()
    assert stamps.shape == (4, 4)
    grid = T0 + np.array([-300, -200, -100, 0]) * MS
    assert np.all(np.abs(stamps - grid) <= 20 * MS)
    assert obs.history.xyz.shape == (16, 3)
    assert obs.history.stamps_ns[-1] == T0
    assert obs.filled == ()
    assert obs.epoch == 0


def test_late_camera_sets_t0():
    buffers = _buffers()
    _full(buffers, lag={TELE: -150 * MS}, jitter_ms=0)
    assert buffers.choose_t0() == T0 - 150 * MS
    obs = buffers.assemble(T0)
    assert obs.t0_ns == T0 - 150 * MS
    assert obs.history.stamps_ns[-1] == T0 - 150 * MS
    # The other cameras' frames are 50 ms off the grid, which the tolerance still accepts.
    assert np.all(np.abs(obs.frame_stamps_ns() - (obs.t0_ns + np.arange(-3, 1) * 100 * MS))
                  <= 50 * MS)


def test_t0_steps_back_to_a_frame_the_odometry_covers():
    buffers = _buffers()
    for i, name in enumerate(buffers.camera_names):
        _feed_camera(buffers, name, T0, seed=i)
    _feed_ego(buffers, T0 - 30 * MS)
    # Odometry ends 30 ms before the newest frames: t0 is the previous frame, not a pose time
    # with a frame from after it.
    assert buffers.choose_t0() == T0 - 100 * MS
    obs = buffers.assemble(T0)
    assert obs.t0_ns == T0 - 100 * MS
    assert obs.frame_stamps_ns().max() == T0 - 100 * MS


def test_t0_is_the_odometry_when_no_frame_is_covered():
    buffers = _buffers()
    for i, name in enumerate(buffers.camera_names):
        _feed_camera(buffers, name, T0, count=1, seed=i)
    _feed_ego(buffers, T0 - 30 * MS)
    assert buffers.choose_t0() == T0 - 30 * MS


@pytest.mark.parametrize('missing', ['ego', FRONT])
def test_no_input(missing):
    buffers = _buffers()
    for name in buffers.camera_names:
        if name != missing:
            _feed_camera(buffers, name, T0)
    if missing != 'ego':
        _feed_ego(buffers, T0)
    result = buffers.assemble(T0)
    assert result.reason == 'no_input'
    assert (missing if missing != 'ego' else 'odometry') in result.detail
    assert _buffers().assemble(T0).reason == 'no_input'


def test_stale_and_no_new_input():
    buffers = _buffers()
    _full(buffers)
    stale = buffers.assemble(T0 + 1500 * MS)
    assert stale.reason == 'stale_inputs'
    assert '1.50 s' in stale.detail
    assert buffers.assemble(T0 + 10 * MS, last_t0_ns=T0).reason == 'no_new_input'
    assert isinstance(buffers.assemble(T0 + 10 * MS, last_t0_ns=T0 - 1), Observation)


def _feed_with_gap(buffers, missing_k):
    # 10 Hz frames ending at T0 on every camera; FRONT lacks the frame k periods before T0.
    for name in buffers.camera_names:
        for k in range(20):
            if not (name == FRONT and k == missing_k):
                buffers.add_frame(name, frame(T0 - k * 100 * MS))
    _feed_ego(buffers, T0)


def test_dropped_frame_skips_the_cycle():
    buffers = _buffers()
    _feed_with_gap(buffers, 1)
    result = buffers.assemble(T0)
    assert result.reason == 'camera_missing'
    assert FRONT in result.detail


def test_out_of_order_frames_give_the_same_observation():
    ordered, shuffled = _buffers(), _buffers()
    rng = np.random.default_rng(1)
    for name in DEFAULT_CAMERAS:
        stamps = [T0 - k * 100 * MS + int(rng.integers(-20, 21)) * MS for k in range(20)]
        stamps[0] = T0
        for s in sorted(stamps):
            ordered.add_frame(name, frame(s))
        for s in rng.permutation(stamps):
            shuffled.add_frame(name, frame(int(s)))
    _feed_ego(ordered, T0)
    _feed_ego(shuffled, T0)
    a, b = ordered.assemble(T0), shuffled.assemble(T0)
    np.testing.assert_array_equal(a.frame_stamps_ns(), b.frame_stamps_ns())
    np.testing.assert_array_equal(a.history.xyz, b.history.xyz)


def test_add_frame_rejects_unknown_cameras():
    with pytest.raises(ValueError, match='camera_rear_tele_30fov'):
        _buffers().add_frame('camera_rear_tele_30fov', frame(0))


def test_image_size_change_clears_the_camera():
    buffers = _buffers()
    _full(buffers, jitter_ms=0)
    later = T0 + 100 * MS
    for name in buffers.camera_names:
        if name != FRONT:
            assert buffers.add_frame(name, frame(later)) is None
    note = buffers.add_frame(FRONT, frame(later, size=(8, 6)))
    assert note == f'camera {FRONT}: image size changed from 4x6 to 8x6; buffer cleared'
    assert buffers.newest_stamps()[FRONT] == later
    assert buffers.add_frame(FRONT, frame(later + 100 * MS, size=(8, 6))) is None
    _feed_ego(buffers, later)
    # The 4x6 frames are gone: the new size has no history yet.
    result = buffers.assemble(later)
    assert result.reason == 'camera_missing'
    assert result.detail == (f'{FRONT}: no frame within 50 ms of t0-0.3 s '
                             '(nearest 300 ms away)')


def test_add_ego_rejects_nan_poses():
    buffers = _buffers()
    good = Circle().state(T0)
    bad = EgoState(T0 + 20 * MS, np.array([np.nan, 0, 0]), good.rotation, good.velocity)
    assert buffers.add_ego(good) is None
    assert 'position is not finite' in buffers.add_ego(bad)
    assert buffers.newest_stamps()['ego'] == T0


def test_clear_bumps_the_epoch():
    buffers = _buffers()
    _full(buffers)
    buffers.clear()
    assert buffers.epoch == 1
    assert set(buffers.newest_stamps().values()) == {None}
    assert buffers.assemble(T0).reason == 'no_input'
    _full(buffers, t0=2 * S + 500 * MS)
    assert buffers.assemble(2 * S + 500 * MS).epoch == 1


def test_black_policy_ignores_a_dead_camera():
    buffers = _buffers('black')
    _full(buffers, lag={TELE: -3 * S}, jitter_ms=0)
    obs = buffers.assemble(T0)
    assert obs.t0_ns == T0
    assert list(obs.frame_stamps_ns()[-1]) == [-1] * 4
    assert len(obs.filled) == 4
    assert all(TELE in note for note in obs.filled)
    # Under 'skip' the same dead camera holds t0 back until the inputs are stale.
    strict = _buffers('skip')
    _full(strict, lag={TELE: -3 * S}, jitter_ms=0)
    assert strict.assemble(T0).reason == 'stale_inputs'


def test_black_policy_remembers_sizes_across_clear():
    buffers = _buffers('black')
    _full(buffers, jitter_ms=0)
    buffers.clear()
    later = T0 + 5 * S
    for name in buffers.camera_names:
        if name != TELE:
            _feed_camera(buffers, name, later)
    _feed_ego(buffers, later)
    obs = buffers.assemble(later)
    assert obs.frames[-1][0].rgb().shape == (4, 6, 3)


def test_repeat_policy_fills_a_dropped_frame():
    buffers = _buffers('repeat')
    _feed_with_gap(buffers, 2)
    obs = buffers.assemble(T0)
    assert obs.t0_ns == T0
    assert list(obs.frame_stamps_ns()[1]) == [T0 - 300 * MS, T0 - 300 * MS, T0 - 100 * MS, T0]
    assert obs.filled == (f'{FRONT} t0-0.2 s: repeated the frame 100 ms away',)


def test_repeat_policy_cannot_fill_a_dead_camera():
    buffers = _buffers('repeat')
    _full(buffers, lag={TELE: -3 * S}, jitter_ms=0)
    result = buffers.assemble(T0)
    assert result.reason == 'camera_missing'
    assert TELE in result.detail
    assert 'nothing to repeat' in result.detail


def test_clock_watch():
    watch = ClockWatch(500 * MS)
    assert watch.update(10 * S) is None
    assert watch.update(11 * S) is None
    assert watch.update(11 * S - 400 * MS) is None  # small step back: ignored
    assert watch.update(11 * S - 450 * MS) is None
    note = watch.update(10 * S + 400 * MS)  # 0.6 s behind the high-water mark
    assert note == 'clock went back 0.600 s (from 11.000 s to 10.400 s)'
    assert watch.update(10 * S + 500 * MS) is None
    assert watch.update(S) is not None
    watch.reset()
    assert watch.update(0) is None
