"""Keyframes: the moments a driving decision shows in the ego kinematics, found by rules.

Evaluating (and training) on every 0.1 s of cruising mostly measures straight-line driving;
the interesting moments are where the driver changed something. Each rule fires at the onset of
a change, from the 10 Hz resampled track (data.ego_track.Kinematics):

- braking:      acceleration falls below -brake_mps2 (from above it)
- accelerating: acceleration rises above accel_mps2 while moving
- stopping:     speed falls below stop_mps
- starting:     speed rises above start_mps
- turning:      |yaw rate| rises above turn_radps
- lane_change:  over lane_change_window_s the car moves >= lane_change_m sideways, to the
                same side relative to both its initial and its final heading, while its
                heading ends within lane_change_yaw_rad of the initial one

Onsets closer than min_gap_s to an earlier keyframe are merged into it (the earlier wins),
optional uniform keyframes fill the stretches without events, and
keyframes without history_s of track before them or horizon_s after them are dropped.
"""
import dataclasses
from typing import List, Optional

import numpy as np

from ar1_ros.data.ego_track import Kinematics
from ar1_ros.runtime.types import seconds_to_ns

KINDS = ('braking', 'accelerating', 'stopping', 'starting', 'turning', 'lane_change', 'uniform')


@dataclasses.dataclass(frozen=True)
class KeyframeRules:
    """Thresholds of the keyframe rules (module docstring)."""

    brake_mps2: float = 1.0
    accel_mps2: float = 0.8
    stop_mps: float = 0.3
    start_mps: float = 0.5
    turn_radps: float = 0.1
    lane_change_m: float = 2.5
    lane_change_window_s: float = 4.0
    lane_change_yaw_rad: float = 0.1
    smooth_s: float = 0.5
    min_gap_s: float = 2.0
    history_s: float = 1.6
    horizon_s: float = 6.4


@dataclasses.dataclass(frozen=True, order=True)
class Keyframe:
    """A keyframe time [ns] and the rule that found it (one of KINDS)."""

    t_ns: int
    kind: str


def _smooth(values: np.ndarray, n: int) -> np.ndarray:
    if n <= 1:
        return values
    kernel = np.ones(n) / n
    padded = np.pad(values, (n // 2, n - 1 - n // 2), mode='edge')
    return np.convolve(padded, kernel, mode='valid')


def _rising(signal: np.ndarray, threshold: float) -> np.ndarray:
    """Return the indices where `signal` crosses above `threshold` (from at or below it)."""
    above = signal > threshold
    return np.flatnonzero(above[1:] & ~above[:-1]) + 1


def _lane_changes(k: Kinematics, rules: KeyframeRules, dt: float) -> np.ndarray:
    window = max(int(round(rules.lane_change_window_s / dt)), 1)
    hits = []
    for i in range(0, len(k.stamps_ns) - window):
        start, end = k.yaw[i], k.yaw[i + window]
        delta = k.xy[i + window] - k.xy[i]
        # Sideways to the same side in the frames of both ends: the path left the strip
        # between the two headings. On a curve or a turn's tail the heading turns one way, so
        # the end lies to one side in the start frame and to the other in the end frame; at
        # speed that offset exceeds lane_change_m even within lane_change_yaw_rad.
        lateral = [-np.sin(h) * delta[0] + np.cos(h) * delta[1] for h in (start, end)]
        if (min(abs(lateral[0]), abs(lateral[1])) >= rules.lane_change_m
                and lateral[0] * lateral[1] > 0
                and abs(end - start) <= rules.lane_change_yaw_rad):
            hits.append(i)
    hits = np.asarray(hits, dtype=int)
    # A lane change matches many consecutive windows: keep the first of each run.
    return hits[np.r_[True, np.diff(hits) > 1]] if hits.size else hits


def _onsets(k: Kinematics, rules: KeyframeRules, dt: float) -> List[Keyframe]:
    n = max(int(round(rules.smooth_s / dt)), 1)
    accel, speed = _smooth(k.accel, n), _smooth(k.speed, n)
    yaw_rate = np.abs(_smooth(k.yaw_rate, n))
    moving = speed > rules.start_mps
    found = {
        'braking': _rising(-accel, rules.brake_mps2),
        'accelerating': [i for i in _rising(accel, rules.accel_mps2) if moving[i]],
        'stopping': _rising(-speed, -rules.stop_mps),
        'starting': _rising(speed, rules.start_mps),
        'turning': [i for i in _rising(yaw_rate, rules.turn_radps) if moving[i]],
        'lane_change': _lane_changes(k, rules, dt),
    }
    return [Keyframe(int(k.stamps_ns[i]), kind) for kind, idx in found.items() for i in idx]


def detect_keyframes(k: Optional[Kinematics], rules: KeyframeRules = KeyframeRules(),
                     uniform_s: float = 0.0) -> List[Keyframe]:
    """Return the keyframes of a track, sorted by time; uniform_s > 0 adds one every uniform_s.

    k: the track resampled at a fixed step (EgoTrack.kinematics()); None gives no keyframes.
    """
    if k is None or len(k.stamps_ns) < 3:
        return []
    dt = float(k.stamps_ns[1] - k.stamps_ns[0]) / 1e9
    first = int(k.stamps_ns[0]) + seconds_to_ns(rules.history_s)
    last = int(k.stamps_ns[-1]) - seconds_to_ns(rules.horizon_s)
    gap = seconds_to_ns(rules.min_gap_s)
    kept = _merge([c for c in _onsets(k, rules, dt) if first <= c.t_ns <= last], gap, [])
    if uniform_s > 0:
        # Uniform samples fill the quiet stretches; they never displace a detected event.
        step = seconds_to_ns(uniform_s)
        uniform = [Keyframe(t, 'uniform') for t in range(first, last + 1, step)]
        kept = sorted(kept + _merge(uniform, gap, kept))
    return kept


def _merge(candidates: List[Keyframe], gap: int, existing: List[Keyframe]) -> List[Keyframe]:
    """Return candidates in time order, each at least `gap` from the kept ones and `existing`."""
    kept: List[Keyframe] = []
    for keyframe in sorted(candidates):
        if all(abs(keyframe.t_ns - other.t_ns) >= gap for other in kept[-1:] + existing):
            kept.append(keyframe)
    return kept
