"""Trajectory tokenizers vs the official golden outputs (fixtures README §5) + properties.

Bins are compared exactly (float32 inputs, as at inference).  The decoded trajectory is
reproduced bitwise (measured 0); its bar is the action_to_traj one: 2e-5 m, rot 1e-6.
"""
import json

import pytest
import torch

from ar1_ros.model.trajectory_tokens import DeltaTrajectoryTokenizer, DiscreteTrajectoryTokenizer

from .golden import CHECKPOINT, load

DECODE_ATOL = {'xyz': 2e-5, 'rot': 1e-6}
TRAJ = ('hist_xyz', 'hist_rot', 'fut_xyz', 'fut_rot')


@pytest.fixture(scope='module')
def golden():
    return load('action_space')


@pytest.fixture(scope='module')
def cfg():
    return json.loads((CHECKPOINT / 'config.json').read_text())


def hist_tokenizer(cfg):
    return DeltaTrajectoryTokenizer(**{k: v for k, v in cfg['hist_traj_tokenizer_cfg'].items()
                                       if k != '_target_'})


def future_tokenizer(cfg):
    # The nested action_space_cfg keeps its `_target_`: the tokenizer must ignore it.
    return DiscreteTrajectoryTokenizer(**{k: v for k, v in cfg['traj_tokenizer_cfg'].items()
                                          if k not in ('_target_', '_recursive_')})


def test_history_bins_match_official(golden, cfg):
    meta, t = golden
    tok = hist_tokenizer(cfg)
    assert tok.vocab_size == 1000
    bins = tok.encode(t['gt/hist_xyz'].float())
    assert bins.dtype == torch.int64
    assert bins.shape == (5, 48)
    assert torch.equal(bins, t['tokenizers/hist_bins'])
    assert torch.equal(bins + meta['hist_token_start_idx'], t['tokenizers/hist_token_ids'])


def test_future_bins_and_decode_match_official(golden, cfg):
    meta, t = golden
    tok = future_tokenizer(cfg)
    assert tok.vocab_size == 3000
    gt = [t[f'gt/{k}'].float() for k in TRAJ]
    bins = tok.encode(*gt)
    assert bins.dtype == torch.int64
    assert bins.shape == (5, 128)
    assert torch.equal(bins, t['tokenizers/future_bins'])
    assert torch.equal(bins + meta['future_token_start_idx'], t['tokenizers/future_token_ids'])
    xyz, rot = tok.decode(t['tokenizers/future_bins'], gt[0], gt[1])
    assert (xyz - t['tokenizers/future_decoded_xyz']).abs().max() <= DECODE_ATOL['xyz']
    assert (rot - t['tokenizers/future_decoded_rot']).abs().max() <= DECODE_ATOL['rot']


def test_future_bins_interleave_accel_and_curvature(golden, cfg):
    t = golden[1]
    tok = future_tokenizer(cfg)
    bins = t['tokenizers/future_bins']
    action = t['f32/action']
    # even positions are accel, odd positions curvature: compare with the quantised action.
    unit = (action + 10.0) / 20.0
    assert torch.equal(bins[:, 0::2], (unit[..., 0] * 2999).round().long())
    assert torch.equal(bins[:, 1::2], (unit[..., 1] * 2999).round().long())
    assert tok.action_space.n_waypoints == 64


def test_history_first_delta_saturates_and_rounds_half_to_even(cfg):
    tok = hist_tokenizer(cfg)
    steps = torch.arange(-15, 1, dtype=torch.float32)
    hist = torch.stack([steps * 0.1 * 8.0, torch.zeros(16), torch.zeros(16)], -1)[None]
    bins = tok.encode(hist)
    assert bins[0, 0] == 0  # oldest pose 12 m behind: clamped to bin 0
    assert bins[0, 1:3].tolist() == [500, 500]  # y = z = 0 land on 499.5 -> 500
    # A y delta landing exactly on 498.5 tells half-to-even (498) from half-up (499).
    y = torch.tensor(498.5 / 999 * 8 - 4, dtype=torch.float64)
    pose = torch.zeros(1, 1, 3, dtype=torch.float64)
    pose[0, 0, 1] = y
    assert tok.encode(pose)[0, 1] == 498
    assert bins.min() >= 0
    assert bins.max() <= 999


def test_decode_of_encode_is_close(golden, cfg):
    t = golden[1]
    tok = future_tokenizer(cfg)
    gt = [t[f'gt/{k}'] for k in TRAJ]  # float64 inputs run in float64
    xyz, _ = tok.decode(tok.encode(*gt), gt[0], gt[1])
    assert xyz.dtype == torch.float64
    # Bin width is 20/2999 normalised units; over 6.4 s that stays within ~0.3 m here.
    assert (xyz - gt[2]).norm(dim=-1).max() < 0.3


def test_constructor_checks(cfg):
    with pytest.raises(ValueError, match='predict_yaw'):
        DeltaTrajectoryTokenizer(predict_yaw=True)
    assert DeltaTrajectoryTokenizer().ego_xyz_min == (-4.0, -4.0, -10.0)
    args = {k: v for k, v in cfg['traj_tokenizer_cfg'].items() if k[0] != '_'}
    with pytest.raises(ValueError, match='dims_min'):
        DiscreteTrajectoryTokenizer(**{**args, 'dims_min': [-10.0]})
