"""Loading the official checkpoint format: round trips and every refusal."""
import json
from pathlib import Path
import shutil

import pytest
from safetensors.torch import load_file, save_file
import torch

from ar1_ros.model import AR1Model, CheckpointError
from ar1_ros.model.checkpoint import INDEX
from model.golden import BASE_VLM, CHECKPOINT


@pytest.fixture(scope='module')
def model():
    return AR1Model.from_pretrained(CHECKPOINT, vlm_path=BASE_VLM)


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    """A writable copy of the golden checkpoint with its backbone in base_vlm/."""
    folder = tmp_path / 'ckpt'
    shutil.copytree(CHECKPOINT, folder)
    shutil.copytree(BASE_VLM, folder / 'base_vlm')
    return folder


def _edit_config(folder: Path, edit) -> None:
    raw = json.loads((folder / 'config.json').read_text())
    edit(raw)
    (folder / 'config.json').write_text(json.dumps(raw))


def _edit_tensors(folder: Path, edit) -> None:
    tensors = load_file(str(folder / 'model.safetensors'))
    edit(tensors)
    save_file(tensors, str(folder / 'model.safetensors'), metadata={'format': 'pt'})


def _assert_same(a: AR1Model, b: AR1Model) -> None:
    sa, sb = a.network.state_dict(), b.network.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert sa[name].dtype == sb[name].dtype, name
        assert torch.equal(sa[name], sb[name]), name
    assert a.config.raw == b.config.raw


def test_loads_every_tensor_exactly(model):
    stored = load_file(str(CHECKPOINT / 'model.safetensors'))
    state = model.network.state_dict()
    assert state.keys() == stored.keys()
    assert all(torch.equal(state[k], stored[k]) for k in stored)
    assert not any(p.is_meta for p in model.network.parameters())


@pytest.mark.parametrize('shard_bytes', [5 * 2**30, 1_000_000])
def test_save_load_round_trip_is_exact(model, tmp_path, shard_bytes):
    model.save_pretrained(tmp_path / 'out', max_shard_bytes=shard_bytes)
    assert (tmp_path / 'out' / INDEX).is_file() == (shard_bytes < 5 * 2**30)
    reloaded = AR1Model.from_pretrained(tmp_path / 'out')  # backbone found in out/base_vlm
    _assert_same(model, reloaded)
    assert json.loads((tmp_path / 'out' / 'config.json').read_text()) == json.loads(
        (CHECKPOINT / 'config.json').read_text())


def test_missing_optional_buffers_are_rebuilt_from_config(model, ckpt):
    _edit_tensors(ckpt, lambda t: [t.pop(k) for k in list(t) if k.startswith('action_space.')
                                   or k.endswith('.freqs')])
    _assert_same(model, AR1Model.from_pretrained(ckpt))


@pytest.mark.parametrize(('edit', 'message'), [
    (lambda c: c['diffusion_cfg'].update(_target_='os.system'), "'os.system' is not an allowed"),
    (lambda c: c['action_out_proj_cfg'].update(_target_='torch.nn.Bilinear'),
     'action_out_proj_cfg._target_'),
    (lambda c: c['traj_tokenizer_cfg']['action_space_cfg'].update(_target_='x.Y'),
     'traj_tokenizer_cfg'),
    (lambda c: c['action_space_cfg'].update(jerk_limit=3.0), "unknown field 'jerk_limit'"),
    (lambda c: c['action_in_proj_cfg'].update(out_dim=7), 'set by the model'),
    (lambda c: c.update(model_type='alpamayo_reasoning_vla'), 'model_type'),
    (lambda c: c.update(vlm_backend='llava'), "unknown vlm_backend 'llava'"),
    (lambda c: c.pop('hist_traj_tokenizer_cfg'), 'hist_traj_tokenizer_cfg is missing'),
    (lambda c: c['expert_cfg'].update(num_hidden_layers=3), 'expert_cfg.num_hidden_layers'),
    (lambda c: c.update(vocab_size=4611), 'shape mismatch'),
])
def test_bad_config_is_refused(ckpt, edit, message):
    _edit_config(ckpt, edit)
    with pytest.raises(CheckpointError, match=message):
        AR1Model.from_pretrained(ckpt)


@pytest.mark.parametrize(('edit', 'message'), [
    (lambda t: t.pop('expert.layers.0.mlp.up_proj.weight'), r'1 missing tensor.*up_proj'),
    (lambda t: t.update({'expert.embed_tokens.weight': torch.zeros(4610, 48)}),
     r'1 unexpected tensor.*expert.embed_tokens'),
    (lambda t: t.update({'action_out_proj.bias': torch.zeros(3)}),
     r'action_out_proj.bias: checkpoint \(3,\) vs model \(2,\)'),
])
def test_bad_tensors_are_refused(ckpt, edit, message):
    _edit_tensors(ckpt, edit)
    with pytest.raises(CheckpointError, match=message):
        AR1Model.from_pretrained(ckpt)


def test_pickle_only_checkpoint_is_refused(ckpt):
    (ckpt / 'model.safetensors').unlink()
    (ckpt / 'pytorch_model.bin').write_bytes(b'not loaded')
    with pytest.raises(CheckpointError, match='pickle'):
        AR1Model.from_pretrained(ckpt)


def test_missing_shard_is_refused(model, tmp_path):
    model.save_pretrained(tmp_path / 'out', max_shard_bytes=1_000_000)
    next((tmp_path / 'out').glob('model-00002-of-*.safetensors')).unlink()
    with pytest.raises(CheckpointError, match='shard files missing'):
        AR1Model.from_pretrained(tmp_path / 'out')


@pytest.mark.parametrize(('content', 'message'),
                         [(None, 'no config.json'), ('{', 'not valid JSON')])
def test_unreadable_config_is_refused(ckpt, content, message):
    if content is None:
        (ckpt / 'config.json').unlink()
    else:
        (ckpt / 'config.json').write_text(content)
    with pytest.raises(CheckpointError, match=message):
        AR1Model.from_pretrained(ckpt)


def test_backbone_not_found_locally_is_refused(ckpt):
    shutil.rmtree(ckpt / 'base_vlm')
    _edit_config(ckpt, lambda c: c.update(vlm_name_or_path='someone/unknown-vlm'))
    with pytest.raises(CheckpointError, match='not found locally'):
        AR1Model.from_pretrained(ckpt)


def test_backbone_of_the_wrong_family_is_refused(ckpt):
    _edit_config(ckpt, lambda c: c.update(vlm_backend='qwenvl2_5'))
    with pytest.raises(CheckpointError, match="needs 'qwen2_5_vl'"):
        AR1Model.from_pretrained(ckpt)


def test_tokenizer_ids_must_match_the_config(ckpt):
    _edit_config(ckpt, lambda c: c.update(traj_token_start_idx=583))
    with pytest.raises((CheckpointError, ValueError), match='traj_token_start_idx'):
        AR1Model.from_pretrained(ckpt)
