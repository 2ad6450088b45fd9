"""A checkpoint written by `ar1 train` drives the node unchanged.

Train the tiny official checkpoint's expert for a few steps (stage expert, CPU), start `ar1 run`
on the trained `model/` folder, replay a bag to it over DDS and compare its plans with
`ar1 eval` of the same folder (the offline twin of the node, see test_bag_round_trip.py): the
node must plan with the trained weights, which plan differently from the untrained ones.
"""
from bags.drive_bag import Drive, overrides, write_drive_bag
import numpy as np
import pytest
from ros.processes import LOOSE_VALIDATOR, TINY_BACKEND, write_params
from training.tiny_run import build_dataset, write_config

from ar1_ros.cli.main import main
from nodes.test_bag_round_trip import eval_plans, node_plans

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_node_plans_with_a_trained_checkpoint(tmp_path):
    build_dataset(tmp_path / 'train_data')
    config = write_config(tmp_path / 'stage2.yaml', 'expert', tmp_path / 'train_data' / 'dataset',
                          tmp_path / 'run', train={'max_steps': 3, 'save_every': 3},
                          optim={'lr': 3e-3, 'min_lr': 3e-3})
    assert main(['train', '--config', str(config)]) == 0
    trained = tmp_path / 'run' / 'checkpoints' / 'step-0000003' / 'model'
    drive = Drive(duration_s=4.0)
    bag = write_drive_bag(tmp_path / 'drive', drive)
    backend = dict(TINY_BACKEND, **{'backend.checkpoint': str(trained),
                                    'backend.vlm_path': ''})
    params = write_params(tmp_path / 'params.yaml', dict(
        overrides(drive), **LOOSE_VALIDATOR, **backend, **{'cycle_rate_hz': 10.0}))
    node = node_plans(tmp_path, bag, params, rate=0.5)
    offline = eval_plans(tmp_path, bag, params)
    common = sorted(set(node) & set(offline))
    assert len(common) >= 5, f'node {sorted(node)} vs eval {sorted(offline)}'
    for t0 in common:
        np.testing.assert_allclose(node[t0][0], offline[t0][0], atol=1e-4, rtol=1e-5)
    untrained = write_params(tmp_path / 'untrained.yaml', dict(
        overrides(drive), **LOOSE_VALIDATOR, **TINY_BACKEND, **{'cycle_rate_hz': 10.0}))
    before = eval_plans(tmp_path / 'untrained', bag, untrained)
    shared = sorted(set(before) & set(offline))
    assert shared
    assert max(np.abs(before[t][0] - offline[t][0]).max() for t in shared) > 1e-3
