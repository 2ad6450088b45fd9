import math

import numpy as np
import pytest

from ar1_ros.runtime.rotations import (
    matrix_to_quat,
    quat_to_matrix,
    rot_z,
    rpy_to_matrix,
    slerp,
    yaw_of,
)


def _random_rotations(n, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    return quat_to_matrix(q)


def test_quat_to_matrix_known_values():
    np.testing.assert_allclose(quat_to_matrix([0, 0, 0, 1]), np.eye(3), atol=1e-15)
    half = math.sqrt(0.5)
    np.testing.assert_allclose(quat_to_matrix([0, 0, half, half]), rot_z(math.pi / 2),
                               atol=1e-15)
    # x axis by 90°: y -> z.
    np.testing.assert_allclose(quat_to_matrix([half, 0, 0, half]) @ [0, 1, 0], [0, 0, 1],
                               atol=1e-15)


def test_quat_to_matrix_normalises_and_batches():
    q = np.array([[0, 0, 2 * math.sin(0.3), 2 * math.cos(0.3)], [0, 0, 0, 5.0]])
    r = quat_to_matrix(q)
    assert r.shape == (2, 3, 3)
    np.testing.assert_allclose(r[0], rot_z(0.6), atol=1e-15)
    np.testing.assert_allclose(r[1], np.eye(3), atol=1e-15)


@pytest.mark.parametrize('q', [[0, 0, 0, 0], [np.nan, 0, 0, 1], [0, np.inf, 0, 1], [1, 0, 0]])
def test_quat_to_matrix_rejects_bad_quaternions(q):
    with pytest.raises(ValueError, match='quaternion'):
        quat_to_matrix(q)


def test_matrix_quat_round_trip_including_near_180_degrees():
    rotations = list(_random_rotations(200))
    rotations += [rot_z(math.pi), rpy_to_matrix(math.pi, 0, 0), rpy_to_matrix(0, math.pi, 0),
                  rpy_to_matrix(math.pi - 1e-9, 0.2, 0.1)]
    for r in rotations:
        q = matrix_to_quat(r)
        assert q[3] >= 0
        assert abs(np.linalg.norm(q) - 1) < 1e-12
        np.testing.assert_allclose(quat_to_matrix(q), r, atol=1e-12)


def test_yaw_of_batches():
    yaws = np.array([-3.0, -1.0, 0.0, 0.5, 3.1])
    r = np.stack([rpy_to_matrix(0.0, 0.0, y) for y in yaws])
    np.testing.assert_allclose(yaw_of(r), yaws, atol=1e-15)
    assert yaw_of(rpy_to_matrix(0.1, -0.2, 1.2)) == pytest.approx(1.2)


def test_rpy_order_is_fixed_axis_zyx():
    roll, pitch, yaw = 0.3, -0.4, 1.1
    r = rpy_to_matrix(roll, pitch, yaw)
    # A pitched-only rotation turns x towards -z for positive pitch (right-handed about y).
    np.testing.assert_allclose(rpy_to_matrix(0, 0.5, 0) @ [1, 0, 0],
                               [math.cos(0.5), 0, -math.sin(0.5)], atol=1e-15)
    np.testing.assert_allclose(r, rot_z(yaw) @ rpy_to_matrix(0, pitch, 0)
                               @ rpy_to_matrix(roll, 0, 0), atol=1e-15)
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-14)


@pytest.mark.parametrize('alpha', [0.0, 0.25, 0.5, 0.9, 1.0])
def test_slerp_of_yaws_is_linear_in_angle(alpha):
    r = slerp(rot_z(0.2), rot_z(0.8), alpha)
    assert yaw_of(r) == pytest.approx(0.2 + 0.6 * alpha, abs=1e-12)


def test_slerp_takes_the_short_way_across_pi():
    r = slerp(rot_z(3.0), rot_z(-3.0), 0.5)
    assert abs(abs(yaw_of(r)) - math.pi) < 1e-12


def test_slerp_of_equal_rotations_and_general_axis():
    r0 = rpy_to_matrix(0.1, 0.2, 0.3)
    np.testing.assert_allclose(slerp(r0, r0, 0.3), r0, atol=1e-12)
    r1 = r0 @ quat_to_matrix([math.sin(0.25), 0, 0, math.cos(0.25)])  # 0.5 rad about body x
    half = slerp(r0, r1, 0.5)
    np.testing.assert_allclose(half, r0 @ quat_to_matrix([math.sin(0.125), 0, 0,
                                                          math.cos(0.125)]), atol=1e-12)
