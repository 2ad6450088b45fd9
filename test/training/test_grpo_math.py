"""GRPO advantages, clipped loss and log-probabilities against hand-computed values."""
import math

import pytest
import torch

from ar1_ros.training.grpo_math import (
    group_advantages,
    group_keep_mask,
    grpo_loss,
    sequence_logprobs,
)


def close(actual, expected, **kwargs):
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    torch.testing.assert_close(actual, expected, **kwargs)


def test_advantages_of_known_groups():
    rewards = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 1.0], [0.1, 0.1, 0.1, 0.1]])
    advantages = group_advantages(rewards, eps=0.0)
    assert advantages.shape == (3, 4)
    # Population std: sqrt(1.25) = sqrt(5) / 2, and sqrt(0.1875) = sqrt(3) / 4.
    s5, s3 = math.sqrt(5), math.sqrt(3)
    close(advantages, [[-3 / s5, -1 / s5, 1 / s5, 3 / s5], [-1 / s3, -1 / s3, -1 / s3, s3],
                       [0.0, 0.0, 0.0, 0.0]])
    assert group_keep_mask(rewards).tolist() == [True, True, False]


def test_population_std_and_eps():
    # Two rewards 0 and 1: population std 0.5 gives -1, 1 (the sample std would give -0.71).
    advantages = group_advantages(torch.tensor([[0.0, 1.0]], dtype=torch.float64))
    assert advantages.dtype == torch.float64
    close(advantages, [[-0.5 / (0.5 + 1e-6), 0.5 / (0.5 + 1e-6)]], rtol=0, atol=1e-12)


def test_zero_std_groups_get_exactly_zero():
    # 0.1 * 3 rounds, so the mean differs from 0.1: without the mask, 1e-17 / eps leaks.
    flat = [[0.1, 0.1, 0.1], [-1.0, -1.0, -1.0], [5.0, 5.0, 5.0]]
    assert group_advantages(flat).abs().max().item() == 0.0
    assert not group_keep_mask(flat).any()
    assert group_advantages([[0.7]]).tolist() == [[0.0]]
    assert group_keep_mask([[0.7]]).tolist() == [False]


def test_scale_none_only_centres():
    advantages = group_advantages([[1.0, 2.0, 6.0]], scale='none')
    close(advantages, [[-2.0, -1.0, 3.0]])


@pytest.mark.parametrize(('rewards', 'kwargs', 'match'), [
    ([1.0, 2.0], {}, r'\(P, G\)'),
    ([[1.0, float('nan')]], {}, 'finite'),
    ([[1.0, 2.0]], {'scale': 'max'}, 'scale'),
])
def test_advantage_inputs_are_checked(rewards, kwargs, match):
    with pytest.raises(ValueError, match=match):
        group_advantages(rewards, **kwargs)
    if not kwargs:
        with pytest.raises(ValueError, match=match):
            group_keep_mask(rewards)


def logps(ratios):
    """Return (logp with grad, old_logp) whose ratio exp(logp - old_logp) is `ratios`."""
    ratios = torch.tensor(ratios, dtype=torch.float64)
    return torch.zeros_like(ratios, requires_grad=True), -torch.log(ratios)


def test_clipped_tokens_give_no_gradient():
    # Sequence 0 (A = +1): 1.5 is above 1.28 (clipped), 1.25 is inside. Sequence 1 (A = -1):
    # 0.5 is below 0.8 (clipped), 1.5 with a negative advantage is not clipped.
    logp, old = logps([[1.5, 1.25], [0.5, 1.5]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    loss, stats = grpo_loss(logp, old, torch.tensor([1.0, -1.0]), mask)
    # Surrogates (1.28, 1.25) and (-0.8, -1.5): -((1.265) + (-1.15)) / 2.
    close(loss, -0.0575)
    loss.backward()
    # d/dlogp of -(ratio A) / (2 sequences * 2 tokens) where not clipped.
    close(logp.grad, [[0.0, -1.25 / 4], [0.0, 1.5 / 4]])
    close(stats['clip_fraction'], 0.5)
    close(stats['ratio_mean'], (1.5 + 1.25 + 0.5 + 1.5) / 4)
    close(stats['policy_loss'], -0.0575)
    assert not stats['policy_loss'].requires_grad


def test_clip_higher_is_asymmetric():
    logp, old = logps([[1.25]])
    loss, stats = grpo_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 1, dtype=torch.bool),
                            eps_high=0.2)
    loss.backward()
    close(loss, -1.2)  # 1.25 is clipped to 1.2 by a symmetric 0.2 bound
    close(logp.grad, [[0.0]])
    close(stats['clip_fraction'], 1.0)


def test_sequence_and_token_means_on_unequal_lengths():
    # Ratio 1: the per-token loss is -A. One token of -1 and three of +0.5.
    logp = torch.tensor([[0.0, float('nan'), -float('inf')], [-1.0, -2.0, -3.0]],
                        requires_grad=True)
    old = torch.where(torch.isfinite(logp), logp.detach(), torch.tensor(float('inf')))
    mask = torch.tensor([[True, False, False], [True, True, True]])
    advantages = torch.tensor([1.0, -0.5])
    sequence, _ = grpo_loss(logp, old, advantages, mask, token_mean='sequence')
    token, _ = grpo_loss(logp, old, advantages, mask, token_mean='token')
    close(sequence, (-1.0 + 0.5) / 2)
    close(token, (-1.0 + 3 * 0.5) / 4)
    token.backward()
    close(logp.grad, [[-0.25, 0.0, 0.0], [0.125, 0.125, 0.125]])  # -A / 4, masked 0


def test_kl_is_zero_against_itself_and_k3_otherwise():
    logp = torch.tensor([[-0.5]], requires_grad=True)
    mask = torch.ones(1, 1, dtype=torch.bool)
    zero = torch.tensor([0.0])
    loss, stats = grpo_loss(logp, logp.detach(), zero, mask, ref_logp=logp.detach(), kl_beta=1.0)
    close(loss, 0.0)
    close(stats['kl'], 0.0)
    # ref - logp = ln 2: k3 = 2 - ln 2 - 1; its derivative in logp is 1 - 2 = -1.
    ref = logp.detach() + math.log(2.0)
    loss, stats = grpo_loss(logp, logp.detach(), zero, mask, ref_logp=ref, kl_beta=0.1)
    close(stats['kl'], 1.0 - math.log(2.0))
    close(loss, 0.1 * (1.0 - math.log(2.0)))
    loss.backward()
    close(logp.grad, [[-0.1]])
    with pytest.raises(ValueError, match='ref_logp'):
        grpo_loss(logp, logp.detach(), zero, mask, kl_beta=0.1)


def test_dual_clip_bounds_negative_advantages():
    mask = torch.ones(1, 2, dtype=torch.bool)
    logp, old = logps([[20.0, 5.0]])
    plain, _ = grpo_loss(logp, old, torch.tensor([-1.0]), mask)
    dual, _ = grpo_loss(logp, old, torch.tensor([-1.0]), mask, dual_clip=10.0)
    close(plain, (20.0 + 5.0) / 2)
    close(dual, (10.0 + 5.0) / 2)  # ratio * A below -10 is lifted to -10, 5 is left
    dual.backward()
    close(logp.grad, [[0.0, 5.0 / 2]])


def test_no_token_gives_zero_loss_with_a_graph():
    logp, old = logps([[1.0, 1.0]])
    loss, _ = grpo_loss(logp, old, torch.tensor([1.0]), torch.zeros(1, 2, dtype=torch.bool))
    loss.backward()
    close(loss, 0.0)
    close(logp.grad, [[0.0, 0.0]])


def test_loss_inputs_are_checked():
    logp, mask = torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match='advantages'):
        grpo_loss(logp, logp, torch.zeros(3), mask)
    with pytest.raises(ValueError, match='mask'):
        grpo_loss(logp, logp, torch.zeros(2), mask[:, :2])
    with pytest.raises(ValueError, match='token_mean'):
        grpo_loss(logp, logp, torch.zeros(2), mask, token_mean='batch')


def test_sequence_logprobs_by_hand():
    # Row 0: softmax(0, 0, ln 2) = (1/4, 1/4, 1/2); row 1: softmax(ln 3, 0, 0) = (3/5, ...).
    logits = torch.tensor([[[0.0, 0.0, math.log(2.0)], [math.log(3.0), 0.0, 0.0]]])
    targets = torch.tensor([[2, 0]])
    close(sequence_logprobs(logits, targets), [[math.log(0.5), math.log(0.6)]])
    # Temperature 2: (1, 1, sqrt 2) / (2 + sqrt 2), so log p = -ln(1 + sqrt 2).
    close(sequence_logprobs(logits, targets, temperature=2.0)[0, 0],
          -math.log(1.0 + math.sqrt(2.0)))
    close(sequence_logprobs(logits, torch.tensor([[-100, 1]])), [[0.0, math.log(0.2)]])


def test_sequence_logprobs_are_float32_for_bf16_logits():
    logits = torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.bfloat16)
    out = sequence_logprobs(logits, torch.tensor([[2]]))
    assert out.dtype == torch.float32
    close(out, [[1.0 - math.log(2.0 + math.e)]])
    with pytest.raises(ValueError, match='temperature'):
        sequence_logprobs(logits, torch.tensor([[2]]), temperature=0.0)
    with pytest.raises(ValueError, match='targets'):
        sequence_logprobs(logits, torch.tensor([2]))
