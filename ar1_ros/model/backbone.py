"""The VLM backbone: where its architecture comes from (never the network) and how it is built.

The official code fetches `vlm_name_or_path` from the Hugging Face Hub at every construction.
We resolve it locally, in this order:
1. a folder the user passes (`vlm_path=`),
2. `vlm_name_or_path` as a path (absolute, relative to the checkpoint, or to the working dir),
3. `<checkpoint>/base_vlm` (where our `save_pretrained` puts the backbone files),
4. the local Hugging Face cache (offline),
5. the architecture we ship for the released backbones (no tokenizer files).
"""
import copy
import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from transformers import (
    AutoModel,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
)
from transformers.utils.hub import cached_file

from ar1_ros.model.config import AR1Config, CheckpointError

SHIPPED = Path(__file__).resolve().parent / 'configs'
# Hub ids of the released backbone -> our shipped architecture folder (spec §1.2, §1.5).
RELEASED_BACKBONES = {
    'Qwen/Qwen3-VL-8B-Instruct': SHIPPED / 'qwen3_vl_8b',
    'nvidia/Cosmos-Reason2-8B': SHIPPED / 'qwen3_vl_8b',
}
BACKBONE_DIR = 'base_vlm'
_CLASSES = {
    'qwen3_vl': (Qwen3VLConfig, Qwen3VLForConditionalGeneration),
    'qwen2_5_vl': (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration),
}
_TOKENIZER_FILES = ('tokenizer.json', 'tokenizer_config.json')


@dataclasses.dataclass(frozen=True)
class BackboneSource:
    """A local folder with the backbone's config.json (+ tokenizer/preprocessor when present)."""

    folder: Path
    origin: str  # how it was found, for error messages and `ar1 doctor`

    @property
    def has_tokenizer(self) -> bool:
        """True if the folder holds the tokenizer files that prompts need."""
        return all((self.folder / name).is_file() for name in _TOKENIZER_FILES)

    def read_json(self, name: str) -> Dict[str, Any]:
        """Return one JSON file of the folder as a dict."""
        return json.loads((self.folder / name).read_text())


def resolve_backbone(name_or_path: str, checkpoint: Path,
                     vlm_path: Optional[Path] = None) -> BackboneSource:
    """Find the backbone files locally (see the module docstring for the order)."""
    candidates = []
    if vlm_path is not None:
        candidates.append((Path(vlm_path), 'vlm_path argument'))
    path = Path(name_or_path)
    candidates += [(path if path.is_absolute() else Path(checkpoint) / path, 'vlm_name_or_path'),
                   (Path.cwd() / path, 'vlm_name_or_path (working directory)'),
                   (Path(checkpoint) / BACKBONE_DIR, 'checkpoint base_vlm/')]
    for folder, origin in candidates:
        if (folder / 'config.json').is_file():
            return BackboneSource(folder.resolve(), origin)
    if vlm_path is not None:
        raise CheckpointError(f'vlm_path {vlm_path}: no config.json there')
    cached = _hf_cache_folder(name_or_path)
    if cached is not None:
        return BackboneSource(cached, 'Hugging Face cache')
    if name_or_path in RELEASED_BACKBONES:
        return BackboneSource(RELEASED_BACKBONES[name_or_path], 'shipped architecture')
    raise CheckpointError(
        f'backbone {name_or_path!r} not found locally: pass vlm_path= (a folder with its '
        f'config.json and tokenizer files) or put it in {Path(checkpoint) / BACKBONE_DIR}')


def _hf_cache_folder(repo_id: str) -> Optional[Path]:
    """Return the cached snapshot folder of a Hub repo id, without any network access."""
    if repo_id.count('/') != 1:
        return None
    try:
        found = cached_file(repo_id, 'config.json', local_files_only=True,
                            _raise_exceptions_for_missing_entries=False)
    except (OSError, ValueError):
        return None
    return Path(found).parent if found else None


def backbone_config(source: BackboneSource, ar1: AR1Config, dtype: torch.dtype):
    """Build the transformers config of the backbone with AR1's extended vocabulary."""
    raw = source.read_json('config.json')
    model_type = raw.get('model_type')
    if model_type != ar1.backbone_type:
        raise CheckpointError(
            f'backbone {source.folder} ({source.origin}) has model_type {model_type!r}, but the '
            f'checkpoint vlm_backend {ar1.raw.get("vlm_backend")!r} needs {ar1.backbone_type!r}')
    config_cls, _ = _CLASSES[model_type]
    config = config_cls.from_dict(raw)
    # The official code resizes the text vocabulary to the extended tokenizer (spec §1.5).
    config.text_config.vocab_size = int(ar1.vocab_size)
    # One dtype for every tower: the official `model_dtype` field is inert (golden README §9).
    config.dtype = config.text_config.dtype = config.vision_config.dtype = dtype
    _set_attention(config, 'sdpa')
    return config


def _set_attention(config, implementation: str) -> None:
    """Pin the attention backend of a config and its sub-configs (the expert needs 4D masks)."""
    for sub in (config, getattr(config, 'text_config', None),
                getattr(config, 'vision_config', None)):
        if sub is not None:
            sub._attn_implementation = implementation


def build_vlm(config) -> torch.nn.Module:
    """Instantiate the backbone (random weights; the caller loads the checkpoint tensors)."""
    _, model_cls = _CLASSES[config.model_type]
    return model_cls(config)


def build_expert(text_config, expert_cfg: Dict[str, Any]) -> torch.nn.Module:
    """Build the action expert: the backbone's text model with `expert_cfg`, no embeddings.

    It shares the backbone's per-layer KV cache, so layer count, KV heads, head_dim and RoPE must
    stay those of the backbone; a config that changes them is refused.
    """
    config = copy.deepcopy(text_config)
    for key, value in expert_cfg.items():
        if key in ('num_hidden_layers', 'num_key_value_heads') and value != getattr(config, key):
            raise CheckpointError(
                f'expert_cfg.{key}={value} differs from the backbone ({getattr(config, key)}); '
                'the expert attends to the backbone KV cache and needs the same value')
        setattr(config, key, value)
    if _head_dim(config) != _head_dim(text_config):
        raise CheckpointError(
            f'expert head_dim {_head_dim(config)} differs from the backbone head_dim '
            f'{_head_dim(text_config)}; set expert_cfg so both match')
    expert = AutoModel.from_config(config)
    del expert.embed_tokens
    return expert


def _head_dim(text_config) -> int:
    """Per-head width: the explicit `head_dim` (Qwen3) or hidden_size / heads (Qwen2.5)."""
    explicit = getattr(text_config, 'head_dim', None)
    return explicit or text_config.hidden_size // text_config.num_attention_heads
