"""The official AR1 `config.json`: parsing, validation and the `_target_` allow-list.

The release stores its sub-module settings as Hydra dicts (`_target_: alpamayo_r1....`). We never
import or instantiate arbitrary targets: each config slot maps a fixed set of known target strings
to our own class, and anything else is refused with the slot and the string named.
"""
import copy
import dataclasses
import inspect
import json
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

import torch

from ar1_ros.model.action_in_proj import PerWaypointActionInProjV2
from ar1_ros.model.action_space import UnicycleAccelCurvatureActionSpace
from ar1_ros.model.flow_matching import FlowMatching
from ar1_ros.model.trajectory_tokens import DeltaTrajectoryTokenizer, DiscreteTrajectoryTokenizer

MODEL_TYPE = 'alpamayo_r1'
_ACTION_SPACE = ('alpamayo_r1.action_space.unicycle_accel_curvature.'
                 'UnicycleAccelCurvatureActionSpace')

# slot -> {official `_target_` string: our class}. The only targets a checkpoint may name.
TARGETS: Dict[str, Dict[str, Callable]] = {
    'action_space_cfg': {_ACTION_SPACE: UnicycleAccelCurvatureActionSpace},
    'diffusion_cfg': {'alpamayo_r1.diffusion.flow_matching.FlowMatching': FlowMatching},
    'action_in_proj_cfg': {
        'alpamayo_r1.models.action_in_proj.PerWaypointActionInProjV2': PerWaypointActionInProjV2},
    'action_out_proj_cfg': {'torch.nn.Linear': torch.nn.Linear},
    'traj_tokenizer_cfg': {
        'alpamayo_r1.action_space.discrete_action_space.DiscreteTrajectoryTokenizer':
            DiscreteTrajectoryTokenizer},
    'hist_traj_tokenizer_cfg': {
        'alpamayo_r1.models.delta_tokenizer.DeltaTrajectoryTokenizer': DeltaTrajectoryTokenizer},
}
# Hydra control keys that carry no constructor argument.
_HYDRA_KEYS = frozenset({'_target_', '_recursive_', '_convert_'})
# Arguments the official model injects itself (from the expert width and the action space).
_INJECTED = {
    'diffusion_cfg': frozenset({'x_dims'}),
    'action_in_proj_cfg': frozenset({'in_dims', 'out_dim'}),
    'action_out_proj_cfg': frozenset({'in_features', 'out_features'}),
}
_BACKENDS = {'qwenvl3': 'qwen3_vl', 'qwenvl2_5': 'qwen2_5_vl'}


class CheckpointError(ValueError):
    """A checkpoint (config, tensors or tokenizer) that we refuse to load, with the reason."""


@dataclasses.dataclass
class AR1Config:
    """The parsed AR1 `config.json`; `raw` is kept verbatim so that saving writes it back."""

    raw: Dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        """Read an official field (`traj_vocab_size`, `expert_cfg`, ...) from the raw dict."""
        if name != 'raw' and name in self.raw:
            return self.raw[name]
        raise AttributeError(name)

    @property
    def backbone_type(self) -> str:
        """Transformers `model_type` of the backbone implied by `vlm_backend` ('qwen3_vl'...)."""
        return _BACKENDS[self.raw.get('vlm_backend', 'qwenvl3').lower()]

    @property
    def future_vocab_size(self) -> int:
        """Number of `<iK>` ids used by the future tokenizer; history ids start after them."""
        return int(self.raw['traj_tokenizer_cfg']['num_bins'])

    def build(self, slot: str, **injected: Any) -> Any:
        """Instantiate the allow-listed class of `slot` with its config plus `injected` args."""
        return instantiate(slot, self.raw[slot], **injected)

    def to_json(self) -> str:
        """Return the config as the official writer formats it (sorted keys, indent 2)."""
        return json.dumps(self.raw, indent=2, sort_keys=True) + '\n'


def load_config(folder: Path) -> AR1Config:
    """Read and validate `folder/config.json`; raise CheckpointError naming any problem."""
    path = Path(folder) / 'config.json'
    if not path.is_file():
        raise CheckpointError(f'{folder}: no config.json (not an AR1 checkpoint folder)')
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f'{path}: not valid JSON ({err})') from err
    return parse_config(raw, source=str(path))


def parse_config(raw: Mapping[str, Any], source: str = 'config') -> AR1Config:
    """Validate an AR1 config dict: model type, backend, every slot's `_target_` and fields."""
    raw = copy.deepcopy(dict(raw))
    if raw.get('model_type') != MODEL_TYPE:
        raise CheckpointError(
            f"{source}: model_type {raw.get('model_type')!r} is not {MODEL_TYPE!r}; only the "
            'AlpamayoR1 (VLM + action expert) format is supported')
    backend = str(raw.get('vlm_backend', 'qwenvl3')).lower()
    if backend not in _BACKENDS:
        raise CheckpointError(
            f'{source}: unknown vlm_backend {backend!r}; known: {sorted(_BACKENDS)}')
    for slot in TARGETS:
        if not isinstance(raw.get(slot), dict):
            raise CheckpointError(f'{source}: {slot} is missing or not a dict')
        _check_slot(slot, raw[slot], source)
    nested = raw['traj_tokenizer_cfg'].get('action_space_cfg')
    if isinstance(nested, dict):
        _check_slot('action_space_cfg', nested, f'{source}: traj_tokenizer_cfg')
    for key in ('traj_vocab_size', 'tokens_per_history_traj', 'tokens_per_future_traj'):
        if not isinstance(raw.get(key), int):
            raise CheckpointError(f'{source}: {key} is missing or not an integer')
    return AR1Config(raw)


def _check_slot(slot: str, cfg: Mapping[str, Any], source: str) -> None:
    """Check one Hydra dict: allow-listed target, only constructor arguments it accepts."""
    target = cfg.get('_target_')
    known = TARGETS[slot]
    if target not in known:
        raise CheckpointError(
            f'{source}: {slot}._target_ {target!r} is not an allowed target; '
            f'allowed: {sorted(known)}')
    accepted = _constructor_args(known[target])
    for key in cfg:
        if key in _HYDRA_KEYS:
            continue
        if key in _INJECTED.get(slot, ()):
            raise CheckpointError(f'{source}: {slot}.{key} is set by the model, not the config')
        if accepted is not None and key not in accepted:
            raise CheckpointError(f'{source}: {slot} has unknown field {key!r} for {target}')


def _constructor_args(cls: Callable) -> Optional[frozenset]:
    """Return the keyword names `cls` accepts, or None if it takes **kwargs."""
    params = inspect.signature(cls).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params)


def instantiate(slot: str, cfg: Mapping[str, Any], **injected: Any) -> Any:
    """Build the allow-listed class for `slot` from `cfg` (already validated) and `injected`."""
    cls = TARGETS[slot][cfg['_target_']]
    kwargs = {k: copy.deepcopy(v) for k, v in cfg.items() if k not in _HYDRA_KEYS}
    kwargs.update(injected)
    return cls(**kwargs)
