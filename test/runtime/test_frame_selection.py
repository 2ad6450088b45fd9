import numpy as np
import pytest

from ar1_ros.runtime.buffers import StampedRing
from ar1_ros.runtime.config import SelectionConfig
from ar1_ros.runtime.frame_selection import select_frames
from ar1_ros.runtime.types import Skip

from .synthetic import MS, S, frame

T0 = 10 * S
CAM = 'camera_front_wide_120fov'


def _ring(stamps, size=(4, 6)):
    ring = StampedRing(2500 * MS)
    for s in stamps:
        ring.insert(s, frame(s, size))
    return ring


def _stamps(frames):
    return [f.stamp_ns for f in frames]


def _cfg(**kwargs):
    return SelectionConfig(**kwargs)


def test_exact_grid():
    stamps = [T0 - k * 100 * MS for k in range(10)]
    frames, notes = select_frames(_ring(stamps), T0, _cfg(), CAM)
    assert _stamps(frames) == [T0 - 300 * MS, T0 - 200 * MS, T0 - 100 * MS, T0]
    assert notes == ()


def test_jittered_stamps_pick_the_nearest_frame():
    rng = np.random.default_rng(7)
    for _ in range(50):
        jitter = rng.integers(-20 * MS, 20 * MS + 1, size=12)
        stamps = [T0 - k * 100 * MS + int(j) for k, j in zip(range(12), jitter, strict=True)]
        t0 = stamps[0]
        frames, notes = select_frames(_ring(stamps), t0, _cfg(), CAM)
        assert _stamps(frames) == stamps[3::-1]
        assert notes == ()


def test_dropped_frame_skips_with_detail():
    stamps = [T0 - k * 100 * MS for k in range(10) if k != 2]
    result = select_frames(_ring(stamps), T0, _cfg(), CAM)
    assert isinstance(result, Skip)
    assert result.reason == 'camera_missing'
    assert result.detail == (f'{CAM}: no frame within 50 ms of t0-0.2 s '
                             '(nearest 100 ms away)')


def test_empty_buffer_skips():
    result = select_frames(_ring([]), T0, _cfg(), CAM)
    assert result.reason == 'camera_missing'
    assert '(no frames)' in result.detail


def test_a_frame_serves_one_slot_only():
    # T0-150 ms lies 50 ms from both t0-0.2 and t0-0.1: it may fill one of them, not both.
    stamps = [T0, T0 - 150 * MS, T0 - 300 * MS]
    result = select_frames(_ring(stamps), T0, _cfg(), CAM)
    assert isinstance(result, Skip)
    assert 't0-0.1 s' in result.detail
    # A second frame within tolerance of the later slot is used instead of the shared one.
    stamps.append(T0 - 50 * MS)
    frames, _ = select_frames(_ring(stamps), T0, _cfg(), CAM)
    assert _stamps(frames) == [T0 - 300 * MS, T0 - 150 * MS, T0 - 50 * MS, T0]


def test_frames_after_t0_within_tolerance_count():
    stamps = [T0 + 30 * MS - k * 100 * MS for k in range(5)]
    frames, _ = select_frames(_ring(stamps), T0, _cfg(), CAM)
    assert _stamps(frames)[-1] == T0 + 30 * MS


def test_repeat_policy_fills_from_the_nearest_frame():
    cfg = _cfg(missing_camera_policy='repeat')
    stamps = [T0 - k * 100 * MS for k in range(10) if k != 2]
    frames, notes = select_frames(_ring(stamps), T0, cfg, CAM)
    # The gap at t0-0.2 is filled with the nearest frame (t0-0.3 wins the tie, older).
    assert _stamps(frames) == [T0 - 300 * MS, T0 - 300 * MS, T0 - 100 * MS, T0]
    assert notes == (f'{CAM} t0-0.2 s: repeated the frame 100 ms away',)


def test_repeat_policy_limits_the_offset():
    cfg = _cfg(missing_camera_policy='repeat', fill_max_offset_s=0.15)
    lagging = [T0 - 200 * MS - k * 100 * MS for k in range(5)]
    result = select_frames(_ring(lagging), T0, cfg, CAM)
    assert result.reason == 'camera_missing'
    assert 'nothing to repeat within 0.15 s' in result.detail
    assert 't0-0.1 s' not in result.detail  # the first unfillable slot is t0


def test_black_policy_uses_the_newest_size():
    cfg = _cfg(missing_camera_policy='black')
    stamps = [T0 - k * 100 * MS for k in range(10) if k != 1]
    frames, notes = select_frames(_ring(stamps, size=(8, 10)), T0, cfg, CAM)
    assert _stamps(frames) == [T0 - 300 * MS, T0 - 200 * MS, -1, T0]
    black = frames[2].rgb()
    assert black.shape == (8, 10, 3)
    assert black.dtype == np.uint8
    assert not black.any()
    assert notes == (f'{CAM} t0-0.1 s: black 8x10 image',)


def test_black_policy_with_no_frames_needs_a_fallback_size():
    cfg = _cfg(missing_camera_policy='black')
    frames, notes = select_frames(_ring([]), T0, cfg, CAM, fallback_size=(2, 3))
    assert _stamps(frames) == [-1] * 4
    assert all(f.rgb().shape == (2, 3, 3) for f in frames)
    assert len(notes) == 4
    result = select_frames(_ring([]), T0, cfg, CAM)
    assert result.reason == 'camera_missing'
    assert 'size unknown' in result.detail


@pytest.mark.parametrize('offsets', [(0.0,), (-0.2, 0.0), (-0.5, -0.3, -0.1, 0.0)])
def test_other_grids(offsets):
    stamps = [T0 - k * 100 * MS for k in range(10)]
    frames, _ = select_frames(_ring(stamps), T0, _cfg(frame_offsets_s=offsets), CAM)
    assert _stamps(frames) == [T0 + round(o * S) for o in offsets]
