"""The committed demo checkpoint: size, official format, and the issue's bar on held-out seeds.

On held-out episodes (seeds the training never saw) it must beat the constant-velocity
baseline on open-loop minADE at 3 s and state the labelled decision in at least half of the
keyframes. Measured with `ar1 closed-loop` itself on seed 1004 of every scenario, greedy
decoding as in `make demo` (the committed demo/EVAL.md covers seeds 1000-1003).
"""
import json
from pathlib import Path

import pytest

from ar1_ros.cli.main import main
from ar1_ros.model.api import AR1Model

pytestmark = pytest.mark.slow
DEMO = Path(__file__).resolve().parents[2] / 'demo' / 'checkpoint'
MB = 1024 * 1024


def test_size_and_format():
    size = sum(p.stat().st_size for p in DEMO.rglob('*') if p.is_file())
    assert size <= 30 * MB, f'{size / MB:.1f} MB'
    model = AR1Model.from_pretrained(DEMO)  # the official layout, checked tensor by tensor
    assert model.config.raw['model_type'] == 'alpamayo_r1'
    assert model.preprocessor is not None  # tokenizer shipped inside (base_vlm/)
    assert sum(p.numel() for p in model.network.parameters()) < 10_000_000


def test_beats_constant_velocity_and_states_the_labelled_decision(tmp_path):
    out = tmp_path / 'cl'
    code = main(['closed-loop', '--checkpoint', str(DEMO), '--scenarios', 'all',
                 '--seeds', '1004', '--device', 'cpu', '--dtype', 'float32', '--greedy',
                 '--out', str(out), '--no-progress'])
    assert code == 0
    aggregate = json.loads((out / 'closed_loop.json').read_text())['aggregate']
    model, cv = aggregate['model'], aggregate['cv']
    assert model['keyframes'] >= 40
    assert model['min_ade_3s'] < cv['min_ade_3s'], (model['min_ade_3s'], cv['min_ade_3s'])
    assert model['decision_accuracy'] >= 0.5, model['decision_accuracy']
