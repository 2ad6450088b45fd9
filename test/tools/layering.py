"""The import contract between ar1_ros's layers, checked by parsing every module's imports.

A static check (ast), so it sees imports inside functions and behind `if TYPE_CHECKING`, and
costs no import of torch or rclpy.
"""
import ast
import dataclasses
from pathlib import Path
import sys
from typing import FrozenSet, Iterator, List, Optional, Tuple

PACKAGE = 'ar1_ros'

# Top-level modules that belong to ROS 2 (client library, launch, tooling, message packages).
ROS_MODULES = frozenset({
    'rclpy', 'rosidl_runtime_py', 'rosidl_parser', 'rosidl_generator_py', 'rpyutils',
    'ament_index_python', 'launch', 'launch_ros', 'launch_testing', 'launch_testing_ros',
    'message_filters', 'tf2_ros', 'tf2_py', 'cv_bridge', 'rosbag2_py', 'builtin_interfaces',
})

# Third-party modules the model layer may use: "torch/transformers only" plus their numeric and
# file-format companions, and torchao (PyTorch's own quantization extension: model/fp8.py).
MODEL_THIRD_PARTY = frozenset({
    'torch', 'transformers', 'numpy', 'safetensors', 'tokenizers', 'PIL', 'jinja2', 'torchao',
})


@dataclasses.dataclass(frozen=True)
class Rule:
    """What modules of one layer may import: ar1_ros layers, ROS, and other third-party code."""

    layers: FrozenSet[str]
    ros: bool = False
    third_party: Optional[FrozenSet[str]] = None  # None: any non-ROS third-party module


ALL_LAYERS = frozenset({'model', 'runtime', 'nodes', 'data', 'evaluation', 'training', 'sim',
                        'cli'})
RULES = {
    '': Rule(frozenset(), third_party=frozenset()),  # ar1_ros/__init__.py: stdlib only
    'model': Rule(frozenset({'model'}), third_party=MODEL_THIRD_PARTY),
    'runtime': Rule(frozenset({'runtime', 'model'})),
    # nodes may read bags through data (the player); data never imports nodes or ROS.
    'nodes': Rule(frozenset({'nodes', 'data', 'runtime', 'model', 'msg'}), ros=True),
    'data': Rule(frozenset({'data', 'runtime', 'model'})),
    # The demo world: scenarios, renders, bags of them (through data); no ROS.
    'sim': Rule(frozenset({'sim', 'data', 'runtime', 'model'})),
    # Offline evaluation: bags in, metrics and reports out, no ROS (message output is injected).
    # The closed loop drives the demo world (sim).
    'evaluation': Rule(frozenset({'evaluation', 'sim', 'data', 'runtime', 'model'})),
    'training': Rule(frozenset({'training', 'data', 'runtime', 'model'})),
    'cli': Rule(ALL_LAYERS),
}


def is_ros(module: str) -> bool:
    """Return True for ROS 2 modules: rclpy & co, message packages, our generated ar1_ros.msg."""
    top = module.split('.')[0]
    return (top in ROS_MODULES or top.endswith(('_msgs', '_interfaces'))
            or module == f'{PACKAGE}.msg' or module.startswith(f'{PACKAGE}.msg.'))


def iter_imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[Tuple[int, str]]:
    """Yield (line, absolute module name) for every import, relative ones resolved.

    `importlib.import_module('x')` and `__import__('x')` with a constant name count too.
    """
    package_parts = module.split('.') if is_package else module.split('.')[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parent = package_parts[:len(package_parts) - node.level + 1]
                base = '.'.join(parent + ([base] if base else []))
            # `from ar1_ros import model` imports a layer; `from ar1_ros import x` an attribute.
            names = ([f'{base}.{a.name}' if a.name in ALL_LAYERS | {'msg'} else base
                      for a in node.names] if base == PACKAGE else [base])
            for name in names:
                yield node.lineno, name
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            yield node.lineno, node.args[0].value


def _is_dynamic_import(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, 'id', '')
    return (name in ('import_module', '__import__') and bool(node.args)
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str))


def violation(layer: str, imported: str) -> Optional[str]:
    """Return why `layer` may not import `imported`, or None when it may."""
    rule = RULES[layer]
    top = imported.split('.')[0]
    if is_ros(imported):
        return None if rule.ros else 'ROS import outside ar1_ros/nodes'
    if top == PACKAGE:
        target = imported.split('.')[1] if imported.count('.') else ''
        if target == '' or target in rule.layers:
            return None
        return f'layer {layer or PACKAGE!r} may not import ar1_ros.{target}'
    if top in sys.stdlib_module_names or top == '__future__':
        return None
    if rule.third_party is not None and top not in rule.third_party:
        return f'layer {layer or PACKAGE!r} may not import third-party {top!r}'
    return None


def check_tree(root: Path) -> List[str]:
    """Check every .py file of root/ar1_ros; return 'path:line: import x: reason' per violation."""
    problems = []
    for path in sorted((root / PACKAGE).rglob('*.py')):
        rel = path.relative_to(root)
        parts = list(rel.with_suffix('').parts)
        is_package = parts[-1] == '__init__'
        module_parts = parts[:-1] if is_package else parts
        in_subpackage = len(module_parts) > 2 or (len(module_parts) == 2 and is_package)
        layer = module_parts[1] if in_subpackage else ''
        if layer not in RULES:
            problems.append(f'{rel}: unknown layer {layer!r}: add it to RULES')
            continue
        module = '.'.join(module_parts)
        tree = ast.parse(path.read_text(), filename=str(rel))
        for line, imported in iter_imports(tree, module, is_package):
            reason = violation(layer, imported)
            if reason:
                problems.append(f'{rel}:{line}: import {imported}: {reason}')
    return problems
