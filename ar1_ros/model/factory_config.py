"""The config.json of a NEW AR1 model built on a base VLM folder (Qwen3-VL or Qwen2.5-VL).

AR1 fields that do not depend on the backbone come from configs/ar1_defaults.json (release
values: action space, trajectory tokenizers, flow matching, in-projection 1024 wide with 4
layers, 4000 `<iK>` tokens, and the spec §2.3 worked expert: hidden 2048, MLP 8192). The rest
is derived from the base folder, as the official `ReasoningVLAConfig` does at construction:
`vlm_backend` from its model_type, the token ids from its tokenizer after the official
extension, the pixel limits from its patch size, and a check that the expert can share the
backbone's KV cache.
"""
import copy
import json
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch

from ar1_ros.model.backbone import BACKBONE_DIR, BackboneSource, backbone_config, build_expert
from ar1_ros.model.config import AR1Config, CheckpointError, parse_config
from ar1_ros.model.image_processing import ImageProcessor
from ar1_ros.model.tokens import TokenIds, extend_tokenizer, load_tokenizer

PathLike = Union[str, Path]
DEFAULTS = Path(__file__).resolve().parent / 'configs' / 'ar1_defaults.json'
# Backbone model_type -> official `vlm_backend` value.
BACKENDS = {'qwen3_vl': 'qwenvl3', 'qwen2_5_vl': 'qwenvl2_5'}
# Merged visual tokens per image that the release pixel limits allow: 163840 and 196608 pixels
# are 160 and 192 cells of 32 x 32 (Qwen3-VL patch 16 x merge 2), i.e. 1080x1920 -> 320x576
# (180 tokens). The same token budget is kept for a backbone with another patch size.
MIN_IMAGE_TOKENS, MAX_IMAGE_TOKENS = 160, 192
# Fields computed here: an override would silently disagree with the tokenizer or backbone.
DERIVED = frozenset({'traj_token_start_idx', 'traj_token_ids', 'vocab_size', 'vlm_backend'})


def new_ar1_config(base_vlm_dir: PathLike, expert_cfg: Optional[Mapping[str, Any]] = None,
                   overrides: Optional[Mapping[str, Any]] = None) -> AR1Config:
    """Return the AR1 config.json (official fields) for a new model on a base VLM folder.

    Args:
        base_vlm_dir: local folder with the backbone's config.json, tokenizer files and
            preprocessor_config.json (weights are not read here).
        expert_cfg: overrides on a copy of the backbone text config for the action expert
            (replaces the default one). Layer count, KV heads and head_dim must stay the
            backbone's; on a backbone without an explicit head_dim (Qwen2.5-VL) a missing
            num_attention_heads is set to hidden_size / head_dim.
        overrides: fields merged into the result, dicts merged recursively (e.g.
            {'action_in_proj_cfg': {'hidden_size': 32}, 'min_pixels': 4096}).
            `vlm_name_or_path` defaults to 'base_vlm', the folder AR1Model.save_pretrained
            copies the backbone files into, so a saved model loads back on its own.

    Returns:
        The validated AR1Config; raw['vocab_size'] = len(extended tokenizer).

    Raises:
        CheckpointError: unknown backbone type, tied embeddings, missing tokenizer, an
            override of a derived field, an invalid field, or an expert that cannot share
            the backbone's KV cache.
    """
    source = BackboneSource(Path(base_vlm_dir).resolve(), 'base VLM folder')
    raw = _initial_fields(source, expert_cfg, overrides or {})
    raw.update(_token_fields(source, raw))
    config = parse_config(raw, source=f'new AR1 config for {base_vlm_dir}')
    vlm_config = backbone_config(source, config, torch.float32)
    if getattr(vlm_config, 'tie_word_embeddings', False):
        # save_tensors cannot write shared tensors and from_pretrained does not re-tie them.
        raise CheckpointError(f'{base_vlm_dir}: tie_word_embeddings is not supported (AR1 '
                              'stores vlm.lm_head.weight apart from the input embeddings)')
    text_config = vlm_config.text_config
    config.raw['expert_cfg'] = complete_expert_cfg(config.raw['expert_cfg'], text_config)
    check_expert(text_config, config.raw['expert_cfg'])
    return config


def _initial_fields(source: BackboneSource, expert_cfg: Optional[Mapping[str, Any]],
                    overrides: Mapping[str, Any]) -> Dict[str, Any]:
    """Return defaults + backbone-derived fields + expert_cfg + overrides (no token ids)."""
    refused = sorted(DERIVED.union({'expert_cfg'}).intersection(overrides))
    if refused:
        raise CheckpointError(f'overrides may not set {refused}: they are derived from the base '
                              'VLM (pass expert_cfg= for the expert)')
    raw = json.loads(DEFAULTS.read_text())
    raw.update(vlm_backend=_backend(source), vlm_name_or_path=BACKBONE_DIR,
               **_pixel_limits(source))
    if expert_cfg is not None:
        raw['expert_cfg'] = dict(expert_cfg)
    return merge(raw, overrides)


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> Dict[str, Any]:
    """Return a deep copy of `base` with `overrides` applied; nested dicts merge key by key."""
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _backend(source: BackboneSource) -> str:
    """Return the official `vlm_backend` for the backbone's model_type."""
    if not (source.folder / 'config.json').is_file():
        raise CheckpointError(f'{source.folder}: no config.json (not a base VLM folder)')
    model_type = source.read_json('config.json').get('model_type')
    if model_type not in BACKENDS:
        raise CheckpointError(f'{source.folder}: backbone model_type {model_type!r} is not '
                              f'supported; known: {sorted(BACKENDS)}')
    return BACKENDS[model_type]


def _pixel_limits(source: BackboneSource) -> Dict[str, int]:
    """Return min/max_pixels giving the release's 160..192 merged tokens per image."""
    if not (source.folder / 'preprocessor_config.json').is_file():
        raise CheckpointError(f'{source.folder}: no preprocessor_config.json')
    cell = ImageProcessor.from_folder(source.folder).factor ** 2
    return {'min_pixels': MIN_IMAGE_TOKENS * cell, 'max_pixels': MAX_IMAGE_TOKENS * cell}


def _token_fields(source: BackboneSource, raw: Mapping[str, Any]) -> Dict[str, Any]:
    """Return traj_token_start_idx, traj_token_ids and vocab_size of the extended tokenizer."""
    if not source.has_tokenizer:
        raise CheckpointError(f'{source.folder}: no tokenizer files (tokenizer.json and '
                              'tokenizer_config.json); the AR1 token ids are computed from them')
    tokenizer = load_tokenizer(source.folder)
    extend_tokenizer(tokenizer, raw['traj_vocab_size'],
                     add_special_tokens=bool(raw.get('add_special_tokens', True)))
    ids = TokenIds.from_tokenizer(tokenizer, int(raw['traj_tokenizer_cfg']['num_bins']),
                                  raw['traj_vocab_size'])
    return {'traj_token_start_idx': ids.traj_token_start, 'traj_token_ids': ids.traj_token_ids(),
            'vocab_size': ids.vocab_size}


def complete_expert_cfg(expert_cfg: Mapping[str, Any], text_config) -> Dict[str, Any]:
    """Return expert_cfg with num_attention_heads set where the head width would change.

    Qwen2.5-VL attention has no head_dim field (width = hidden_size / heads), so a new
    hidden_size alone would change the width of the keys shared with the backbone cache.
    """
    cfg = dict(expert_cfg)
    if getattr(text_config, 'head_dim', None) or 'head_dim' in cfg:
        return cfg
    width = text_config.hidden_size // text_config.num_attention_heads
    hidden = cfg.get('hidden_size')
    if hidden is not None and 'num_attention_heads' not in cfg and hidden % width == 0:
        cfg['num_attention_heads'] = hidden // width
    return cfg


def check_expert(text_config, expert_cfg: Mapping[str, Any]) -> None:
    """Build the expert on the meta device (no memory) to run build_expert's checks.

    Raises:
        CheckpointError: layer count, KV heads or head_dim differ from the backbone, the
            heads are not a multiple of the KV heads, or transformers refuses the config.
    """
    try:
        with torch.device('meta'):
            expert = build_expert(text_config, expert_cfg)
    except ValueError as err:  # CheckpointError is one; transformers raises ValueError too
        raise CheckpointError(f'expert_cfg {dict(expert_cfg)}: {err}') from err
    heads, kv = expert.config.num_attention_heads, expert.config.num_key_value_heads
    if heads % kv:
        raise CheckpointError(f'expert_cfg: {heads} attention heads are not a multiple of the '
                              f'backbone KV heads ({kv}) that the expert shares')
