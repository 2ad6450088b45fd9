"""Access to the golden fixtures produced by the official AR1 code (test/fixtures/ar1_tiny).

The folder is a verbatim copy of ../shared/golden/ar1_tiny (its README.md says how each file was
made); test_golden_integrity.py checks it against the sha256 manifest.
"""
import json
from pathlib import Path
from typing import Dict, Tuple

from safetensors.torch import load_file
import torch

GOLDEN = Path(__file__).resolve().parents[1] / 'fixtures' / 'ar1_tiny'
CHECKPOINT = GOLDEN / 'checkpoint'
BASE_VLM = GOLDEN / 'base_vlm'
CASES = ('case_000', 'case_001', 'case_002')


def load(name: str) -> Tuple[Dict, Dict[str, torch.Tensor]]:
    """Return (json dict, tensors) of one fixture, e.g. 'action_space' or 'cases/case_000'."""
    meta = json.loads((GOLDEN / f'{name}.json').read_text())
    return meta, load_file(str(GOLDEN / f'{name}.safetensors'))


def predict_inputs(case: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return predict()'s (images uint8 (C, F, H, W, 3), history xyz (16, 3), rot (16, 3, 3))."""
    _, tensors = load(f'cases/{case}')
    images = tensors['inputs/image_frames'].permute(0, 1, 3, 4, 2).contiguous()
    return images, tensors['inputs/ego_history_xyz'][0, 0], tensors['inputs/ego_history_rot'][0, 0]
