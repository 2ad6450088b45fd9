"""GRPO rollouts on the tiny checkpoint: the completion state machine and on-policy scoring."""
from model.golden import BASE_VLM, CHECKPOINT, load
import pytest
import torch

from ar1_ros.model import AR1Model
from ar1_ros.model.generation import decode_step, prefill
from ar1_ros.training.config import GrpoSection
from ar1_ros.training.grpo import GrpoObjective, GrpoPrompt
from ar1_ros.training.grpo_rollout import (
    COT,
    DONE,
    TRAJ,
    future_bins,
    phase_mask,
    reasoning_ids,
    sample_group,
)


@pytest.fixture(scope='module')
def model():
    return AR1Model.from_pretrained(CHECKPOINT, dtype=torch.float32, vlm_path=BASE_VLM)


@pytest.fixture(scope='module')
def prompt(model):
    _, case = load('cases/case_000')
    pre = model.preprocessor
    images = case['inputs/image_frames'].permute(0, 1, 3, 4, 2).contiguous()
    xyz, rot = case['inputs/ego_history_xyz'][0, 0], case['inputs/ego_history_rot'][0, 0]
    hist = pre.history_token_ids(xyz, model.network.hist_tokenizer)
    ids, pixels, grid = pre.prompt(images.reshape(-1, *images.shape[2:]), hist)
    return GrpoPrompt(ids, pixels, grid, xyz, rot, case['inputs/ego_future_xyz'][0, 0])


def _sample(model, prompt, max_reasoning, seed=0):
    return sample_group(model.network.vlm, prompt.input_ids, prompt.pixel_values,
                        prompt.image_grid_thw, 3, model.preprocessor.ids, n_future=128,
                        max_reasoning=max_reasoning, temperature=1.0,
                        generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize('max_reasoning', [2, 24])
def test_every_completion_is_reasoning_then_128_bins_then_end(model, prompt, max_reasoning):
    ids = model.preprocessor.ids
    done = _sample(model, prompt, max_reasoning)
    bins = future_bins(done, ids)
    assert bins.shape == (3, 128)
    assert bool(((bins >= 0) & (bins < ids.future_vocab_size)).all())
    for tokens, phase, sampled in zip(done.tokens.tolist(), done.phase.tolist(),
                                      done.sampled.tolist(), strict=True):
        cot = [t for t, p in zip(tokens, phase, strict=True) if p == COT]
        assert 1 <= len(cot) <= max_reasoning + 1
        assert cot[-1] == ids.traj_future_start
        assert not any(ids.traj_token_start <= t < ids.traj_token_start + 4000 or
                       t in (ids.eos, ids.image_pad) for t in cot)
        end = tokens.index(ids.traj_future_end)
        assert phase[end] == TRAJ
        assert not sampled[end]
        assert all(p == DONE and t == ids.pad for t, p in zip(tokens[end + 1:],
                                                              phase[end + 1:], strict=True))
    texts = reasoning_ids(done)
    assert len(texts) == 3
    if max_reasoning == 2:  # a random model never stops in 2 tokens: the stop is forced
        forced = [row.index(ids.traj_future_start) for row in done.tokens.tolist()]
        assert all(not done.sampled[i, j] for i, j in enumerate(forced))


def test_policy_logprobs_are_those_of_the_sampling_distribution(model, prompt):
    """The batched teacher-forced forward scores each token as the decoding loop drew it."""
    ids = model.preprocessor.ids
    section = GrpoSection(group_size=3, max_reasoning_tokens=6, temperature=0.7)
    objective = GrpoObjective(model.network, model.preprocessor, section)
    done = _sample(model, prompt, 6, seed=3)
    with torch.no_grad():
        batched = objective.policy_logprobs(prompt, done)
    row = 1
    tokens = done.tokens[row]
    vlm = model.network.vlm
    with torch.no_grad():
        logits, cache, delta = prefill(vlm, prompt.input_ids, prompt.pixel_values,
                                       prompt.image_grid_thw)
        for j in range(tokens.shape[0]):
            if done.phase[row, j] == DONE:
                break
            scores = phase_mask(logits[0], done.phase[row, j], ids) / 0.7
            expected = scores.log_softmax(-1)[tokens[j]]
            if done.sampled[row, j]:
                assert batched[row, j].item() == pytest.approx(expected.item(), abs=1e-4)
            logits = decode_step(vlm, tokens[j:j + 1], cache, delta)


def test_group_rewards_and_loss(model, prompt):
    section = GrpoSection(group_size=4, max_reasoning_tokens=4, temperature=1.0)
    objective = GrpoObjective(model.network, model.preprocessor, section,
                              generator=torch.Generator().manual_seed(1))
    done, terms = objective.rollout(prompt)
    assert set(terms) == {'reward', 'ade', 'comfort', 'consistency'}
    assert all(v.shape == (4,) for v in terms.values())
    ade = terms['ade']
    reward = terms['reward']
    gated = ade >= 3.0
    assert torch.equal(reward[gated], torch.full_like(reward[gated], -1.0))
    assert bool(((terms['comfort'] >= -1) & (terms['comfort'] <= 0)).all())
    with pytest.raises(ValueError, match='lora'):
        GrpoObjective(model.network, model.preprocessor, GrpoSection(kl_beta=0.1))
