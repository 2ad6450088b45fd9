"""Stage-1 and stage-2 objectives against the official trainer (test/fixtures/ar1_tiny §7).

The fixture ran `TrainableAlpamayoR1.forward` (official SFT processor, no CoC) on case_000 with
a fixed flow-matching draw. Our sequence must be token for token the official one, our expert
loss the official one where the official code is right (bidirectional action tokens) and, with
`action_attention='causal'`, the loss and gradients the official trainer actually computes.
"""
import dataclasses

from model.golden import BASE_VLM, CHECKPOINT, load
import pytest
import torch

from ar1_ros.model import AR1Model
from ar1_ros.training.objectives import ExpertObjective, VlmObjective
from ar1_ros.training.sequences import build_example, collate, is_trajectory_token

TRAINABLE = ('expert.', 'action_in_proj.', 'action_out_proj.')


@pytest.fixture(scope='module')
def golden():
    return load('training')


@pytest.fixture(scope='module')
def model():
    model = AR1Model.from_pretrained(CHECKPOINT, dtype=torch.float32, vlm_path=BASE_VLM)
    for name, param in model.network.named_parameters():
        param.requires_grad_(name.startswith(TRAINABLE))
    return model


@pytest.fixture(scope='module')
def example(model, golden):
    _, tensors = golden
    _, case = load('cases/case_000')
    images = case['inputs/image_frames'].permute(0, 1, 3, 4, 2).contiguous()
    return build_example(model.network, model.preprocessor, images,
                         tensors['inputs/ego_history_xyz'][0, 0],
                         tensors['inputs/ego_history_rot'][0, 0],
                         tensors['inputs/ego_future_xyz'][0, 0],
                         tensors['inputs/ego_future_rot'][0, 0], coc=None)


def test_sequence_is_the_official_one(model, golden, example):
    meta, tensors = golden
    ids = model.preprocessor.ids
    official = tensors['inputs/input_ids'][0]
    slots = official == ids.traj_future
    assert example.input_ids.shape == official.shape
    assert torch.equal(example.input_ids[~slots], official[~slots])
    future = example.input_ids[slots]
    assert future.numel() == 128
    assert bool(((future >= ids.traj_token_start)
                 & (future < ids.traj_token_start + 3000)).all())
    assert torch.equal(example.labels_mask, tensors['inputs/labels_mask'][0])
    assert example.stop_index + 1 == meta['crop_index']
    assert torch.allclose(example.action, tensors['fm/x'][0], atol=1e-6)


def _expert_loss(model, golden, example, attention):
    _, tensors = golden
    objective = ExpertObjective(model.network, action_attention=attention)
    batch = collate([example], model.preprocessor.ids.pad)
    model.network.zero_grad(set_to_none=True)
    loss, logs = objective(batch, noise=tensors['fm/noise'], t=tensors['fm/t'].reshape(1))
    loss.backward()
    return loss, objective


def test_expert_loss_bidirectional_matches_official_inference_pattern(model, golden, example):
    meta, tensors = golden
    loss, objective = _expert_loss(model, golden, example, 'bidirectional')
    assert loss.item() == pytest.approx(meta['loss_if_bidirectional'], abs=2e-6)
    cache = objective.prefix_cache(collate([example], model.preprocessor.ids.pad))
    for layer in range(2):
        keys = cache.layers[layer].keys
        assert torch.allclose(keys, tensors[f'vlm/cropped_kv/layer{layer}/keys'], atol=1e-4)


def test_expert_loss_causal_matches_official_trainer_and_gradients(model, golden, example):
    meta, tensors = golden
    loss, _ = _expert_loss(model, golden, example, 'causal')
    assert loss.item() == pytest.approx(meta['loss'], abs=2e-6)
    params = dict(model.network.named_parameters())
    for key, value in tensors.items():
        if key.startswith('grad/'):
            grad = params[key[len('grad/'):]].grad
            assert torch.allclose(grad, value, atol=1e-5, rtol=1e-4), key
    assert all(p.grad is None for n, p in params.items() if n.startswith('vlm.'))


def test_vlm_cross_entropy_matches_official_loss(model, golden, example):
    meta, tensors = golden
    objective = VlmObjective(model.network, model.preprocessor.ids)
    batch = collate([example], model.preprocessor.ids.pad)
    # The fixture's `vlm_ce_loss_unused` is the official stage-2 model's own CE: the plain
    # mean over the supervised tokens of the sequence with the future slots left unfused.
    unfused = dataclasses.replace(batch, input_ids=tensors['inputs/input_ids'])
    with torch.no_grad():
        official, _ = objective.token_losses(unfused)
        losses, targets = objective.token_losses(batch)
        loss, logs = objective(batch)
    assert official.mean().item() == pytest.approx(meta['vlm_ce_loss_unused'], abs=1e-4)
    traj = is_trajectory_token(targets, model.preprocessor.ids)
    assert int(traj.sum()) == 130
    assert int((~traj).sum()) == 1
    expected = losses[traj].mean() + losses[~traj].mean()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    assert logs['ce_other'] == pytest.approx(losses[~traj].item(), abs=1e-6)
    assert logs['ce_trajectory'] == pytest.approx(losses[traj].mean().item(), abs=1e-6)


def test_padded_batch_equals_single_examples(model, example):
    """Right padding and per-row prefixes: a batch gives each row its own loss."""
    _, case = load('cases/case_002')
    images = case['inputs/image_frames'].permute(0, 1, 3, 4, 2).contiguous()
    labelled = build_example(model.network, model.preprocessor, images,
                             case['inputs/ego_history_xyz'][0, 0],
                             case['inputs/ego_history_rot'][0, 0],
                             case['inputs/ego_future_xyz'][0, 0],
                             case['inputs/ego_future_rot'][0, 0],
                             coc='Slow down because the lead vehicle brakes ahead.')
    assert labelled.input_ids.shape[0] != example.input_ids.shape[0]
    pad = model.preprocessor.ids.pad
    noise = torch.randn(2, 64, 2, generator=torch.Generator().manual_seed(3))
    times = torch.tensor([0.3, 0.8])
    expert = ExpertObjective(model.network)
    vlm = VlmObjective(model.network, model.preprocessor.ids)
    with torch.no_grad():
        both, _ = expert(collate([example, labelled], pad), noise=noise, t=times)
        single = [expert(collate([e], pad), noise=noise[i:i + 1], t=times[i:i + 1])[0]
                  for i, e in enumerate([example, labelled])]
        tokens, _ = vlm.token_losses(collate([example, labelled], pad))
        alone = [vlm.token_losses(collate([e], pad))[0] for e in (example, labelled)]
    assert both.item() == pytest.approx(sum(single).item() / 2, abs=1e-5)
    assert torch.allclose(tokens, torch.cat(alone), atol=1e-4)
