"""The PhysicalAI-AV reader: the devkit's own interface agrees with it on the synthetic snapshot
(so the snapshot is in the devkit's layout), hub cache and revisions, missing pieces.
"""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ar1_ros.data.pai.convert import CAMERA_IDS, ConvertOptions, convert_clip
from ar1_ros.data.pai.snapshot import PaiError, PaiSnapshot, resolve_root
from ar1_ros.data.pai.video import keep_mask
from data.pai_snapshot import CLIP, REVISION, build_snapshot, hub_cache, read_messages

# Run in a process of its own: huggingface_hub reads HF_HUB_OFFLINE once, at import.
DEVKIT = """
import json, sys
import numpy as np
from physical_ai_av import PhysicalAIAVDatasetInterface
ds = PhysicalAIAVDatasetInterface(sys.argv[2], cache_dir=sys.argv[1], token=False)
clip = ds.clip_index.index[0]
ego = ds.get_clip_feature(clip, 'egomotion')
video = ds.get_clip_feature(clip, 'camera_front_wide_120fov')
frames, stamps = video.decode_images_from_timestamps(video.timestamps[[0, 3, 45]])
poses = ds.get_clip_feature(clip, 'sensor_extrinsics').sensor_poses
print(json.dumps({
    'clip': clip, 'chunk': int(ds.get_clip_chunk(clip)),
    'ego_t': ego.timestamps.tolist(), 'ego_xyz': ego(ego.timestamps).pose.translation.tolist(),
    'frame_stamps': stamps.tolist(), 'frame_rgb': frames.mean(axis=(1, 2)).tolist(),
    'mounts': {n: p.translation.tolist() for n, p in poses.items()},
    'wheelbase': ds.get_clip_feature(clip, 'vehicle_dimensions').wheelbase}))
"""


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    return build_snapshot(tmp_path_factory.mktemp('pai') / 'dataset')


def test_the_devkit_interface_reads_the_snapshot_and_the_bag_holds_it(tree, tmp_path):
    cache = hub_cache(tree, tmp_path / 'hub')
    result = subprocess.run([sys.executable, '-c', DEVKIT, str(cache), REVISION],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, 'HF_HUB_OFFLINE': '1'})
    assert result.returncode == 0, result.stderr
    devkit = json.loads(result.stdout)
    assert (devkit['clip'], devkit['chunk'], devkit['wheelbase']) == (CLIP, 0, 2.9)
    bag = convert_clip(PaiSnapshot(cache), CLIP, tmp_path / 'bags', ConvertOptions()).bag
    epoch_us = 1_700_000_000 * 10 ** 6
    odometry = read_messages(bag, ['/localization/kinematic_state'])
    assert [log // 1000 - epoch_us for log, _ in odometry] == devkit['ego_t']
    np.testing.assert_allclose([[m.pose.pose.position.x, m.pose.pose.position.y,
                                 m.pose.pose.position.z] for _, m in odometry],
                               devkit['ego_xyz'], atol=1e-9)
    images = dict(read_messages(bag, ['/sensing/camera/front_wide/image_raw/compressed']))
    for t_us, rgb in zip(devkit['frame_stamps'], devkit['frame_rgb'], strict=True):
        jpeg = images[epoch_us * 1000 + t_us * 1000]
        bgr = cv2.imdecode(np.asarray(jpeg.data), cv2.IMREAD_COLOR)
        assert bgr[..., ::-1].mean(axis=(0, 1)) == pytest.approx(rgb, abs=2)
    (_, tf), = read_messages(bag, ['/tf_static'])
    names = {f'camera_{camera_id}': name for name, camera_id in CAMERA_IDS.items()}
    for t in tf.transforms:
        xyz = t.transform.translation
        assert [xyz.x, xyz.y, xyz.z] == pytest.approx(devkit['mounts'][names[t.child_frame_id]])


def test_hub_cache_and_revisions(tree, tmp_path):
    cache = hub_cache(tree, tmp_path / 'hub')
    snapshot = cache / 'datasets--nvidia--PhysicalAI-Autonomous-Vehicles' / 'snapshots' / REVISION
    for path, revision in ((cache, None), (cache, 'main'), (cache, REVISION),
                           (snapshot.parent.parent, None), (snapshot, None), (tree, None)):
        assert resolve_root(path, revision) in (snapshot, tree)
        assert PaiSnapshot(path, revision).clip_ids == [CLIP]
    with pytest.raises(PaiError, match="no snapshot for revision 'v2'"):
        PaiSnapshot(cache, 'v2')
    with pytest.raises(PaiError, match='--revision does not apply'):
        PaiSnapshot(tree, 'main')
    (snapshot.parent.parent / 'refs' / 'main').unlink()
    os.symlink(tree, snapshot.parent / ('f' * 40))
    with pytest.raises(PaiError, match='holds 2 snapshots'):
        PaiSnapshot(cache)


def test_missing_pieces_are_named(tree, tmp_path):
    with pytest.raises(PaiError, match='does not exist'):
        PaiSnapshot(tmp_path / 'nothing')
    with pytest.raises(PaiError, match='not a PhysicalAI-AV snapshot: no features.csv'):
        PaiSnapshot(tmp_path)
    with pytest.raises(PaiError, match="unknown clip 'nope'"):
        PaiSnapshot(tree).egomotion('nope')
    partial = build_snapshot(tmp_path / 'partial', absent=('camera_front_tele_30fov',))
    with pytest.raises(PaiError, match='has no camera_front_tele_30fov'):
        PaiSnapshot(partial).camera(CLIP, 'camera_front_tele_30fov')
    (partial / 'labels/egomotion/egomotion.chunk_0000.zip').unlink()
    with pytest.raises(PaiError, match='egomotion is not downloaded'):
        PaiSnapshot(partial).egomotion(CLIP)


def test_camera_hz_keeps_the_nearest_frame_per_tick():
    jittery = np.array([0, 33_000, 67_500, 99_000, 133_500, 166_000, 201_000])
    assert np.flatnonzero(keep_mask(jittery, 10.0)).tolist() == [0, 3, 6]
    assert keep_mask(jittery, 0.0).all()
    assert np.flatnonzero(keep_mask(jittery, 100.0)).tolist() == list(range(7))


def test_velocity_in_either_frame_becomes_the_body_twist():
    from ar1_ros.data.pai.geometry import odometry_arrays
    from data.pai_snapshot import SPEED, egomotion_frame
    world = egomotion_frame()
    body = world.assign(vx=SPEED, vy=0.0)  # the same drive with body-frame velocity columns
    for df, frame in ((world, 'world'), (body, 'body')):
        odometry = odometry_arrays(df)
        assert odometry.velocity_frame == frame
        np.testing.assert_allclose(odometry.linear, [[SPEED, 0.0, 0.0]] * len(df), atol=1e-9)


def test_body_rates_have_all_three_axes():
    from ar1_ros.data.pai.geometry import body_rates
    from ar1_ros.runtime.rotations import rpy_to_matrix
    t = np.linspace(0.0, 1.0, 21)
    # Yawing at 0.3 rad/s while rolling at 0.2 rad/s about the (yawed) body x axis.
    rotations = np.stack([rpy_to_matrix(0.2 * s, 0.0, 0.3 * s) for s in t])
    rates = body_rates(t, rotations)
    expected = np.stack([np.full_like(t, 0.2), 0.3 * np.sin(0.2 * t), 0.3 * np.cos(0.2 * t)], 1)
    np.testing.assert_allclose(rates, expected, atol=2e-3)
