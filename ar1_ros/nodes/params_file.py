"""The node's parameter file read without a node, for the offline tools (`ar1 eval`).

The same YAML (`/**: ros__parameters:` or `<node name>: ros__parameters:`), the same table of
parameters and defaults, and the same validation (build_config) as the live node, so an
evaluation reads cameras, topics, selection and safety-gate bounds exactly as the node would.
"""
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from rclpy.parameter import Parameter
import yaml

from ar1_ros.nodes.params import (
    CAMERA_PARAMETERS,
    ConfigError,
    NodeConfig,
    build_config,
    parameter_table,
)
from ar1_ros.nodes.policy_node import NODE_NAME


def _flatten(tree: Mapping, prefix: str = '') -> Dict[str, Any]:
    """Return {'a.b.c': value} of nested dicts (ROS parameter files nest dotted names)."""
    flat = {}
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f'{name}.'))
        else:
            flat[name] = value
    return flat


def _section(document: Any, path: Path, node_name: str) -> Dict[str, Any]:
    """Return the flattened ros__parameters that apply to `node_name` ('/**' first)."""
    if not isinstance(document, Mapping):
        raise ConfigError(f'{path}: not a ROS 2 parameter file (expected a mapping)')
    values: Dict[str, Any] = {}
    for key in ('/**', node_name, f'/{node_name}'):
        entry = document.get(key)
        if entry is None:
            continue
        if not isinstance(entry, Mapping) or 'ros__parameters' not in entry:
            raise ConfigError(f'{path}: {key!r} has no ros__parameters')
        values.update(_flatten(entry['ros__parameters'] or {}))
    if not values:
        raise ConfigError(f'{path}: no parameters for {node_name!r} (keys: {list(document)})')
    return values


def _default(value: Any) -> Any:
    # A Parameter.Type default means "declared without a value": the node reads None.
    return None if isinstance(value, Parameter.Type) else value


def _table() -> Dict[str, Any]:
    return {name: _default(default) for name, default, _ in parameter_table()}


def read_values(path, overrides: Optional[Mapping[str, Any]] = None,
                node_name: str = NODE_NAME) -> Dict[str, Any]:
    """Return every node parameter's value: defaults, then the file, then `overrides`.

    Raises ConfigError for a missing or malformed file and for a name the node does not declare
    (a typo would otherwise be ignored silently, as `ros2 run` would not).
    """
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f'cannot read parameter file {path}: {exc.strerror}') from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f'{path}: not valid YAML ({exc})') from exc
    given = {**_section(document, path, node_name), **dict(overrides or {})}
    given.pop('use_sim_time', None)
    values = _table()
    camera_ids = given.get('cameras') or []
    for camera_id in camera_ids:
        for key, default, _ in CAMERA_PARAMETERS:
            values[f'camera.{camera_id}.{key}'] = _default(default)
    unknown = sorted(set(given) - set(values))
    if unknown:
        raise ConfigError(f'{path}: unknown parameter(s) {", ".join(unknown)}')
    values.update(given)
    return values


def load_config(path, overrides: Optional[Mapping[str, Any]] = None) -> NodeConfig:
    """Return the validated NodeConfig of a parameter file (ConfigError naming any fault)."""
    return build_config(read_values(path, overrides))


def write_with_overrides(source, target, overrides: Mapping[str, Any]) -> Path:
    """Write `source` (a parameter file with a '/**' section) to `target` with dotted overrides.

    overrides: {'backend.device': 'cpu', 'camera.front_wide.intrinsics': [...], ...}; nested
    keys are created as needed. Returns the target path.
    """
    document = yaml.safe_load(Path(source).read_text())
    params = document['/**']['ros__parameters']
    for dotted, value in overrides.items():
        node = params
        *parents, leaf = dotted.split('.')
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    target = Path(target)
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    return target
