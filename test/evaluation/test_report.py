"""metrics.json / metrics.csv round trip and report.html from synthetic keyframe records."""
import base64
import csv
import html
import json
import re

import numpy as np
import pytest

from ar1_ros.evaluation.metrics import METRIC_NAMES, aggregate, record_metrics
from ar1_ros.evaluation.records import KeyframeRecord
from ar1_ros.evaluation.report import write_report
from ar1_ros.evaluation.results import FIXED, load_metrics, write_metrics

REASONING = 'Yield to the <pedestrian> & "cyclist" crossing </pre><script>alert(1)</script>'
PNG, JPEG = b'\x89PNG\r\n\x1a\n', b'\xff\xd8\xff'


def path(steps=64, speed=8.0, lateral=0.0):
    """Return (xyz (T, 3), rot (T, 3, 3)) of a straight drive, shifted sideways."""
    xyz = np.zeros((steps, 3))
    xyz[:, 0] = speed * np.arange(1, steps + 1) * 0.1
    xyz[:, 1] = lateral
    return xyz, np.broadcast_to(np.eye(3), (steps, 3, 3)).copy()


def record(status, t0_s, bag='drive.mcap', gt=True, camera=True, plan=0):
    """Return a scored KeyframeRecord like the evaluation loop makes."""
    r = KeyframeRecord(bag=bag, t0_ns=int(t0_s * 1e9), status=status, speed=8.0)
    if status in ('ok', 'rejected'):
        samples = [path(lateral=d) for d in (0.3, -0.5, 1.0)]
        r.pred_xyz = np.stack([s[0] for s in samples])
        r.pred_rot = np.stack([s[1] for s in samples])
        r.valid = (True, False, True) if status == 'ok' else (False, False, False)
        r.plan_index = plan if status == 'ok' else None
        r.reasoning = (REASONING, 'Keep lane.', 'Nudge left.')
        r.decision = 'yield'
        r.history_xyz = np.stack([np.linspace(-12, 0, 16), np.zeros(16), np.zeros(16)], axis=1)
        r.timings = {'infer_s': 0.5, 'decode_s': 0.01}
        r.gt_xyz, r.gt_rot = path() if gt else (None, None)
    elif status == 'failed':
        r.detail = 'backend raised RuntimeError: <boom>'
    else:
        r.detail = 'camera_front_wide_120fov: no frame'
    if camera and status != 'skipped':
        r.camera_rgb = np.full((36, 64, 3), 90, dtype=np.uint8)
        r.camera_note = 'camera_front_wide_120fov at t0'
    r.metrics = record_metrics(r)
    return r


@pytest.fixture
def records():
    return [record('ok', 1.0), record('ok', 2.0, gt=False, camera=False),
            record('rejected', 3.0), record('failed', 4.0), record('skipped', 5.0),
            record('ok', 1.5, bag='other.mcap', plan=2)]


def data_uris(text):
    return [(mime, base64.b64decode(data)) for mime, data in
            re.findall(r'src="data:(image/[a-z]+);base64,([A-Za-z0-9+/=]+)"', text)]


def test_metrics_round_trip(tmp_path, records):
    records[0].speed = float('nan')  # not finite: null in strict JSON, empty in the CSV
    summary = aggregate(records)
    summary['bags'] = [{'bag': 'drive.mcap', 'error': ''}]
    json_path, csv_path = write_metrics(tmp_path / 'out', records, summary)
    document = load_metrics(json_path)
    json.loads(json_path.read_text(), parse_constant=pytest.fail)  # no NaN / Infinity
    assert document['summary'] == json.loads(json.dumps(summary))
    assert set(document['per_bag']) == {'drive.mcap', 'other.mcap'}
    assert document['per_bag']['other.mcap']['status']['ok'] == 1
    rows = document['keyframes']
    assert [r['status'] for r in rows] == [r.status for r in records]
    assert rows[0]['reasoning'] == REASONING
    assert rows[2]['reasoning'] == REASONING, 'rejected: sample 0 is shown'
    assert rows[5]['reasoning'] == 'Nudge left.', 'the plan, not sample 0'
    assert rows[0]['speed_mps'] is None
    assert rows[0]['metrics'] == pytest.approx(records[0].metrics)
    assert rows[0]['timings'] == {'infer_s': 0.5, 'decode_s': 0.01}
    assert rows[3]['metrics'] == {}
    with open(csv_path, newline='') as f:
        table = list(csv.DictReader(f))
    header = list(table[0])
    assert header[:len(FIXED) + len(METRIC_NAMES)] == [*FIXED, *METRIC_NAMES]
    assert header[-3:] == ['time/decode_s', 'time/infer_s', 'reasoning']
    assert len(table) == len(records)
    assert float(table[0]['min_ade']) == pytest.approx(records[0].metrics['min_ade'])
    assert table[0]['speed_mps'] == ''
    assert table[1]['min_ade'] == '', 'no ground truth'
    assert table[1]['comfort/all'] == '1.0'
    assert table[3]['comfort/all'] == ''
    assert table[3]['detail'] == 'backend raised RuntimeError: <boom>'


def test_load_metrics_rejects_other_files(tmp_path):
    for name, text in (('a.json', '{"summary": {}}'), ('b.json', 'not json')):
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=name):
            load_metrics(tmp_path / name)
    with pytest.raises(ValueError, match='missing.json'):
        load_metrics(tmp_path / 'missing.json')


def test_report_is_self_contained_and_escaped(tmp_path, records):
    meta = {'bags': 'drive.mcap, other.mcap', 'checkpoint': '/models/<ar1>', 'date': 'today'}
    report = write_report(tmp_path, records, aggregate(records), meta)
    text = report.read_text()
    assert '<script' not in text
    assert html.escape(REASONING) in text
    assert REASONING not in text
    assert '/models/&lt;ar1&gt;' in text
    assert 'backend raised RuntimeError: &lt;boom&gt;' in text
    assert 'camera_front_wide_120fov: no frame' in text, 'skipped keyframes are listed'
    assert 'No ground truth' in text
    assert 'src="http' not in text
    assert 'href=' not in text
    images = data_uris(text)
    # Overview, one bird's-eye plot per evaluated keyframe (5), four camera pictures.
    assert [m for m, _ in images].count('image/png') == 1 + 5
    assert [m for m, _ in images].count('image/jpeg') == 4
    for mime, data in images:
        assert data.startswith(PNG if mime == 'image/png' else JPEG)
    assert (tmp_path / 'summary.png').read_bytes().startswith(PNG)


def test_report_limits_cards(tmp_path):
    many = [record('ok', 1.0 + i, camera=False) for i in range(7)]
    text = write_report(tmp_path, many, aggregate(many), {}, max_cards=3).read_text()
    assert [m for m, _ in data_uris(text)].count('image/png') == 1 + 3
    assert 'Showing 3 of 7' in text
    # Spread over the run: the first and the last keyframe are among the cards.
    assert 't0 = 1.000 s' in text
    assert 't0 = 7.000 s' in text


def test_report_and_metrics_of_nothing(tmp_path):
    summary = aggregate([])
    report = write_report(tmp_path, [], summary, {'bags': 'empty.mcap'})
    text = report.read_text()
    assert '0 keyframes' in text
    assert [m for m, _ in data_uris(text)] == ['image/png']
    json_path, csv_path = write_metrics(tmp_path, [], summary)
    assert load_metrics(json_path)['keyframes'] == []
    assert csv_path.read_text().count('\n') == 1
