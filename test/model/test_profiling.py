"""The instrumented predict (profiling.py) and the released configuration builder (released.py).

The profiler must return exactly what AR1Model.predict returns (greedy, fixed noise) on the tiny
golden checkpoint, with every stage timed and the right counts. The released configuration is
never built for real here (22 GiB of weights): its ids, its prompt layout and the refusal are
checked, and the random-weight path runs end to end on the tiny architecture.
"""
import pytest
import torch

from ar1_ros.model import AR1Model
from ar1_ros.model import released as rel
from ar1_ros.model.api import build_network
from ar1_ros.model.profiling import STAGES, Breakdown, profile_predict, summarize
from ar1_ros.model.tokens import check_token_ids
from model.golden import BASE_VLM, CHECKPOINT


@pytest.fixture(scope='module')
def model():
    return AR1Model.from_pretrained(CHECKPOINT, dtype=torch.float32, vlm_path=BASE_VLM)


@pytest.fixture(scope='module')
def inputs():
    # 2 cameras x 2 frames keep the tests fast; the code path is that of 4 x 4.
    gen = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (2, 2, 64, 128, 3), generator=gen, dtype=torch.uint8)
    xyz = torch.zeros(16, 3)
    xyz[:, 0] = torch.arange(-15, 1, dtype=torch.float32) * 0.8
    return images, xyz, torch.eye(3).expand(16, 3, 3).clone()


def _check_breakdown(breakdown: Breakdown, steps: int, forwards: int) -> None:
    assert set(breakdown.stages) == set(STAGES)
    assert all(seconds > 0 for seconds in breakdown.stages.values()), breakdown.stages
    assert len(breakdown.flow_steps) == steps
    assert len(breakdown.decode_steps) == forwards
    assert all(s > 0 for s in breakdown.flow_steps + breakdown.decode_steps)


@pytest.mark.parametrize(('samples', 'steps'), [(1, 5), (1, 10), (2, 5), (2, 10)])
def test_profiler_returns_what_predict_returns(model, inputs, samples, steps):
    noise = torch.randn(samples, 64, 2, generator=torch.Generator().manual_seed(samples))
    expected = model.predict(*inputs, num_samples=samples, num_flow_steps=steps, noise=noise,
                             greedy=True, max_reasoning_tokens=40)
    got, breakdown = profile_predict(model.network, model.preprocessor, *inputs,
                                     num_samples=samples, num_flow_steps=steps, noise=noise)
    assert got.token_ids == expected.token_ids
    assert got.stop_found == expected.stop_found == [True] * samples
    assert got.reasoning == expected.reasoning
    for name in ('trajectory_xyz', 'trajectory_rot', 'actions', 'normalized_actions'):
        torch.testing.assert_close(getattr(got, name), getattr(expected, name), atol=1e-6,
                                   rtol=0)
    # Every row stopped: each generated id up to the stop token was fed back once.
    longest = max(len(ids) for ids in got.token_ids)
    assert breakdown.reasoning_tokens == longest
    _check_breakdown(breakdown, steps, longest)
    assert set(got.timings) == {*STAGES, 'total'}


def test_forced_length_generates_exactly_t_tokens(model, inputs):
    ids = model.preprocessor.ids
    for count in (1, 17):
        pred, breakdown = profile_predict(model.network, model.preprocessor, *inputs,
                                          num_samples=2, num_flow_steps=2, forced_tokens=count)
        for row in pred.token_ids:
            assert len(row) == count
            assert row[-1] == ids.traj_future_start
            assert ids.eos not in row
        assert pred.stop_found == [True, True]
        _check_breakdown(breakdown, 2, count)
    with pytest.raises(ValueError, match='forced_tokens'):
        profile_predict(model.network, model.preprocessor, *inputs, forced_tokens=0)


def test_profiler_preprocesses_where_predict_does(model, inputs):
    resized = (torch.randint(0, 256, (2, 2, 100, 150, 3), dtype=torch.uint8), *inputs[1:])
    noise = torch.zeros(1, 64, 2)
    expected = model.predict(*resized, noise=noise, greedy=True, max_reasoning_tokens=40)
    got, _ = profile_predict(model.network, model.preprocessor, *resized, noise=noise,
                             preprocess_device='model')
    assert got.token_ids == expected.token_ids
    assert torch.equal(got.trajectory_xyz, expected.trajectory_xyz)
    with pytest.raises(ValueError, match='preprocess_device'):
        profile_predict(model.network, model.preprocessor, *inputs, preprocess_device='gpu')


def test_summary_statistics():
    runs = [Breakdown({s: float(i) for s in STAGES}, [i / 10] * 3 + [9.0], [0.5] * 10, 4)
            for i in range(1, 6)]
    summary = summarize(runs)
    assert summary['prefill'] == {'median': 3.0, 'p90': pytest.approx(4.6), 'count': 1}
    assert summary['total']['median'] == 3.0 * len(STAGES)
    assert summary['decode_per_token']['median'] == pytest.approx(0.3)
    assert summary['decode_per_token']['count'] == 4
    assert summary['flow_per_step'] == {'median': 0.5, 'p90': 0.5, 'count': 10}
    with pytest.raises(ValueError, match='at least one run'):
        summarize([])


def test_release_token_ids_follow_the_official_extension():
    config = rel.release_config()
    ids = rel.release_token_ids(config)
    assert (ids.traj_token_start, ids.traj_future_start, ids.traj_history) == (
        151_669, 155_681, 155_684)
    assert ids.vocab_size == config.vocab_size == 155_697
    assert (ids.image_pad, ids.eos, ids.pad) == (151_655, 151_645, 151_643)
    check_token_ids(ids, config.raw)


def _specials(ids, tokens) -> list:
    keep = {ids.vision_start, ids.vision_end, ids.image_pad, ids.eos, ids.cot_start,
            ids.traj_history_start, ids.traj_history_end}
    return [t for t in tokens if t in keep or t >= ids.traj_token_start]


def _id_preprocessor(model) -> rel.IdPreprocessor:
    pre = model.preprocessor
    im_start = pre.tokenizer.convert_tokens_to_ids('<|im_start|>')
    return rel.IdPreprocessor(pre.config, rel.IdText(), pre.ids, pre.images, im_start=im_start)


def test_id_prompt_has_the_template_layout(model, inputs):
    pre, id_pre = model.preprocessor, _id_preprocessor(model)
    images = inputs[0].reshape(4, 64, 128, 3)
    history = pre.history_token_ids(inputs[1], model.network.hist_tokenizer)
    real, pixels, grid = pre.prompt(images, history)
    built, id_pixels, id_grid = id_pre.prompt(images, history)
    assert _specials(pre.ids, built[0].tolist()) == _specials(pre.ids, real[0].tolist())
    assert built[0, 0] == real[0, 0] == id_pre.im_start
    assert torch.equal(id_pixels, pixels)
    assert torch.equal(id_grid, grid)


def test_released_prompt_is_about_3000_tokens():
    config = rel.release_config()
    ids = rel.release_token_ids(config)
    pre = rel.IdPreprocessor(config, rel.IdText(), ids, None)
    prompt = pre.prompt_ids([180] * 16, 48)
    assert prompt.count(ids.image_pad) == 2880
    assert prompt.count(ids.vision_start) == prompt.count(ids.vision_end) == 16
    assert prompt.count(ids.traj_history) == 48
    assert prompt[-1] == ids.cot_start
    assert 2980 < len(prompt) < 3050


def test_released_build_refuses_a_device_too_small(monkeypatch):
    monkeypatch.setattr(rel, 'available_bytes', lambda device: 16 * 2**30)
    with pytest.raises(rel.InsufficientMemoryError, match=r'needs about 30\.\d GiB on cpu'):
        rel.build_released('cpu')
    assert rel.available_bytes(torch.device('cpu')) > 0


def test_random_weights_run_end_to_end_on_the_tiny_architecture(model, inputs):
    network = build_network(model.config, model.backbone, torch.bfloat16)
    rel.materialise(network, torch.device('cpu'), torch.bfloat16, seed=1)
    params = dict(network.named_parameters())
    assert not any(p.is_meta for p in params.values())
    assert {p.dtype for p in params.values()} == {torch.bfloat16}
    assert torch.all(params['expert.norm.weight'] == 1)
    assert torch.all(params['action_out_proj.bias'] == 0)
    assert 0.015 < float(params['expert.layers.0.mlp.gate_proj.weight'].float().std()) < 0.025
    assert network.action_space.accel_std.dtype == torch.bfloat16
    pred, breakdown = profile_predict(network, _id_preprocessor(model), *inputs,
                                      num_flow_steps=3, forced_tokens=12)
    assert len(pred.token_ids[0]) == 12
    assert pred.reasoning == ['']
    assert torch.isfinite(pred.trajectory_xyz).all()
    _check_breakdown(breakdown, 3, 12)


def test_profiler_times_the_reasoning_off_mode(model, inputs):
    noise = torch.randn(2, 64, 2, generator=torch.Generator().manual_seed(5))
    expected = model.predict(*inputs, num_samples=2, noise=noise, reasoning=False)
    got, breakdown = profile_predict(model.network, model.preprocessor, *inputs, num_samples=2,
                                     noise=noise, reasoning=False)
    torch.testing.assert_close(got.trajectory_xyz, expected.trajectory_xyz, atol=1e-6, rtol=0)
    assert got.token_ids == expected.token_ids == [[], []]
    assert breakdown.reasoning_tokens == 0
    assert breakdown.decode_steps == []
    assert len(breakdown.flow_steps) == 10


def test_id_prompt_reasoning_off_has_the_template_layout(model, inputs):
    pre, id_pre = model.preprocessor, _id_preprocessor(model)
    images = inputs[0].reshape(4, 64, 128, 3)
    history = pre.history_token_ids(inputs[1], model.network.hist_tokenizer)
    real, _, _ = pre.prompt(images, history, reasoning=False)
    built, _, _ = id_pre.prompt(images, history, reasoning=False)
    assert _specials(pre.ids, built[0].tolist()) == _specials(pre.ids, real[0].tolist())
    assert built[0, -1] == real[0, -1] == pre.ids.traj_future_start
