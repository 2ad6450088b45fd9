"""Round trip: a bag replayed over DDS to the node gives the trajectories `ar1 eval` computes.

Three processes with the tiny real AR1 checkpoint: `ar1 run` (sim time), `ar1 replay BAG`
(/clock from the bag) and this test, which records the node's plans; then `ar1 eval` runs on
the same bag without DDS. For every t0 the node planned, eval's trajectory must be the same
within float tolerance (same inputs, same runtime, same seed derived from t0).
"""
import os
import subprocess
import sys

from bags.drive_bag import Drive, overrides, write_drive_bag
import numpy as np
import pytest
from ros.harness import Harness, stamp_ns
from ros.processes import LOOSE_VALIDATOR, TINY_BACKEND, NodeProcess, write_params
from ros.synthetic import topic_of

from ar1_ros.cli.main import main
from ar1_ros.data.bags import BagReader

pytestmark = [pytest.mark.ros, pytest.mark.slow]
AR1 = os.path.join(os.path.dirname(sys.executable), 'ar1')


def points(msg) -> np.ndarray:
    return np.array([[p.x, p.y, p.z, p.yaw, p.velocity] for p in msg.points])


def node_plans(tmp_path, bag, params, rate):
    """Replay `bag` to `ar1 run`; return {t0: (points (64, 5), sample_index)} it published."""
    node = NodeProcess(params, tmp_path / 'node.log', autostart=True)
    listener = Harness(overrides=None, feed=False)
    try:
        camera = topic_of('front_wide', True)
        assert listener.wait_for(lambda: listener.io.count_subscribers(camera) > 0, 90), \
            'the node never became active:\n' + (tmp_path / 'node.log').read_text()[-3000:]
        replay = subprocess.run([AR1, 'replay', str(bag), '--rate', str(rate), '--wait-for',
                                 camera, '--delay', '1.0'],
                                capture_output=True, text=True, timeout=180)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        listener.settle(quiet=1.5, timeout=30)
        return {stamp_ns(m): (points(m), m.sample_index) for m in listener.take('trajectory')}
    finally:
        listener.close()
        code = node.stop()
        assert code == 0, (tmp_path / 'node.log').read_text()[-3000:]


def eval_plans(tmp_path, bag, params):
    """Run `ar1 eval` every 0.1 s on `bag`; return {t0: (points, sample_index)} of its bag."""
    out = tmp_path / 'eval'
    assert main(['eval', str(bag), '--params', str(params), '--every', '0.1', '--out',
                 str(out), '--no-progress']) == 0
    plans = {}
    with BagReader(out / 'bags' / bag.name) as reader:
        for message in reader.messages(['/ar1_policy/trajectory']):
            msg = reader.deserialize(message)
            plans[msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec] = (
                points(msg), msg.sample_index)
    return plans


def test_replayed_node_equals_offline_eval(tmp_path):
    drive = Drive(duration_s=4.0)
    bag = write_drive_bag(tmp_path / 'drive', drive)
    params = write_params(tmp_path / 'params.yaml', dict(
        overrides(drive), **LOOSE_VALIDATOR, **TINY_BACKEND,
        **{'backend.num_samples': 2, 'cycle_rate_hz': 10.0}))
    node = node_plans(tmp_path, bag, params, rate=0.5)
    offline = eval_plans(tmp_path, bag, params)
    common = sorted(set(node) & set(offline))
    assert len(offline) >= 20, f'eval planned only {len(offline)} cycles'
    assert len(common) >= 5, f'node {sorted(node)} vs eval {sorted(offline)}'
    assert set(node) <= set(offline), 'the node planned at a t0 eval never reached'
    for t0 in common:
        assert node[t0][1] == offline[t0][1]
        np.testing.assert_allclose(node[t0][0], offline[t0][0], atol=1e-4, rtol=1e-5,
                                   err_msg=f't0 {t0}')
