"""sim.render: geometry agrees with runtime.overlay, cameras see the right side, clipping."""
import dataclasses
import math
import time

import cv2
import numpy as np
import pytest

from ar1_ros.runtime.overlay import camera_from_ego, project
from ar1_ros.sim.render import Renderer, clip_polygons, grid_pieces, marking_quads
from ar1_ros.sim.rig import default_rig
from ar1_ros.sim.scene import Box, Marking, RoadGeometry, Scene

LANE = 3.7
MAGENTA = (210, 30, 210)  # no sky, grass, road or vehicle part has this hue
# The ego sits at a general world pose so the world -> ego transform is exercised too.
EGO = Box(0, 40.0, -12.0, 0.4, kind='ego', rgb=MAGENTA)
RIG = {camera.camera_id: camera for camera in default_rig()}


def _world(points):
    """Map ego-frame (N, 2) points to the world frame of EGO."""
    c, s = math.cos(EGO.yaw), math.sin(EGO.yaw)
    points = np.asarray(points, dtype=np.float64)
    return points @ np.array([[c, s], [-s, c]]) + [EGO.x, EGO.y]


def _road(lines=(-5.55, -1.85, 1.85, 5.55), dashed=(-1.85, 1.85)):
    """A straight 3-lane road along the ego's x axis, 100 m behind to 300 m ahead."""
    surface = _world([[-100, -5.55], [300, -5.55], [300, 5.55], [-100, 5.55]])
    xs = np.linspace(-100, 300, 41)
    markings = tuple(Marking(_world(np.stack([xs, np.full_like(xs, y)], axis=1)),
                             'dashed' if y in dashed else 'solid') for y in lines)
    return RoadGeometry((surface,), markings)


def _car(x, y, vehicle_id=1, **kw):
    """A box at ego-frame (x, y), parallel to the ego, magenta unless told otherwise."""
    (wx, wy), = _world([[x, y]])
    return Box(vehicle_id, wx, wy, EGO.yaw, **{'rgb': MAGENTA, **kw})


def _render(camera, others=(), geometry=None):
    geometry = _road() if geometry is None else geometry
    return Renderer(geometry, camera).render(Scene(0.0, EGO, tuple(others), geometry))


def _magenta(image):
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return (r > 100) & (b > 100) & (g < 70) & (abs(r - b) < 40)


@pytest.mark.parametrize(('cid', 'x', 'y'), [('front_wide', 15.0, 0.0), ('front_wide', 18.0, 4.0),
                                             ('front_tele', 40.0, 0.0),
                                             ('cross_left', 8.0, 7.0)])
def test_vehicle_projects_where_overlay_project_puts_it(cid, x, y):
    camera = RIG[cid]
    image = _render(camera, [_car(x, y)])
    mask = _magenta(image)
    # The ground point under the box centre is hidden by its rear face: vehicle-coloured.
    (u, v), = project(np.array([[x, y, 0.0]]), camera.spec())[0]
    assert mask[round(v), round(u)]
    # The box's rear bottom edge (its middle) is where the coloured pixels end downwards.
    (u, v), = project(np.array([[x - 2.5, y, 0.0]]), camera.spec())[0]
    lowest = np.flatnonzero(mask[:, round(u)]).max()
    assert abs(lowest - v) <= 1.0


@pytest.mark.parametrize(('y', 'sees', 'blind'), [(6.0, 'cross_left', 'cross_right'),
                                                  (-6.0, 'cross_right', 'cross_left')])
def test_a_car_on_one_side_shows_in_that_sides_cameras(y, sees, blind):
    car = [_car(12.0, y)]
    wide = _magenta(_render(RIG['front_wide'], car))
    columns = np.flatnonzero(wide.any(axis=0))
    assert wide.sum() > 100
    assert (columns < 288).all() if y > 0 else (columns >= 288).all()
    assert _magenta(_render(RIG[sees], car)).sum() > 100
    assert not _magenta(_render(RIG[blind], car)).any()


def _line_fit(white, columns):
    """Fit u = a v + b through the centre column of each row's white pixels in `columns`."""
    rows = [(v, np.flatnonzero(white[v, columns]).mean() + columns.start)
            for v in range(white.shape[0]) if white[v, columns].any()]
    v, u = np.array(rows).T
    return np.polyfit(v, u, 1)


@pytest.mark.parametrize('pitch', [0.0, 0.05])
def test_straight_lines_vanish_at_the_projection_of_the_road_direction(pitch):
    camera = dataclasses.replace(RIG['front_wide'], extrinsics=(1.7, 0.0, 1.5, 0.0, pitch, 0.0))
    image = _render(camera, geometry=_road(lines=(-1.85, 1.85), dashed=()))
    (u_far, v_far), = project(np.array([[1e7, 0.0, 0.0]]), camera.spec())[0]
    if pitch == 0.0:
        assert (u_far, v_far) == pytest.approx((camera.cx, camera.cy), abs=1e-3)
    white = (image > 215).all(axis=2)
    white[:round(v_far) + 15] = False  # lines near the horizon fade into the haze
    (a1, b1), (a2, b2) = _line_fit(white, slice(0, 288)), _line_fit(white, slice(288, 576))
    v_cross = (b2 - b1) / (a1 - a2)
    assert v_cross == pytest.approx(v_far, abs=1.5)
    assert a1 * v_cross + b1 == pytest.approx(u_far, abs=1.5)


def test_tele_sees_a_distant_car_larger_than_the_wide_camera():
    car = [_car(60.0, 0.0)]
    tele = _magenta(_render(RIG['front_tele'], car)).sum()
    wide = _magenta(_render(RIG['front_wide'], car)).sum()
    assert wide > 0
    assert tele > 10 * wide


def test_nearer_vehicles_hide_farther_ones_and_the_ego_is_not_drawn():
    near = _car(15.0, 0.0, 1, rgb=(20, 200, 20))
    far = _car(30.0, 0.0, 2, kind='truck', height=3.6, length=12.0)
    camera = RIG['front_tele']
    image = _render(camera, [far, near])  # listed farthest last: order must not matter
    uv = np.rint(project(np.array([[15.0, 0.0, 0.1], [30.0, 0.0, 3.0]]), camera.spec())[0])
    (u_near, v_near), (u_far, v_far) = uv.astype(int)
    assert image[v_near, u_near, 1] > 100
    assert not _magenta(image)[v_near, u_near]
    assert _magenta(image)[v_far, u_far]  # the truck, seen over the car
    assert np.array_equal(image, _render(camera, [near, far]))
    assert not _magenta(_render(RIG['front_wide'])).any()  # the magenta ego itself


def _below_horizon(camera):
    """Return the (H, W) mask of pixels whose ray points at the ground, widened by 1 px."""
    rotation, _ = camera_from_ego(camera.extrinsics)
    u, v = np.meshgrid(np.arange(camera.width), np.arange(camera.height))
    rays = np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy,
                     np.ones(u.shape)], axis=-1) @ rotation
    return cv2.dilate((rays[..., 2] < 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


@pytest.mark.parametrize('extrinsics', [None, (1.7, 0.0, 1.5, 0.0, 1.0, 0.0),
                                        (1.7, 0.0, 1.5, 0.3, 0.1, math.pi),
                                        (0.0, 0.0, 1.5, 0.0, 0.0, 1.4)])
def test_road_crossing_the_near_plane_never_paints_the_sky(extrinsics):
    cameras = list(RIG.values()) if extrinsics is None else [
        dataclasses.replace(RIG['front_wide'], extrinsics=extrinsics)]
    for camera in cameras:
        road = _render(camera)
        empty = _render(camera, geometry=RoadGeometry((), ()))
        changed = (road != empty).any(axis=2)
        assert changed.any()  # the road is in view and under the camera ...
        assert not (changed & ~_below_horizon(camera)).any()  # ... and never above the horizon


def test_clip_polygons_cuts_at_the_plane_and_drops_what_is_outside():
    square = np.array([[[0, 0], [2, 0], [2, 2], [0, 2], [0, 2]]], dtype=float)  # one padding
    outside = square + [5.0, 0.0]
    clipped, rows = clip_polygons(np.concatenate([square, outside]), np.array([-1.0, 0.0]), -1.0)
    assert rows.tolist() == [0]
    assert sorted(map(tuple, clipped[0])) == [(0, 0), (0, 2), (1, 0), (1, 2)]
    empty, rows = clip_polygons(np.zeros((0, 4, 3)), np.array([0.0, 0.0, 1.0]), 0.1)
    assert empty.shape[0] == 0
    assert rows.size == 0


def test_grid_pieces_keep_the_area_in_small_pieces():
    shape = np.array([[0, 0], [20, 0], [20, 4], [4, 4], [4, 14], [0, 14]], dtype=float)
    pieces = grid_pieces(shape, 3.0)
    x, y = pieces[..., 0], pieces[..., 1]
    area = 0.5 * np.abs((x * np.roll(y, -1, 1) - np.roll(x, -1, 1) * y).sum(axis=1))
    assert area.sum() == pytest.approx(20 * 4 + 4 * 10)
    assert (np.ptp(pieces, axis=1) <= 3.0 + 1e-9).all()


def test_dashed_lines_paint_three_of_every_nine_metres():
    xs = np.linspace(0.0, 36.0, 5)
    line = np.stack([xs, np.zeros_like(xs)], axis=1)
    solid, dashed = (marking_quads(Marking(line, style)) for style in ('solid', 'dashed'))
    length = [np.ptp(quads[..., 0], axis=1) for quads in (solid, dashed)]
    assert length[0].sum() == pytest.approx(36.0)
    assert length[0].max() <= 3.0 + 1e-9
    assert length[1].sum() == pytest.approx(12.0)
    assert np.ptp(solid[..., 1], axis=1) == pytest.approx(0.15)
    with pytest.raises(ValueError, match='style'):
        marking_quads(Marking(line, 'dotted'))


def test_images_are_deterministic_and_fast_enough(capsys):
    others = [_car(x, y, i + 1, kind='truck' if i % 4 == 0 else 'car',
                   rgb=(40 + 17 * i, 120, 200 - 13 * i))
              for i, (x, y) in enumerate([(12, 0), (25, 3.7), (-10, 3.7), (40, -3.7), (60, 0),
                                          (6, -3.7), (90, 3.7), (-25, 0), (120, -3.7), (33, 0)])]
    geometry = _road()
    scene = Scene(0.0, EGO, tuple(others), geometry)
    for camera in RIG.values():
        renderer = Renderer(geometry, camera)
        first = renderer.render(scene)
        assert first.shape == (320, 576, 3)
        assert first.dtype == np.uint8
        assert first.tobytes() == renderer.render(scene).tobytes()
        assert first.tobytes() == Renderer(geometry, camera).render(scene).tobytes()
        start = time.perf_counter()
        for _ in range(20):
            renderer.render(scene)
        with capsys.disabled():
            print(f'\n{camera.camera_id}: {(time.perf_counter() - start) / 20 * 1e3:.2f} ms'
                  ' per 576x320 frame (10 vehicles, 400 m of 3-lane road)')
