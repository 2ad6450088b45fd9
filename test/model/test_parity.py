"""Parity of AR1Model with the official code on every golden case (test/fixtures/ar1_tiny).

Tolerances are those the fixtures' README §8 suggests for an independent float32
implementation; ids, offsets and positions are exact.
"""
import pytest
import torch

from ar1_ros.model import AR1Model
from ar1_ros.model.conditioning import expert_conditioning
from ar1_ros.model.generation import Sampling, StopTokens, rollout
from ar1_ros.model.inference import flow_actions
from ar1_ros.model.prompt import build_prompt_ids, fuse_history_tokens
from model.golden import BASE_VLM, CASES, CHECKPOINT, load

MAX_TOKENS = 32  # the golden runs used max_generation_length=32


@pytest.fixture(scope='module')
def model():
    return AR1Model.from_pretrained(CHECKPOINT, dtype=torch.float32, vlm_path=BASE_VLM)


@pytest.fixture(scope='module', params=CASES)
def case(request):
    return load(f'cases/{request.param}')


def _inputs(tensors):
    """Golden inputs in predict() layout: images (4, 4, H, W, 3), history (16, 3), (16, 3, 3)."""
    images = tensors['inputs/image_frames'].permute(0, 1, 3, 4, 2).contiguous()
    return (images, tensors['inputs/ego_history_xyz'][0, 0],
            tensors['inputs/ego_history_rot'][0, 0])


def _stops(model):
    ids = model.preprocessor.ids
    return StopTokens(ids.traj_token_start, 4000, ids.traj_future_start, ids.eos, ids.pad)


def _rollout(model, meta, tensors):
    """Greedy rollout of the golden prompt (incl. a prompt-fed CoC) from our own preprocessing."""
    pre = model.preprocessor
    images, xyz, _ = _inputs(tensors)
    pixels, grid = pre.images(images.reshape(-1, *images.shape[2:]))
    hist = pre.history_token_ids(xyz, model.network.hist_tokenizer)
    per_image = (grid.prod(-1) // 4).tolist()
    ids = build_prompt_ids(pre.tokenizer, per_image, assistant_prefix=meta['assistant_prefix'])
    ids = fuse_history_tokens(ids, hist, pre.ids.traj_history)
    with torch.inference_mode():
        roll = rollout(model.network.vlm, ids, pixels, grid, meta['num_traj_samples'],
                       _stops(model), Sampling(greedy=True, max_new_tokens=MAX_TOKENS),
                       keep_logits=True)
    return hist, ids, pixels, grid, roll


def test_preprocessing_and_rollout(model, case):
    meta, tensors = case
    hist, ids, pixels, grid, roll = _rollout(model, meta, tensors)
    assert torch.equal(hist, tensors['inputs/hist_token_ids'])
    assert torch.equal(ids, tensors['inputs/input_ids'])
    assert torch.equal(grid, tensors['inputs/image_grid_thw'])
    torch.testing.assert_close(pixels, tensors['inputs/pixel_values'], rtol=0, atol=1e-6)
    assert torch.equal(roll.sequences, tensors['vlm/sequences_raw'])
    assert roll.rope_delta == int(tensors['vlm/rope_deltas'].reshape(-1)[0])
    logits, expected = torch.stack(roll.logits, 1), tensors['vlm/generated_logits']
    assert torch.equal(torch.isinf(logits), torch.isinf(expected))
    finite = torch.isfinite(expected)
    torch.testing.assert_close(logits[finite], expected[finite], rtol=0, atol=1e-4)
    for i, layer in enumerate(roll.cache.layers):
        for part in ('keys', 'values'):
            torch.testing.assert_close(getattr(layer, part),
                                       tensors[f'vlm/kv_cache/layer{i}/{part}'], rtol=0, atol=1e-4)


def test_expert_conditioning_and_teacher_forced_velocity(model, case):
    meta, tensors = case
    *_, roll = _rollout(model, meta, tensors)
    net = model.network
    cond = expert_conditioning(roll.sequences, roll.cache.get_seq_length(),
                               model.preprocessor.ids.traj_future_start, roll.rope_delta, 64)
    assert torch.equal(cond.offsets, tensors['expert/offset'])
    assert torch.equal(cond.position_ids, tensors['expert/position_ids'])
    assert torch.equal(cond.mask, tensors['expert/attention_mask'])
    x_steps, t_steps = tensors['diffusion/x_steps'], tensors['diffusion/t_steps']
    with torch.inference_mode():
        embeds = net.action_in_proj(x_steps[0], t_steps[0])
        torch.testing.assert_close(embeds, tensors['expert/step0_inputs_embeds'],
                                   rtol=0, atol=1e-5)
        for i in range(x_steps.shape[0]):
            v = net.expert_velocity(x_steps[i], t_steps[i], roll.cache, cond.position_ids,
                                    cond.mask)
            torch.testing.assert_close(v, tensors['diffusion/v_steps'][i], rtol=0, atol=1e-4)
    assert roll.cache.get_seq_length() == meta['prefill_cache_len']


# predict() writes its own CoC; the prompt-fed case_001 is test_prompt_fed_cot_end_to_end.
@pytest.mark.parametrize('name', ['case_000', 'case_002'])
def test_predict_end_to_end(model, name):
    meta, tensors = load(f'cases/{name}')
    assert not meta['prompt_fed_cot']
    images, xyz, rot = _inputs(tensors)
    pred = model.predict(images, xyz.numpy(), rot, num_samples=meta['num_traj_samples'],
                         noise=tensors['diffusion/noise'], greedy=True,
                         max_reasoning_tokens=MAX_TOKENS)
    torch.testing.assert_close(pred.normalized_actions, tensors['diffusion/sampled_action'],
                               rtol=0, atol=1e-5)
    torch.testing.assert_close(pred.trajectory_xyz, tensors['outputs/pred_xyz'][0, 0],
                               rtol=0, atol=1e-4)
    torch.testing.assert_close(pred.trajectory_rot, tensors['outputs/pred_rot'][0, 0],
                               rtol=0, atol=1e-5)
    torch.testing.assert_close(pred.actions[..., 0], tensors['outputs/accel'], rtol=0, atol=1e-5)
    torch.testing.assert_close(pred.actions[..., 1], tensors['outputs/curvature'],
                               rtol=0, atol=1e-6)
    assert pred.reasoning == meta['cot']
    stop = model.preprocessor.ids.traj_future_start
    expected_ids = [ids[:ids.index(stop) + 1] for ids in meta['generated_token_ids']]
    assert pred.token_ids == expected_ids
    assert all(pred.stop_found)
    assert set(pred.timings) >= {'preprocess', 'reasoning', 'flow_matching', 'total'}


def test_prompt_fed_cot_end_to_end(model):
    """A CoC given in the prompt (case_001): the expert must mask what is generated after it."""
    meta, tensors = load('cases/case_001')
    *_, roll = _rollout(model, meta, tensors)
    net, stop = model.network, model.preprocessor.ids.traj_future_start
    with torch.inference_mode():
        actions, found = flow_actions(net, roll, stop, tensors['diffusion/noise'], None, None)
        _, xyz, rot = _inputs(tensors)
        traj_xyz, traj_rot = net.action_space.action_to_traj(actions, xyz[None], rot[None])
    assert found.tolist() == [True]
    torch.testing.assert_close(actions, tensors['diffusion/sampled_action'], rtol=0, atol=1e-5)
    torch.testing.assert_close(traj_xyz, tensors['outputs/pred_xyz'][0, 0], rtol=0, atol=1e-4)
    torch.testing.assert_close(traj_rot, tensors['outputs/pred_rot'][0, 0], rtol=0, atol=1e-5)
