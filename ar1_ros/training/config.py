"""`ar1 train` configuration: one YAML file per stage (config/train/*.yaml), no Hydra.

Sections map to frozen dataclasses; an unknown key, a wrong type or an impossible value is a
`TrainConfigError` naming the key. `--set section.key=value` overrides are applied to the YAML
before validation (values parsed as YAML: `--set optim.lr=1e-5`, `--set lora.enabled=true`).
"""
import dataclasses
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

import yaml

STAGES = ('vlm', 'expert', 'grpo')
PRECISIONS = ('auto', 'fp32', 'bf16')
STRATEGIES = ('ddp', 'fsdp', 'none')
DTYPES = ('float32', 'bfloat16', 'float16')


class TrainConfigError(ValueError):
    """A training configuration that cannot be used; the message names the key."""


@dataclasses.dataclass(frozen=True)
class ModelSection:
    """Where the model starts: a released AR1 checkpoint, or a base VLM (new expert)."""

    checkpoint: Optional[str] = None
    base_vlm: Optional[str] = None
    random_vlm: bool = False
    vlm_path: Optional[str] = None
    expert_cfg: Optional[Dict[str, Any]] = None
    overrides: Optional[Dict[str, Any]] = None  # new models: further config.json fields
    dtype: str = 'float32'
    device: str = 'auto'


@dataclasses.dataclass(frozen=True)
class DataSection:
    """Datasets written by `ar1 dataset build`; unlabelled samples train trajectories only."""

    train: Tuple[str, ...] = ()
    num_workers: int = 0
    use_labels: bool = True
    max_samples: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class OptimSection:
    """AdamW and the cosine-with-warmup schedule (official: min_lr 1e-6, grad clip 1.0)."""

    lr: float = 1e-5
    weight_decay: float = 0.0
    betas: Tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_clip: float = 1.0
    warmup_steps: int = 0
    min_lr: float = 1e-6
    lr_multipliers: Dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TrainSection:
    """Steps, batches, precision, engine strategy, checkpoints and logs."""

    out_dir: str = 'ar1_train'
    epochs: int = 1
    max_steps: Optional[int] = None
    batch_size: int = 1
    grad_accum: int = 1
    precision: str = 'auto'
    strategy: str = 'ddp'
    gradient_checkpointing: bool = False
    save_every: int = 500
    keep_last: int = 2
    log_every: int = 10
    seed: int = 42
    progress: bool = True


@dataclasses.dataclass(frozen=True)
class LoraSection:
    """Stage-1 LoRA adapters (peft) on the backbone's language model; merged when saving."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: Tuple[str, ...] = ('q_proj', 'k_proj', 'v_proj', 'o_proj')


@dataclasses.dataclass(frozen=True)
class LossSection:
    """Stage-1 CE weights; stage-2 attention pattern among the action tokens."""

    traj_weight: float = 1.0
    other_weight: float = 1.0
    action_attention: str = 'bidirectional'


@dataclasses.dataclass(frozen=True)
class GrpoSection:
    """GRPO post-training of the backbone (spec §9.3) with our consistency reward."""

    group_size: int = 8
    temperature: float = 0.6
    max_reasoning_tokens: int = 128
    eps_low: float = 0.2
    eps_high: float = 0.28
    kl_beta: float = 0.0
    token_mean: str = 'sequence'
    traj_l2_weight: float = 0.4
    comfort_weight: float = 0.1
    consistency_weight: float = 0.2


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The whole `ar1 train` configuration."""

    stage: str
    model: ModelSection
    data: DataSection
    optim: OptimSection = OptimSection()
    train: TrainSection = TrainSection()
    lora: LoraSection = LoraSection()
    loss: LossSection = LossSection()
    grpo: GrpoSection = GrpoSection()

    def to_dict(self) -> Dict[str, Any]:
        """Return the configuration as plain YAML-able values."""
        return _plain(dataclasses.asdict(self))


_SECTIONS = {'model': ModelSection, 'data': DataSection, 'optim': OptimSection,
             'train': TrainSection, 'lora': LoraSection, 'loss': LossSection,
             'grpo': GrpoSection}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def apply_overrides(raw: Dict[str, Any], overrides: Iterable[str]) -> Dict[str, Any]:
    """Apply `section.key=value` strings to a raw config dict (values parsed as YAML)."""
    for item in overrides:
        key, sep, text = item.partition('=')
        parts = key.strip().split('.')
        if not sep or not all(parts):
            raise TrainConfigError(f'--set {item!r}: expected section.key=value')
        node = raw
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise TrainConfigError(f'--set {item!r}: {part} is not a section')
        node[parts[-1]] = yaml.safe_load(text)
    return raw


def load_train_config(path: Path, overrides: Iterable[str] = ()) -> TrainConfig:
    """Read, override and validate a training YAML; relative paths resolve against its folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TrainConfigError(f'{path}: cannot read ({exc})') from exc
    if not isinstance(raw, dict):
        raise TrainConfigError(f'{path}: expected a mapping at the top level')
    return parse_train_config(apply_overrides(raw, overrides), base=path.parent)


def parse_train_config(raw: Mapping[str, Any], base: Path = Path('.')) -> TrainConfig:
    """Validate a raw config dict (see the dataclasses for keys and defaults)."""
    unknown = set(raw) - set(_SECTIONS) - {'stage'}
    if unknown:
        raise TrainConfigError(f'unknown top-level key(s): {sorted(unknown)}')
    sections = {name: _section(name, cls, {} if raw.get(name) is None else raw[name])
                for name, cls in _SECTIONS.items()}
    sections['model'] = _resolve_paths(sections['model'], base, ('checkpoint', 'base_vlm',
                                                                 'vlm_path'))
    data = sections['data']
    sections['data'] = dataclasses.replace(
        data, train=tuple(str(_resolve(base, p)) for p in data.train))
    sections['train'] = _resolve_paths(sections['train'], base, ('out_dir',))
    config = TrainConfig(stage=raw.get('stage'), **sections)
    check_config(config)
    return config


def _section(name: str, cls, values: Any):
    if not isinstance(values, dict):
        raise TrainConfigError(f'{name}: expected a mapping, got {type(values).__name__}')
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise TrainConfigError(f'{name}: unknown key(s) {sorted(unknown)}; '
                               f'known: {sorted(fields)}')
    defaults = cls()
    return cls(**{key: _convert(f'{name}.{key}', getattr(defaults, key), value)
                  for key, value in values.items()})


def _convert(key: str, default: Any, value: Any) -> Any:
    """Check value against the type of its default; PyYAML reads `1e-5` as a string."""
    if default is None or value is None:
        return value
    if isinstance(default, tuple) and isinstance(value, (list, tuple)):
        return tuple(value)
    if isinstance(default, float) and isinstance(value, (int, float, str)) \
            and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    elif isinstance(value, type(default)) and isinstance(value, bool) == isinstance(default,
                                                                                    bool):
        return value
    raise TrainConfigError(f'{key}: expected {type(default).__name__}, got {value!r}')


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _resolve_paths(section, base: Path, keys: Tuple[str, ...]):
    changes = {k: str(_resolve(base, getattr(section, k))) for k in keys
               if getattr(section, k) is not None}
    return dataclasses.replace(section, **changes)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise TrainConfigError(message)


def check_config(c: TrainConfig) -> None:
    """Raise TrainConfigError for values that cannot work together."""
    _require(c.stage in STAGES, f'stage must be one of {STAGES}, got {c.stage!r}')
    _require((c.model.checkpoint is None) != (c.model.base_vlm is None),
             'model: set exactly one of checkpoint (fine-tune a released AR1) or base_vlm')
    _require(c.model.dtype in DTYPES, f'model.dtype must be one of {DTYPES}')
    _require(bool(c.data.train), 'data.train: list at least one dataset folder')
    _require(c.train.precision in PRECISIONS, f'train.precision must be one of {PRECISIONS}')
    _require(c.train.strategy in STRATEGIES, f'train.strategy must be one of {STRATEGIES}')
    for key in ('epochs', 'batch_size', 'grad_accum', 'save_every', 'log_every', 'keep_last'):
        _require(getattr(c.train, key) >= 1, f'train.{key} must be >= 1')
    _require(c.train.max_steps is None or c.train.max_steps >= 1, 'train.max_steps must be >= 1')
    _require(c.optim.lr > 0 and c.optim.min_lr >= 0, 'optim.lr must be > 0, min_lr >= 0')
    _require(c.optim.warmup_steps >= 0, 'optim.warmup_steps must be >= 0')
    _require(not c.lora.enabled or c.stage in ('vlm', 'grpo'),
             'lora applies to the backbone: stages vlm and grpo only')
    _require(c.loss.action_attention in ('bidirectional', 'causal'),
             'loss.action_attention must be bidirectional or causal')
    _require(c.grpo.group_size >= 2, 'grpo.group_size must be >= 2 (advantages are relative)')
    _require(c.grpo.token_mean in ('sequence', 'token'), 'grpo.token_mean: sequence or token')
    _require(c.grpo.temperature > 0, 'grpo.temperature must be > 0')
