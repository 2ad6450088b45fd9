"""House rule: small files (<= 300 lines) and small functions (<= 40 lines), in code we ship."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FILE_LINES = 300
MAX_FUNCTION_LINES = 40
CHECKED = ('ar1_ros', 'benchmarks', 'scripts', 'test')


def _sources():
    for top in CHECKED:
        yield from sorted((ROOT / top).rglob('*.py'))


def test_files_are_small():
    long = [f'{p.relative_to(ROOT)}: {n}' for p in _sources()
            if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES]
    assert not long, f'files over {MAX_FILE_LINES} lines: {long}'


def test_functions_are_small():
    long = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = node.end_lineno - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long.append(f'{path.relative_to(ROOT)}:{node.lineno} {node.name} ({size})')
    assert not long, f'functions over {MAX_FUNCTION_LINES} lines: {long}'
