"""sim.rig: the default four-camera rig, CameraInfo, and load_rig's overrides and errors."""
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from ar1_ros.runtime.cameras import DEFAULT_CAMERAS
from ar1_ros.runtime.overlay import project
from ar1_ros.sim.rig import RigCamera, default_rig, load_rig

ROOT = Path(__file__).resolve().parents[2]
IDS = ('cross_left', 'front_wide', 'cross_right', 'front_tele')


def _by_id(rig):
    return {camera.camera_id: camera for camera in rig}


def test_default_rig_is_the_four_ar1_cameras_in_prompt_order():
    rig = default_rig()
    assert tuple(c.camera_id for c in rig) == IDS
    assert tuple(c.ar1_name for c in rig) == DEFAULT_CAMERAS
    for camera in rig:
        assert isinstance(camera, RigCamera)
        assert (camera.width, camera.height) == (576, 320)
        assert (camera.cx, camera.cy) == (288.0, 160.0)
        assert camera.fx == camera.fy
        x, _, z = camera.extrinsics[:3]
        assert 1.5 <= x <= 2.0
        assert 1.4 <= z <= 1.6
        assert camera.frame_id == f'camera_{camera.camera_id}'
        json.dumps(dataclasses.asdict(camera))  # sim.generate stores the rig as JSON


def test_default_intrinsics_follow_the_field_of_view():
    cams = _by_id(default_rig())
    assert cams['front_wide'].fx == pytest.approx(288.0 / math.tan(math.radians(60.0)))
    assert cams['front_tele'].fx == pytest.approx(288.0 / math.tan(math.radians(15.0)))
    for cid, fov in (('cross_left', 120), ('front_wide', 120), ('cross_right', 120),
                     ('front_tele', 30)):
        assert cams[cid].horizontal_fov_deg == pytest.approx(fov)
    big = _by_id(default_rig(width=1152, height=640))['front_wide']
    assert big.fx == pytest.approx(2 * cams['front_wide'].fx)
    assert (big.cx, big.cy) == (576.0, 320.0)


def test_cross_cameras_mirror_each_other_and_look_to_their_side():
    cams = _by_id(default_rig())
    left, right = cams['cross_left'].extrinsics, cams['cross_right'].extrinsics
    assert left[1] > 0
    assert left[5] > 0
    assert right == (left[0], -left[1], left[2], -left[3], left[4], -left[5])
    # A point 10 m to the left and 10 m ahead is inside cross_left, behind cross_right.
    point = np.array([[12.0, 10.0, 1.0]])
    uv, visible = project(point, cams['cross_left'].spec())
    assert visible[0]
    assert 0 <= uv[0, 0] < 576
    assert 0 <= uv[0, 1] < 320
    assert not project(point, cams['cross_right'].spec())[1][0]


def test_spec_and_camera_info_carry_the_intrinsics():
    camera = _by_id(default_rig())['front_tele']
    spec = camera.spec()
    assert spec.name == 'camera_front_tele_30fov'
    assert spec.calibrated
    assert spec.intrinsics == (camera.fx, camera.fy, camera.cx, camera.cy)
    assert spec.extrinsics == camera.extrinsics
    info = camera.camera_info()
    assert (info['height'], info['width']) == (320, 576)
    assert info['distortion_model'] == 'plumb_bob'
    assert info['d'] == [0.0] * 5
    k = np.array(info['k']).reshape(3, 3)
    np.testing.assert_array_equal(k, [[camera.fx, 0, camera.cx], [0, camera.fy, camera.cy],
                                      [0, 0, 1]])
    np.testing.assert_array_equal(np.array(info['r']).reshape(3, 3), np.eye(3))
    np.testing.assert_array_equal(np.array(info['p']).reshape(3, 4),
                                  np.hstack([k, np.zeros((3, 1))]))


def test_config_file_matches_default_rig():
    path = ROOT / 'config' / 'sim_rig.yaml'
    data = yaml.safe_load(path.read_text())
    rig = default_rig()
    assert (data['width'], data['height']) == (rig[0].width, rig[0].height)
    assert tuple(data['cameras']) == IDS  # every camera is spelled out, in prompt order
    for camera in rig:
        entry = data['cameras'][camera.camera_id]
        assert entry['ar1_name'] == camera.ar1_name
        assert entry['fov_deg'] == pytest.approx(camera.horizontal_fov_deg, abs=1e-9)
        assert tuple(entry['extrinsics']) == camera.extrinsics
    assert load_rig(path) == rig
    assert load_rig(str(path)) == rig


def test_load_rig_overrides_the_defaults(tmp_path):
    rig = _by_id(load_rig({
        'width': 640, 'height': 480,
        'cameras': {'front_wide': {'intrinsics': [500, 480, 320, 240],
                                   'extrinsics': [1.6, 0.1, 1.45, 0.0, 0.02, 0.01]},
                    'front_tele': {'fov_deg': 40.0},
                    'cross_left': {'ar1_name': 'camera_rear_left_70fov'}}}))
    wide = rig['front_wide']
    assert (wide.width, wide.height, wide.fx, wide.fy, wide.cx, wide.cy) == (
        640, 480, 500.0, 480.0, 320.0, 240.0)
    assert wide.extrinsics == (1.6, 0.1, 1.45, 0.0, 0.02, 0.01)
    assert rig['front_tele'].horizontal_fov_deg == pytest.approx(40.0)
    assert rig['cross_left'].ar1_name == 'camera_rear_left_70fov'
    # Untouched cameras keep their FOV at the new size.
    assert rig['cross_right'].horizontal_fov_deg == pytest.approx(120.0)
    assert rig['cross_right'].cy == 240.0
    path = tmp_path / 'rig.yaml'
    path.write_text('height: 200\n')
    assert all(c.height == 200 and c.width == 576 for c in load_rig(path))
    assert load_rig({}) == default_rig()


@pytest.mark.parametrize(('data', 'key'), [
    ({'cameras': {'rear': {}}}, 'rear'),
    ({'cameras': {'front_wide': {'ar1_name': 'camera_front_fisheye'}}}, 'ar1_name'),
    ({'cameras': {'cross_left': {'ar1_name': 'camera_front_wide_120fov'}}}, 'repeat'),
    ({'width': 0}, 'width'),
    ({'height': -320}, 'height'),
    ({'width': 57.6}, 'width'),
    ({'height': True}, 'height'),
    ({'cameras': {'front_wide': {'fov_deg': 0}}}, 'fov_deg'),
    ({'cameras': {'front_wide': {'fov_deg': 180.0}}}, 'fov_deg'),
    ({'cameras': {'front_wide': {'intrinsics': [500, 500, 288]}}}, 'intrinsics'),
    ({'cameras': {'front_wide': {'intrinsics': [-500, 500, 288, 160]}}}, 'intrinsics'),
    ({'cameras': {'front_wide': {'intrinsics': [1, 1, 1, 1], 'fov_deg': 90}}}, 'not both'),
    ({'cameras': {'front_wide': {'extrinsics': [1.5, 0, 1.4, 0, 0]}}}, 'extrinsics'),
    ({'cameras': {'front_wide': {'extrinsics': [1.5, 0, 1.4, 0, 0, 'left']}}}, 'extrinsics'),
    ({'cameras': {'front_wide': {'extrinsics': '1.5 0 1.4 0 0 0'}}}, 'extrinsics'),
    ({'cameras': {'front_wide': {'extrinsics': [1.5, 0, 1.4, 0, 0, float('nan')]}}},
     'extrinsics'),
    ({'cameras': {'front_wide': {'topic': '/x'}}}, 'topic'),
    ({'cameras': {'front_wide': 'camera_front_wide_120fov'}}, 'cameras.front_wide'),
    ({'cameras': ['front_wide']}, 'cameras'),
    ({'depth': 3}, 'depth'),
    (['front_wide'], 'mapping'),
])
def test_load_rig_rejects_bad_values_naming_the_key(data, key):
    with pytest.raises(ValueError, match=key):
        load_rig(data)


def test_default_rig_rejects_bad_sizes():
    with pytest.raises(ValueError, match='width'):
        default_rig(width=0)
    with pytest.raises(ValueError, match='height'):
        default_rig(height=-1)
