"""Keyframes found from ego kinematics: each rule fires at its onset, and only there."""
import numpy as np
import pytest

from ar1_ros.data.ego_track import Kinematics
from ar1_ros.data.keyframes import KeyframeRules, detect_keyframes

DT = 0.1
NS = 10 ** 9


def kinematics(speed, yaw_rate=None, lateral=None) -> Kinematics:
    """Kinematics of 10 Hz samples: speed (N,) and optional yaw rate / lateral offset (N,)."""
    speed = np.asarray(speed, dtype=float)
    n = len(speed)
    yaw_rate = np.zeros(n) if yaw_rate is None else np.asarray(yaw_rate, dtype=float)
    yaw = np.cumsum(yaw_rate) * DT
    x = np.cumsum(speed * np.cos(yaw)) * DT
    y = np.cumsum(speed * np.sin(yaw)) * DT + (0 if lateral is None else lateral)
    return Kinematics(np.arange(n, dtype=np.int64) * NS // 10, speed,
                      np.gradient(speed, DT), yaw, yaw_rate, np.stack([x, y], 1))


def kinds_at(keyframes):
    return [(k.kind, round(k.t_ns / NS, 1)) for k in keyframes]


def test_cruising_has_no_keyframes():
    assert detect_keyframes(kinematics(np.full(200, 12.0))) == []
    assert detect_keyframes(None) == []


def test_braking_to_a_stop_and_starting_again():
    speed = np.r_[np.full(30, 10.0), np.linspace(10, 0, 41)[1:], np.zeros(40),
                  np.linspace(0, 6, 41)[1:], np.full(100, 6.0)]
    found = kinds_at(detect_keyframes(kinematics(speed)))
    kinds = [k for k, _ in found]
    assert kinds[:2] == ['braking', 'stopping'], found
    assert found[0][1] == pytest.approx(3.0, abs=0.4)
    assert found[1][1] == pytest.approx(6.9, abs=0.4)
    assert 'starting' in kinds
    starting = dict(found)['starting']
    assert starting == pytest.approx(11.0, abs=0.4)


def test_turn_onset():
    yaw_rate = np.r_[np.zeros(40), np.full(40, 0.3), np.zeros(120)]
    found = kinds_at(detect_keyframes(kinematics(np.full(200, 8.0), yaw_rate)))
    assert found[0][0] == 'turning'
    assert found[0][1] == pytest.approx(4.0, abs=0.4)


def test_lane_change_moves_sideways_and_ends_straight():
    t = np.arange(200) * DT
    lateral = 3.5 / (1 + np.exp(-(t - 8.0) * 2.5))   # smooth 3.5 m shift around 8 s
    found = kinds_at(detect_keyframes(kinematics(np.full(200, 15.0), lateral=lateral)))
    assert [k for k, _ in found] == ['lane_change'], found
    assert 4.0 <= found[0][1] <= 8.0


def test_margins_gap_and_uniform_fill():
    speed = np.r_[np.full(10, 10.0), np.linspace(10, 4, 21)[1:], np.full(170, 4.0)]
    rules = KeyframeRules()
    found = detect_keyframes(kinematics(speed), rules)
    assert found == [], 'braking at 1 s has less than 1.6 s of history before it'
    speed = np.r_[np.full(50, 10.0), np.linspace(10, 4, 21)[1:], np.full(130, 4.0)]
    uniform = detect_keyframes(kinematics(speed), rules, uniform_s=1.0)
    times = [k.t_ns / NS for k in uniform]
    braking = [k.t_ns / NS for k in uniform if k.kind == 'braking']
    assert len(braking) == 1
    assert all(b - a >= rules.min_gap_s - 1e-9 for a, b in zip(times[:-1], times[1:],
                                                               strict=True))
    assert times[0] >= 1.6
    assert times[-1] <= 19.9 - 6.4
    assert any(k.kind == 'uniform' for k in uniform)
