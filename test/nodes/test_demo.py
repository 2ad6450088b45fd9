"""`ar1 demo`, the README's main job, end to end on the committed demo checkpoint.

The node runs as its own process (`ar1 run`), the bag is replayed over DDS (`ar1 replay`) and
the node's outputs are recorded from DDS; the test then reads what a person would look at.
"""
import json
from pathlib import Path

import av
import numpy as np
import pytest

from ar1_ros.cli.main import main
from ar1_ros.data.bags import BagReader

pytestmark = [pytest.mark.ros, pytest.mark.slow]
DEMO = Path(__file__).resolve().parents[2] / 'demo' / 'checkpoint'


def test_demo_writes_video_plot_and_metrics(tmp_path, capsys):
    out = tmp_path / 'demo'
    assert main(['demo', '--out', str(out), '--scenario', 'lead_brake', '--seed', '1001',
                 '--no-closed-loop']) == 0
    assert str(out.resolve()) in capsys.readouterr().out
    metrics = json.loads((out / 'metrics.json').read_text())
    summary = metrics['summary']
    assert summary['plans'] >= 20
    assert summary['labelled_plans'] >= 5
    assert np.isfinite(summary['model_ade_3s'])
    assert np.isfinite(summary['cv_ade_3s'])
    assert any(row['decision'] for row in metrics['plans'])
    with BagReader(out / 'outputs') as reader:
        overlays = reader.message_count('/ar1_policy/overlay')
        published = reader.message_count('/ar1_policy/trajectory')
    # Plans of the last 6.4 s have no recorded future to be scored against.
    assert summary['plans'] <= published <= summary['plans'] + 40
    with av.open(str(out / 'overlay.mp4')) as video:
        frames = [f.to_ndarray(format='rgb24') for f in video.decode(video=0)]
    assert len(frames) == overlays >= 20
    assert frames[0].shape[:2] == (320, 576)
    assert (out / 'bev.png').read_bytes()[:4] == b'\x89PNG'
    assert len(list((out / 'frames').glob('*.png'))) >= 3


def test_demo_refuses_a_missing_checkpoint(tmp_path, capsys):
    assert main(['demo', '--out', str(tmp_path), '--checkpoint', str(tmp_path / 'none')]) == 2
    assert 'make demo-checkpoint' in capsys.readouterr().err
    assert main(['demo', '--out', str(tmp_path), '--scenario', 'parking']) == 2
