"""The Qwen2.5-VL backbone (Cosmos-Reason1, the paper's) selected with vlm_backend 'qwenvl2_5'.

No official Qwen2.5-VL AR1 exists, so this builds a tiny random one in the official checkpoint
format, checks our prompt positions and prefill against transformers' own Qwen2.5-VL code, and
runs predict() and a save/load round trip.
"""
import json
from pathlib import Path
import shutil

import pytest
import torch
from transformers import Qwen2_5_VLForConditionalGeneration

from ar1_ros.model import AR1Model
from ar1_ros.model.backbone import BackboneSource, backbone_config
from ar1_ros.model.checkpoint import save_tensors
from ar1_ros.model.config import parse_config
from ar1_ros.model.generation import prefill
from ar1_ros.model.network import AR1Network
from ar1_ros.model.rope import mrope_positions
from model.golden import BASE_VLM, CHECKPOINT

QWEN25 = {
    'model_type': 'qwen2_5_vl', 'image_token_id': 568, 'video_token_id': 569,
    'vision_start_token_id': 565, 'vision_end_token_id': 566, 'tie_word_embeddings': False,
    'text_config': {
        'model_type': 'qwen2_5_vl_text', 'hidden_size': 64, 'intermediate_size': 192,
        'num_hidden_layers': 2, 'num_attention_heads': 4, 'num_key_value_heads': 2,
        'rms_norm_eps': 1e-6, 'rope_theta': 1e6, 'vocab_size': 640, 'hidden_act': 'silu',
        'rope_scaling': {'type': 'mrope', 'mrope_section': [2, 3, 3]},
        'max_position_embeddings': 32768, 'bos_token_id': 556, 'eos_token_id': 558},
    'vision_config': {
        'depth': 2, 'hidden_size': 32, 'intermediate_size': 64, 'num_heads': 2,
        'out_hidden_size': 64, 'patch_size': 14, 'spatial_merge_size': 2,
        'temporal_patch_size': 2, 'window_size': 56, 'fullatt_block_indexes': [1],
        'hidden_act': 'silu'},
}
PREPROCESSOR = {'patch_size': 14, 'temporal_patch_size': 2, 'merge_size': 2,
                'image_mean': [0.48145466, 0.4578275, 0.40821073],
                'image_std': [0.26862954, 0.26130258, 0.27577711]}


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp('qwen25')
    shutil.copytree(BASE_VLM, folder / 'base_vlm')
    (folder / 'base_vlm' / 'config.json').write_text(json.dumps(QWEN25))
    (folder / 'base_vlm' / 'preprocessor_config.json').write_text(json.dumps(PREPROCESSOR))
    raw = json.loads((CHECKPOINT / 'config.json').read_text())
    # head_dim 16 = 64 / 4 heads in the backbone; the expert keeps it with 2 heads of width 32.
    raw.update(vlm_backend='qwenvl2_5', expert_cfg={
        'hidden_size': 32, 'intermediate_size': 96, 'num_attention_heads': 2})
    config = parse_config(raw)
    torch.manual_seed(0)
    source = BackboneSource(folder / 'base_vlm', 'test')
    network = AR1Network(config, backbone_config(source, config, torch.float32))
    (folder / 'config.json').write_text(config.to_json())
    save_tensors(network, folder)
    return folder


@pytest.fixture(scope='module')
def model(checkpoint) -> AR1Model:
    return AR1Model.from_pretrained(checkpoint)


def _inputs():
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (4, 4, 64, 128, 3), generator=gen, dtype=torch.uint8)
    xyz = torch.zeros(16, 3)
    xyz[:, 0] = torch.arange(-15, 1, dtype=torch.float32) * 0.5
    return images, xyz, torch.eye(3).expand(16, 3, 3)


def test_the_backbone_is_qwen25(model):
    assert isinstance(model.network.vlm, Qwen2_5_VLForConditionalGeneration)
    assert type(model.network.expert).__name__ == 'Qwen2_5_VLTextModel'
    assert not hasattr(model.network.expert, 'embed_tokens')


def test_positions_and_prefill_match_transformers(model):
    pre, vlm = model.preprocessor, model.network.vlm
    images, xyz, _ = _inputs()
    hist = pre.history_token_ids(xyz, model.network.hist_tokenizer)
    ids, pixels, grid = pre.prompt(images.reshape(-1, 64, 128, 3), hist)
    assert grid[0].tolist() == [1, 4, 10]  # 64x128 resized to 56x140 (factor 28), in patches
    ours, delta = mrope_positions(ids, grid, vlm.config.image_token_id, 2)
    types = (ids == vlm.config.image_token_id).int()
    theirs, their_delta = vlm.model.get_rope_index(ids, types, image_grid_thw=grid)
    assert torch.equal(ours, theirs)
    assert delta == int(their_delta)
    with torch.inference_mode():
        logits, _, _ = prefill(vlm, ids, pixels, grid)
        reference = vlm(input_ids=ids, pixel_values=pixels, image_grid_thw=grid,
                        mm_token_type_ids=types).logits[:, -1]
    torch.testing.assert_close(logits, reference, rtol=0, atol=1e-5)


def test_predict_runs_and_is_deterministic(model):
    images, xyz, rot = _inputs()
    noise = torch.randn(2, 64, 2, generator=torch.Generator().manual_seed(2))
    first = model.predict(images, xyz, rot, num_samples=2, noise=noise, greedy=True,
                          max_reasoning_tokens=8)
    second = model.predict(images, xyz, rot, num_samples=2, noise=noise, greedy=True,
                           max_reasoning_tokens=8)
    assert first.trajectory_xyz.shape == (2, 64, 3)
    assert torch.isfinite(first.trajectory_xyz).all()
    assert torch.equal(first.trajectory_xyz, second.trajectory_xyz)
    assert first.token_ids == second.token_ids


def test_save_load_round_trip(model, tmp_path):
    model.save_pretrained(tmp_path / 'out')
    again = AR1Model.from_pretrained(tmp_path / 'out')
    state, other = model.network.state_dict(), again.network.state_dict()
    assert state.keys() == other.keys()
    assert all(torch.equal(state[k], other[k]) for k in state)
