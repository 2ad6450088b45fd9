"""metrics.json and metrics.csv of an evaluation: the summary and one entry per keyframe."""
import csv
import json
import math
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

from ar1_ros.evaluation.records import KeyframeRecord

# Leading CSV columns; metric columns follow in sorted order.
FIXED = ('bag', 't0_ns', 't0_s', 'status', 'decision', 'plan_index', 'speed_mps', 'detail')


def _finite(value):
    """Return a JSON-safe number (NaN and infinities become None)."""
    return value if isinstance(value, (int, str)) or math.isfinite(value) else None


def keyframe_entry(record: KeyframeRecord) -> Dict:
    """Return the JSON entry of one keyframe (no arrays: those are in the output bag)."""
    plan = record.plan_index if record.plan_index is not None else 0
    return {'bag': record.bag, 't0_ns': int(record.t0_ns), 't0_s': record.t0_s,
            'status': record.status, 'detail': record.detail, 'decision': record.decision,
            'plan_index': record.plan_index, 'speed_mps': _finite(float(record.speed)),
            'reasoning': record.reasoning[plan] if record.reasoning else '',
            'valid': list(record.valid), 'has_ground_truth': record.has_ground_truth,
            'metrics': {k: _finite(float(v)) for k, v in record.metrics.items()},
            'timings': {k: float(v) for k, v in record.timings.items()}}


def write_metrics(out_dir, records: Iterable[KeyframeRecord],
                  summary: Dict) -> Tuple[Path, Path]:
    """Write metrics.json ({'summary', 'keyframes'}) and metrics.csv; return both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = [keyframe_entry(r) for r in records]
    json_path, csv_path = out_dir / 'metrics.json', out_dir / 'metrics.csv'
    json_path.write_text(json.dumps({'summary': summary, 'keyframes': entries}, indent=1,
                                    default=str))
    names = sorted({name for e in entries for name in e['metrics']})
    with open(csv_path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(list(FIXED) + names)
        for e in entries:
            row = [e[k] if e[k] is not None else '' for k in FIXED]
            writer.writerow(row + ['' if e['metrics'].get(n) is None else e['metrics'][n]
                                   for n in names])
    return json_path, csv_path


def load_metrics(json_path) -> Tuple[Dict, List[Dict]]:
    """Return (summary, keyframe entries) of a metrics.json."""
    data = json.loads(Path(json_path).read_text())
    return data['summary'], data['keyframes']
