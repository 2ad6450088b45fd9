"""Reasoning decoded on a static KV cache (optionally compiled) plans exactly as the default."""
import pytest
import torch

from ar1_ros.model import AR1Model
from ar1_ros.model.static_decode import StaticDecoder
from model.golden import BASE_VLM, CHECKPOINT, load


@pytest.fixture(scope='module')
def model():
    return AR1Model.from_pretrained(CHECKPOINT, dtype=torch.float32, vlm_path=BASE_VLM)


def _case(name):
    meta, t = load(f'cases/{name}')
    images = t['inputs/image_frames'].permute(0, 1, 3, 4, 2).contiguous()
    args = (images, t['inputs/ego_history_xyz'][0, 0], t['inputs/ego_history_rot'][0, 0])
    kwargs = {'num_samples': meta['num_traj_samples'], 'noise': t['diffusion/noise'],
              'greedy': True, 'max_reasoning_tokens': 32}
    return args, kwargs, t['outputs/pred_xyz'][0, 0]


def _same(plan, reference):
    assert plan.token_ids == reference.token_ids
    assert plan.reasoning == reference.reasoning
    torch.testing.assert_close(plan.trajectory_xyz, reference.trajectory_xyz, rtol=0, atol=1e-5)


@pytest.mark.parametrize('name', ['case_000', 'case_002'])
def test_static_cache_decoding_equals_the_dynamic_one(model, name):
    args, kwargs, official = _case(name)
    decoder = StaticDecoder(model.network.vlm, bucket=64, compile_steps=False)
    plan = model.predict(*args, decoder=decoder, **kwargs)
    _same(plan, model.predict(*args, **kwargs))
    torch.testing.assert_close(plan.trajectory_xyz, official, rtol=0, atol=1e-4)
    size = list(decoder._caches)[0][1]
    assert size % 64 == 0
    assert size >= decoder.length


def test_one_cache_per_shape_is_reused(model):
    args, kwargs, _ = _case('case_000')
    decoder = StaticDecoder(model.network.vlm, compile_steps=False)
    first = model.predict(*args, decoder=decoder, **kwargs)
    second = model.predict(*args, decoder=decoder, **kwargs)
    _same(second, first)
    assert len(decoder._caches) == 1
    with pytest.raises(ValueError, match='bucket'):
        StaticDecoder(model.network.vlm, bucket=0)


@pytest.mark.slow
def test_compiled_decoding_equals_eager(model):
    """torch.compile of the decode step (about 10 s to compile on this CPU)."""
    args, kwargs, _ = _case('case_002')
    decoder = StaticDecoder(model.network.vlm)
    compiled = model.predict(*args, decoder=decoder, **kwargs)
    again = model.predict(*args, decoder=decoder, **kwargs)
    _same(compiled, model.predict(*args, **kwargs))
    _same(again, compiled)
