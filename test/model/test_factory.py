"""A new AR1 model built from a base VLM folder: config, weights, seeds, official round trip.

The base VLMs are tiny random Qwen3-VL / Qwen2.5-VL models saved by transformers in tmp
folders, with the tokenizer and processor files of test/fixtures/ar1_tiny/base_vlm.
"""
import json
from pathlib import Path
import shutil

import pytest
from safetensors.torch import load_file, save_file
import torch
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
)

from ar1_ros.model import AR1Model, CheckpointError
from ar1_ros.model.factory import new_ar1_config, new_ar1_model
from ar1_ros.model.report import check_checkpoint
from model.golden import BASE_VLM, CHECKPOINT
from model.test_qwen25_backbone import PREPROCESSOR as QWEN25_PREPROCESSOR
from model.test_qwen25_backbone import QWEN25

OFFICIAL = json.loads((CHECKPOINT / 'config.json').read_text())
# The official tiny checkpoint's sizes: what differs from the release defaults.
TINY = {'min_pixels': 4096, 'max_pixels': 16384,
        'action_in_proj_cfg': {'hidden_size': 32, 'num_enc_layers': 2}}
TINY_EXPERT = OFFICIAL['expert_cfg']
BASE_TOKENS, VOCAB = 582, 4610  # base tokenizer length, extended (fixture README §2)
EMBEDDINGS = ('model.language_model.embed_tokens.weight', 'lm_head.weight')


def _base_folder(folder: Path, model_cls, config) -> dict:
    """Save a random base VLM with the fixture tokenizer files; return its state dict."""
    shutil.copytree(BASE_VLM, folder)
    torch.manual_seed(0)
    base = model_cls(config)
    base.save_pretrained(folder)
    return {k: v.detach().clone() for k, v in base.state_dict().items()}


@pytest.fixture(scope='module')
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp('qwen3') / 'base'
    raw = json.loads((BASE_VLM / 'config.json').read_text())
    state = _base_folder(folder, Qwen3VLForConditionalGeneration, Qwen3VLConfig.from_dict(raw))
    return folder, state


@pytest.fixture(scope='module')
def model(base) -> AR1Model:
    return new_ar1_model(base[0], expert_cfg=TINY_EXPERT, overrides=TINY)


@pytest.fixture(scope='module')
def saved(model, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp('saved') / 'ar1'
    model.save_pretrained(folder)
    return folder


def _inputs():
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (4, 4, 64, 128, 3), generator=gen, dtype=torch.uint8)
    xyz = torch.zeros(16, 3)
    xyz[:, 0] = torch.arange(-15, 1, dtype=torch.float32) * 0.5
    noise = torch.randn(2, 64, 2, generator=gen)
    return images, xyz, torch.eye(3).expand(16, 3, 3), noise


def _predict(model: AR1Model):
    images, xyz, rot, noise = _inputs()
    return model.predict(images, xyz, rot, num_samples=2, noise=noise, greedy=True,
                         max_reasoning_tokens=6)


def _new_modules(model: AR1Model) -> dict:
    """Parameters the factory initialises: expert, projections, new token rows."""
    state = model.network.state_dict()
    out = {k: v for k, v in state.items()
           if k.split('.')[0] in ('expert', 'action_in_proj', 'action_out_proj')}
    out.update({k: state[f'vlm.{k}'][BASE_TOKENS:] for k in EMBEDDINGS})
    return out


def test_config_is_the_official_tiny_config(base, model):
    config = new_ar1_config(base[0], TINY_EXPERT, TINY)
    differ = {k for k in set(config.raw) | set(OFFICIAL) if config.raw.get(k) != OFFICIAL.get(k)}
    # Same tokenizer -> same ids; same settings -> every official field equal.
    assert differ == {'dtype', 'transformers_version'}
    assert 'dtype' not in config.raw
    assert model.config.raw['dtype'] == 'float32'
    assert model.config.raw['vlm_name_or_path'] == 'base_vlm'


def test_release_defaults(base):
    raw = new_ar1_config(base[0]).raw
    assert (raw['min_pixels'], raw['max_pixels']) == (163840, 196608)  # 160/192 cells of 32²
    assert raw['expert_cfg'] == {'hidden_size': 2048, 'intermediate_size': 8192}
    in_proj = raw['action_in_proj_cfg']
    assert (in_proj['hidden_size'], in_proj['num_enc_layers']) == (1024, 4)
    assert raw['traj_token_ids'] == OFFICIAL['traj_token_ids']
    assert (raw['traj_token_start_idx'], raw['vocab_size']) == (BASE_TOKENS, VOCAB)
    assert raw['action_space_cfg'] == OFFICIAL['action_space_cfg']


def test_vlm_weights_are_the_base_weights(base, model):
    state = model.network.state_dict()
    base_state = base[1]
    assert {f'vlm.{k}' for k in base_state} == {k for k in state if k.startswith('vlm.')}
    for key, value in base_state.items():
        ours = state[f'vlm.{key}']
        if key in EMBEDDINGS:
            assert ours.shape == (VOCAB, 64)
            assert torch.equal(ours[:BASE_TOKENS], value[:BASE_TOKENS])
            # Every added row, the base's unused rows 582..639 included: mean resizing.
            mean = value[:BASE_TOKENS].mean(0).expand(VOCAB - BASE_TOKENS, -1)
            torch.testing.assert_close(ours[BASE_TOKENS:], mean, rtol=0, atol=1e-5)
            assert not torch.equal(ours[BASE_TOKENS:640], value[BASE_TOKENS:640])
        else:
            assert torch.equal(ours, value), key
    vlm = model.network.vlm
    assert vlm.config.text_config._attn_implementation == 'sdpa'
    assert vlm.config.text_config.vocab_size == VOCAB


def test_new_expert_uses_transformers_init(model):
    expert = model.network.expert
    assert expert.config.hidden_size == 48
    assert expert.config.num_hidden_layers == 2
    assert torch.equal(expert.layers[0].input_layernorm.weight, torch.ones(48))
    std = float(expert.layers[0].mlp.gate_proj.weight.std())
    assert 0.015 < std < 0.025  # N(0, initializer_range=0.02)
    assert float(model.network.action_out_proj.weight.abs().max()) <= 48 ** -0.5  # torch init


def test_save_and_reload_predict_identically(model, saved):
    again = AR1Model.from_pretrained(saved)
    assert again.backbone.folder == (saved / 'base_vlm').resolve()  # self-contained
    first, second = _predict(model), _predict(again)
    assert torch.isfinite(first.trajectory_xyz).all()
    assert first.token_ids == second.token_ids
    assert torch.equal(first.trajectory_xyz, second.trajectory_xyz)
    assert torch.equal(first.actions, second.actions)


def test_check_model_accepts_the_saved_folder(model, saved):
    report = check_checkpoint(saved)
    assert report.has_tokenizer
    assert report.tensor_count == len(model.network.state_dict())
    assert report.expert['hidden_size'] == 48


def test_bfloat16_matches_its_reload(base, tmp_path):
    model = new_ar1_model(base[0], dtype=torch.bfloat16, expert_cfg=TINY_EXPERT, overrides=TINY)
    model.save_pretrained(tmp_path)
    again = AR1Model.from_pretrained(tmp_path, dtype=torch.bfloat16)
    ours, theirs = dict(model.network.named_buffers()), dict(again.network.named_buffers())
    assert ours.keys() == theirs.keys()
    for key, value in ours.items():  # non-persistent RoPE buffers included
        assert value.dtype == theirs[key].dtype, key
        assert torch.equal(value, theirs[key]), key
    state = model.network.state_dict()
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.bfloat16}
    assert json.loads((tmp_path / 'config.json').read_text())['dtype'] == 'bfloat16'


def test_seed_fixes_every_new_weight(base):
    rng = torch.get_rng_state()
    first, second, other = (
        _new_modules(new_ar1_model(base[0], expert_cfg=TINY_EXPERT, overrides=TINY, seed=s))
        for s in (1, 1, 2))
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's RNG is left alone
    assert all(torch.equal(first[k], second[k]) for k in first)
    changed = {k for k in first if not torch.equal(first[k], other[k])}
    assert 'expert.layers.0.self_attn.q_proj.weight' in changed
    assert 'action_out_proj.weight' in changed
    assert 'lm_head.weight' in changed


@pytest.mark.parametrize('cfg', [
    {**TINY_EXPERT, 'num_hidden_layers': 3},
    {**TINY_EXPERT, 'num_key_value_heads': 1},
    {**TINY_EXPERT, 'head_dim': 16},
    {**TINY_EXPERT, 'num_attention_heads': 3},  # not a multiple of the 2 KV heads
])
def test_expert_that_cannot_share_the_cache_is_refused(base, cfg):
    with pytest.raises(CheckpointError, match='expert'):
        new_ar1_model(base[0], expert_cfg=cfg, overrides=TINY)


def test_folder_without_weights(tmp_path):
    with pytest.raises(CheckpointError, match='random_vlm=True'):
        new_ar1_model(BASE_VLM, expert_cfg=TINY_EXPERT, overrides=TINY)
    shutil.copytree(BASE_VLM, tmp_path / 'pickle')
    (tmp_path / 'pickle' / 'pytorch_model.bin').write_bytes(b'not loaded')
    with pytest.raises(CheckpointError, match='pickle'):
        new_ar1_model(tmp_path / 'pickle', expert_cfg=TINY_EXPERT, overrides=TINY)
    model = new_ar1_model(BASE_VLM, expert_cfg=TINY_EXPERT, overrides=TINY, random_vlm=True)
    assert model.network.vlm.lm_head.weight.shape == (VOCAB, 64)
    assert torch.isfinite(_predict(model).trajectory_xyz).all()


def test_incomplete_base_weights_are_refused(base, tmp_path):
    shutil.copytree(base[0], tmp_path / 'cut')
    tensors = load_file(str(tmp_path / 'cut' / 'model.safetensors'))
    del tensors['lm_head.weight']
    save_file(tensors, str(tmp_path / 'cut' / 'model.safetensors'), metadata={'format': 'pt'})
    with pytest.raises(CheckpointError, match='lm_head'):
        new_ar1_model(tmp_path / 'cut', expert_cfg=TINY_EXPERT, overrides=TINY)


@pytest.mark.parametrize(('overrides', 'match'), [
    ({'vocab_size': 5000}, 'derived'),
    ({'expert_cfg': {}}, 'expert_cfg='),
    ({'diffusion_cfg': {'_target_': 'os.system'}}, 'not an allowed target'),
])
def test_bad_overrides_are_refused(base, overrides, match):
    with pytest.raises(CheckpointError, match=match):
        new_ar1_config(base[0], TINY_EXPERT, overrides)


def test_sharded_base_loads_like_one_file(base, model, tmp_path):
    shutil.copytree(BASE_VLM, tmp_path / 'sharded')
    torch.manual_seed(0)
    raw = json.loads((BASE_VLM / 'config.json').read_text())
    Qwen3VLForConditionalGeneration(Qwen3VLConfig.from_dict(raw)).save_pretrained(
        tmp_path / 'sharded', max_shard_size='200KB')
    assert (tmp_path / 'sharded' / 'model.safetensors.index.json').is_file()
    sharded = new_ar1_model(tmp_path / 'sharded', expert_cfg=TINY_EXPERT, overrides=TINY)
    ours, theirs = model.network.state_dict(), sharded.network.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_tied_embeddings_are_refused(tmp_path):
    shutil.copytree(BASE_VLM, tmp_path / 'tied')
    raw = {**json.loads((BASE_VLM / 'config.json').read_text()), 'tie_word_embeddings': True}
    (tmp_path / 'tied' / 'config.json').write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match='tie_word_embeddings'):
        new_ar1_model(tmp_path / 'tied', expert_cfg=TINY_EXPERT, overrides=TINY, random_vlm=True)


def test_unknown_backbone_type_is_refused(tmp_path):
    shutil.copytree(BASE_VLM, tmp_path / 'llava')
    (tmp_path / 'llava' / 'config.json').write_text(json.dumps({'model_type': 'llava'}))
    with pytest.raises(CheckpointError, match="'llava' is not supported"):
        new_ar1_config(tmp_path / 'llava')


def test_qwen25_base(tmp_path):
    folder = tmp_path / 'base'
    state = _base_folder(folder, Qwen2_5_VLForConditionalGeneration,
                         Qwen2_5_VLConfig.from_dict(QWEN25))
    (folder / 'preprocessor_config.json').write_text(json.dumps(QWEN25_PREPROCESSOR))
    # No num_attention_heads: completed to 32 / head width 16 = 2 heads.
    model = new_ar1_model(folder, expert_cfg={'hidden_size': 32, 'intermediate_size': 96},
                          overrides={'min_pixels': 4096, 'max_pixels': 16384})
    assert model.config.raw['vlm_backend'] == 'qwenvl2_5'
    assert model.config.raw['expert_cfg']['num_attention_heads'] == 2
    assert model.config.raw['max_pixels'] == 16384
    assert isinstance(model.network.vlm, Qwen2_5_VLForConditionalGeneration)
    ours = model.network.state_dict()
    key = 'model.language_model.layers.1.mlp.down_proj.weight'
    assert torch.equal(ours[f'vlm.{key}'], state[key])
    model.save_pretrained(tmp_path / 'ar1')
    first, second = _predict(model), _predict(AR1Model.from_pretrained(tmp_path / 'ar1'))
    assert first.token_ids == second.token_ids
    assert torch.equal(first.trajectory_xyz, second.trajectory_xyz)
