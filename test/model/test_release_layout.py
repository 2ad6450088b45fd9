"""The released configuration, built on the meta device: sizes and tensor names (spec §1.5, §2).

No weights exist here, so the backbone comes from the architecture we ship for
`Qwen/Qwen3-VL-8B-Instruct`, and the AR1 fields from the spec's release values. The expert's
exact width is only in NVIDIA's config.json; we use the spec's worked example (H 2048, I 8192,
2.57 B parameters) and check the counts against the formula.
"""
import copy
import json

import pytest
import torch

from ar1_ros.model.api import build_network
from ar1_ros.model.backbone import resolve_backbone
from ar1_ros.model.config import parse_config
from model.golden import CHECKPOINT

RELEASE_VOCAB = 155_697  # 151,669 Qwen tokens + 4,000 <iK> + 28 AR1 special tokens (spec §3.4)


@pytest.fixture(scope='module')
def release():
    raw = json.loads((CHECKPOINT / 'config.json').read_text())
    raw = copy.deepcopy(raw)
    raw.update(vlm_name_or_path='Qwen/Qwen3-VL-8B-Instruct', vocab_size=RELEASE_VOCAB,
               traj_token_start_idx=151_669, min_pixels=163_840, max_pixels=196_608,
               expert_cfg={'hidden_size': 2048, 'intermediate_size': 8192})
    raw['action_in_proj_cfg'].update(hidden_size=1024, num_enc_layers=4)
    config = parse_config(raw)
    source = resolve_backbone(config.vlm_name_or_path, CHECKPOINT)
    assert source.origin == 'shipped architecture'
    assert not source.has_tokenizer
    with torch.device('meta'):
        return build_network(config, source, torch.bfloat16)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_backbone_size_matches_the_release(release):
    assert _count(release.vlm) == 8_797_933_808  # spec §1.5, vocab 155,697
    assert _count(release.vlm.model.visual) == 576_388_336


def test_expert_size_matches_the_formula(release):
    hidden, inter, layers, q_width, kv_width = 2048, 8192, 36, 32 * 128, 8 * 128
    per_layer = (hidden * q_width + 2 * hidden * kv_width + q_width * hidden + 2 * 128
                 + 3 * hidden * inter + 2 * hidden)
    assert _count(release.expert) == layers * per_layer + hidden
    assert round(_count(release.expert) / 1e9, 2) == 2.57  # spec §2.3 worked example


def test_tensor_names_and_shapes_follow_the_official_layout(release):
    shapes = {k: tuple(v.shape) for k, v in release.state_dict().items()}
    assert shapes['vlm.lm_head.weight'] == (RELEASE_VOCAB, 4096)
    assert shapes['vlm.model.language_model.embed_tokens.weight'] == (RELEASE_VOCAB, 4096)
    assert shapes['vlm.model.visual.patch_embed.proj.weight'] == (1152, 3, 2, 16, 16)
    assert shapes['vlm.model.visual.merger.linear_fc1.weight'] == (4608, 4608)
    assert shapes['vlm.model.visual.deepstack_merger_list.2.norm.weight'] == (4608,)
    assert shapes['vlm.model.language_model.layers.35.self_attn.k_proj.weight'] == (1024, 4096)
    assert shapes['expert.layers.35.self_attn.q_proj.weight'] == (4096, 2048)
    assert shapes['expert.layers.0.self_attn.k_proj.weight'] == (1024, 2048)
    assert shapes['expert.layers.0.self_attn.o_proj.weight'] == (2048, 4096)
    assert shapes['expert.layers.0.mlp.gate_proj.weight'] == (8192, 2048)
    assert shapes['action_in_proj.encoder.trunk.0.weight'] == (1024, 60)
    assert shapes['action_in_proj.encoder.trunk.12.weight'] == (2048, 1024)
    assert shapes['action_in_proj.encoder.trunk.11.weight'] == (1024,)
    assert shapes['action_in_proj.norm.weight'] == (2048,)
    assert shapes['action_out_proj.weight'] == (2, 2048)
    assert shapes['action_space.accel_std'] == ()
    assert not any(k.startswith('expert.embed_tokens') for k in shapes)
    assert sum(k.startswith('expert.layers.') and k.endswith('input_layernorm.weight')
               for k in shapes) == 36
    assert len([k for k in shapes if k.endswith('.freqs')]) == 3
