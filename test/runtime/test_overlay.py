import math

import numpy as np
import pytest

from ar1_ros.runtime.cameras import CameraSpec
from ar1_ros.runtime.overlay import (
    calibration_mismatch,
    camera_from_ego,
    draw_overlay,
    project,
)

FX, FY, CX, CY = 500.0, 480.0, 320.0, 240.0
H, W = 480, 640


def _front(pitch=0.0, yaw=0.0, roll=0.0):
    return CameraSpec('camera_front_wide_120fov', (FX, FY, CX, CY),
                      (1.5, 0.0, 1.5, roll, pitch, yaw))


def test_camera_from_ego_is_a_rigid_transform_to_optical_axes():
    rotation, translation = camera_from_ego((1.5, 0.0, 1.5, 0.0, 0.0, 0.0))
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    # Ego forward is optical z, ego left is optical -x, ego up is optical -y.
    np.testing.assert_allclose(rotation @ [1, 0, 0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(rotation @ [0, 1, 0], [-1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(rotation @ [0, 0, 1], [0, -1, 0], atol=1e-12)
    # The camera centre maps to the optical origin.
    np.testing.assert_allclose(rotation @ [1.5, 0, 1.5] + translation, 0, atol=1e-12)


def test_point_straight_ahead_projects_to_the_principal_point():
    uv, visible = project(np.array([[20.0, 0.0, 1.5], [100.0, 0.0, 1.5]]), _front())
    assert visible.all()
    np.testing.assert_allclose(uv, [[CX, CY], [CX, CY]], atol=1e-9)


def test_ground_left_and_right_points():
    points = np.array([[21.5, 0.0, 0.0], [21.5, 2.0, 1.5], [21.5, -2.0, 1.5]])
    uv, visible = project(points, _front())
    assert visible.all()
    # Ground ahead is straight below the principal point, 1.5 m down at 20 m depth.
    np.testing.assert_allclose(uv[0], [CX, CY + FY * 1.5 / 20.0])
    np.testing.assert_allclose(uv[1], [CX - FX * 2.0 / 20.0, CY])
    np.testing.assert_allclose(uv[2], [CX + FX * 2.0 / 20.0, CY])


def test_points_behind_the_camera_are_invisible():
    points = np.array([[1.0, 0.0, 1.5], [-10.0, 0.0, 0.0], [1.5, 3.0, 1.5], [1.55, 0, 1.5]])
    uv, visible = project(points, _front())
    assert not visible.any()
    assert np.isnan(uv).all()


def test_pitch_and_yaw_follow_the_documented_convention():
    # Pitched down so that its axis meets the ground 20 m ahead of the camera.
    down = _front(pitch=math.atan2(1.5, 20.0))
    uv, visible = project(np.array([[21.5, 0.0, 0.0]]), down)
    assert visible[0]
    np.testing.assert_allclose(uv[0], [CX, CY], atol=1e-9)
    # Yawed to look left: a point left of the camera projects to the principal point.
    left = _front(yaw=math.pi / 2)
    uv, visible = project(np.array([[1.5, 10.0, 1.5], [11.5, 0.0, 1.5]]), left)
    np.testing.assert_allclose(uv[0], [CX, CY], atol=1e-9)
    assert not visible[1]
    # Rolled by +90° about its forward axis, its top turns to the ego right, so a point on the
    # ego left appears below the image centre.
    rolled = _front(roll=math.pi / 2)
    uv, _ = project(np.array([[21.5, 2.0, 1.5]]), rolled)
    np.testing.assert_allclose(uv[0], [CX, CY + FY * 2.0 / 20.0], atol=1e-9)


def test_uncalibrated_camera_raises():
    spec = CameraSpec('camera_front_wide_120fov', (FX, FY, CX, CY), None)
    with pytest.raises(ValueError, match='camera_front_wide_120fov'):
        project(np.zeros((1, 3)), spec)
    with pytest.raises(ValueError, match='camera_front_wide_120fov'):
        draw_overlay(np.zeros((H, W, 3), np.uint8), np.zeros((64, 3)), spec, ['x'])


def _straight_plan(lateral=0.0):
    x = np.linspace(2.0, 40.0, 64)
    return np.stack([x, np.full(64, lateral), np.zeros(64)], axis=-1)


def test_draw_overlay_draws_the_path_on_a_copy():
    rgb = np.full((H, W, 3), 40, np.uint8)
    rgb.flags.writeable = False  # frames hand out read-only arrays
    out = draw_overlay(rgb, _straight_plan(), _front(), [])
    assert out.shape == rgb.shape
    assert out.dtype == np.uint8
    assert out.flags.writeable
    assert (rgb == 40).all()
    changed = (out != rgb).any(axis=2)
    # Along the projected path (column CX, rows below the horizon) pixels changed...
    uv, _ = project(np.array([[10.0, 0, 0], [30.0, 0, 0]]), _front())
    for u, v in uv:
        assert changed[int(round(v)), int(round(u)) - 1:int(round(u)) + 2].any()
    # ...and nowhere above the horizon or far to the sides.
    assert not changed[:int(CY) - 2].any()
    assert not changed[:, :int(CX) - 40].any()
    assert not changed[:, int(CX) + 40:].any()


def test_draw_overlay_path_moves_with_the_plan():
    rgb = np.zeros((H, W, 3), np.uint8)
    centre = (draw_overlay(rgb, _straight_plan(0.0), _front(), []) != 0).any(axis=2)
    left = (draw_overlay(rgb, _straight_plan(3.0), _front(), []) != 0).any(axis=2)
    columns = np.arange(W)
    assert columns[left.any(axis=0)].mean() < columns[centre.any(axis=0)].mean() - 20


def test_path_entirely_behind_the_camera_draws_nothing():
    rgb = np.zeros((H, W, 3), np.uint8)
    behind = _straight_plan() * [-1, 1, 1]
    np.testing.assert_array_equal(draw_overlay(rgb, behind, _front(), []), rgb)


def test_non_finite_points_are_skipped():
    plan = _straight_plan()
    plan[10] = np.nan
    out = draw_overlay(np.zeros((H, W, 3), np.uint8), plan, _front(), [])
    assert out.any()


def test_text_box_is_drawn_top_left():
    rgb = np.full((H, W, 3), 200, np.uint8)
    out = draw_overlay(rgb, _straight_plan(), _front(),
                       ['Nudge to the left to increase clearance', 'fa\u00e7ade \u2192 ok'])
    box = out[:40, :150]
    assert box.mean() < 150  # darkened box
    assert (box == 255).all(axis=2).any()  # white text in it
    assert (out[-20:, -100:] == 200).all()


def test_draw_overlay_rejects_bad_images():
    with pytest.raises(ValueError, match='uint8'):
        draw_overlay(np.zeros((H, W, 3), np.float32), _straight_plan(), _front(), [])
    with pytest.raises(ValueError, match='uint8'):
        draw_overlay(np.zeros((H, W), np.uint8), _straight_plan(), _front(), [])


def test_calibration_mismatch_names_an_image_of_another_resolution():
    spec = _front()
    assert calibration_mismatch(spec, W, H) == ''
    assert 'outside the 320x240 image' in calibration_mismatch(spec, W // 2, H // 2)
    assert 'another resolution' in calibration_mismatch(spec, W, CY)
    uncalibrated = CameraSpec('camera_front_wide_120fov', (FX, FY, CX, CY), None)
    assert 'no intrinsics/extrinsics' in calibration_mismatch(uncalibrated, W, H)


def test_draw_overlay_says_so_instead_of_drawing_with_another_resolution_s_intrinsics():
    rgb = np.zeros((H // 2, W // 2, 3), np.uint8)  # the camera's principal point is off it
    out = draw_overlay(rgb, _straight_plan(), _front(), [])
    changed = (out != rgb).any(axis=2)
    assert changed[:40].any(), 'the reason is written at the top left'
    assert not changed[H // 4:].any(), 'no path (nor anything else) below the text box'
    green = (out[..., 1] > 200) & (out[..., 0] < 80)
    assert not green.any()
