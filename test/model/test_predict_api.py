"""predict(): sampling, dtypes and the clear errors it gives on bad input."""
import numpy as np
import pytest
import torch

from ar1_ros.model import AR1Model
from ar1_ros.model.generation import Sampling, choose
from ar1_ros.model.image_processing import ImageProcessor
from ar1_ros.model.inference import device_prompt
from model.golden import BASE_VLM, CHECKPOINT, load, predict_inputs


@pytest.fixture(scope='module')
def model():
    return AR1Model.from_pretrained(CHECKPOINT, vlm_path=BASE_VLM)


@pytest.fixture(scope='module')
def inputs():
    return predict_inputs('case_002')


def test_sampling_is_reproducible_with_a_generator(model, inputs):
    def run(seed):
        return model.predict(*inputs, num_samples=3, max_reasoning_tokens=16,
                             generator=torch.Generator().manual_seed(seed))
    first, again, other = run(0), run(0), run(1)
    assert first.trajectory_xyz.shape == (3, 64, 3)
    assert first.trajectory_rot.shape == (3, 64, 3, 3)
    assert first.actions.shape == (3, 64, 2)
    assert len(first.reasoning) == len(first.token_ids) == 3
    assert torch.equal(first.trajectory_xyz, again.trajectory_xyz)
    assert first.token_ids == again.token_ids
    assert not torch.equal(first.trajectory_xyz, other.trajectory_xyz)


def test_numpy_and_torch_inputs_agree(model, inputs):
    noise = torch.zeros(1, 64, 2)
    a = model.predict(*inputs, noise=noise, greedy=True, max_reasoning_tokens=16)
    b = model.predict(*(x.numpy() for x in inputs), noise=noise.numpy(), greedy=True,
                      max_reasoning_tokens=16)
    assert torch.equal(a.trajectory_xyz, b.trajectory_xyz)


def test_flow_step_count_is_configurable(model, inputs):
    noise = torch.zeros(1, 64, 2)
    ten = model.predict(*inputs, noise=noise, greedy=True, max_reasoning_tokens=16)
    five = model.predict(*inputs, noise=noise, greedy=True, max_reasoning_tokens=16,
                         num_flow_steps=5)
    assert not torch.equal(ten.actions, five.actions)


def test_bfloat16_weights_predict_the_same_reasoning(inputs):
    bf16 = AR1Model.from_pretrained(CHECKPOINT, dtype=torch.bfloat16, vlm_path=BASE_VLM)
    assert bf16.network.expert.norm.weight.dtype == torch.bfloat16
    pred = bf16.predict(*inputs, noise=torch.zeros(1, 64, 2), greedy=True,
                        max_reasoning_tokens=32)
    assert pred.reasoning == ['Slow down because the lead vehicle brakes ahead.']
    assert torch.isfinite(pred.trajectory_xyz).all()


def test_nucleus_keeps_only_the_top_token_when_it_holds_the_mass():
    scores = torch.tensor([[10.0, 0.0, -1.0], [0.0, 12.0, 1.0]])
    picks = [choose(scores, Sampling(top_p=0.5), torch.Generator().manual_seed(s))
             for s in range(20)]
    assert all(p.tolist() == [0, 1] for p in picks)


@pytest.mark.parametrize(('change', 'message'), [
    (lambda i: (i[0].float(), *i[1:]), 'uint8'),
    (lambda i: (i[0][..., :2], *i[1:]), r'\(n_cameras, n_frames, H, W, 3\)'),
    (lambda i: (i[0], i[1][:8], i[2]), r'ego_history_xyz must be \(16, 3\)'),
    (lambda i: (i[0], i[1], i[2][:, :2]), r'ego_history_rot must be \(16, 3, 3\)'),
    (lambda i: (i[0], torch.full((16, 3), float('nan')), i[2]), 'NaN'),
    (lambda i: (i[0], [[0.0] * 3] * 16, i[2]), 'numpy array or torch tensor'),
])
def test_bad_inputs_raise_clear_errors(model, inputs, change, message):
    with pytest.raises((ValueError, TypeError), match=message):
        model.predict(*change(inputs), greedy=True, max_reasoning_tokens=4)


@pytest.mark.parametrize(('kwargs', 'message'), [
    ({'noise': np.zeros((2, 64, 2), np.float32)}, r'noise must be \(1, 64, 2\)'),
    ({'num_samples': 0}, 'num_samples'),
    ({'num_flow_steps': 0}, 'num_flow_steps'),
    ({'temperature': 0.0}, 'temperature'),
    ({'top_p': 1.5}, 'top_p'),
    ({'max_reasoning_tokens': 0}, 'max_reasoning_tokens'),
    ({'preprocess_device': 'cuda'}, r"preprocess_device must be None or one of \('cpu', "),
])
def test_bad_settings_raise_clear_errors(model, inputs, kwargs, message):
    with pytest.raises(ValueError, match=message):
        model.predict(*inputs, **kwargs)


def test_reasoning_off_conditions_the_expert_like_stage2_training():
    """Trajectory only: the prompt is the training sequence's prefix and nothing is decoded."""
    model = AR1Model.from_pretrained(CHECKPOINT, dtype=torch.float32, vlm_path=BASE_VLM)
    meta, tensors = load('training')
    _, case = load('cases/case_000')
    images = case['inputs/image_frames'].permute(0, 1, 3, 4, 2).contiguous()
    xyz, rot = tensors['inputs/ego_history_xyz'][0, 0], tensors['inputs/ego_history_rot'][0, 0]
    pre = model.preprocessor
    hist = pre.history_token_ids(xyz, model.network.hist_tokenizer)
    ids, _, _ = pre.prompt(images.reshape(-1, *images.shape[2:]), hist, reasoning=False)
    assert torch.equal(ids[0], tensors['inputs/input_ids'][0, :meta['crop_index']])
    noise = torch.randn(2, 64, 2, generator=torch.Generator().manual_seed(0))
    off = model.predict(images, xyz, rot, num_samples=2, noise=noise, reasoning=False)
    on = model.predict(images, xyz, rot, num_samples=2, noise=noise, greedy=True,
                       max_reasoning_tokens=20)
    assert off.reasoning == ['', '']
    assert off.token_ids == [[], []]
    assert off.stop_found == [True, True]
    assert torch.isfinite(off.trajectory_xyz).all()
    assert not torch.allclose(off.trajectory_xyz, on.trajectory_xyz, atol=1e-3)
    again = model.predict(images, xyz, rot, num_samples=2, noise=noise, reasoning=False)
    assert torch.equal(again.trajectory_xyz, off.trajectory_xyz)


def test_preprocessing_on_the_model_device_plans_as_on_the_cpu(model, inputs):
    # 100x150 frames are resized (to 96x160), so the kernel each path picks shows in the plan.
    images = torch.randint(0, 256, (2, 2, 100, 150, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(5))
    flat, pre = images.reshape(-1, 100, 150, 3), model.preprocessor
    hist = pre.history_token_ids(inputs[1], model.network.hist_tokenizer)
    cpu, on_model = (device_prompt(pre, flat, hist, True, (model.device, torch.float32), where)
                     for where in ('cpu', 'model'))
    assert all(torch.equal(a, b) for a, b in zip(cpu, on_model, strict=True))
    # The float32 kernel (a GPU's) gives other pixels on these frames: the check can fail.
    float_kernel = ImageProcessor.from_folder(BASE_VLM, resize_kernel='float32',
                                              min_pixels=pre.images.min_pixels,
                                              max_pixels=pre.images.max_pixels)
    assert not torch.equal(float_kernel(flat)[0], cpu[1])
    noise = torch.randn(2, 64, 2, generator=torch.Generator().manual_seed(1))
    plans = [model.predict(images, *inputs[1:], num_samples=2, noise=noise, greedy=True,
                           max_reasoning_tokens=16, preprocess_device=where)
             for where in (None, 'cpu', 'model')]
    for other in plans[1:]:
        assert other.token_ids == plans[0].token_ids
        assert torch.equal(other.trajectory_xyz, plans[0].trajectory_xyz)
        assert torch.equal(other.actions, plans[0].actions)
