"""metrics.json and metrics.csv of an evaluation: the summary, per bag, one entry per keyframe.

metrics.json: {'format', 'summary' (metrics.aggregate() plus what the caller added),
'per_bag' ({bag: aggregate of its keyframes}), 'metric_names', 'keyframes' (keyframe_entry())}.
Numbers that are not finite are written as null, so the file is strict JSON.
metrics.csv: one row per keyframe, the columns of csv_columns() in a fixed order (every known
metric always has a column), empty cells where a keyframe has no value.
"""
import csv
import json
import math
from pathlib import Path
import re
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

from ar1_ros.evaluation.metrics import METRIC_NAMES, aggregate_by_bag, plan_sample
from ar1_ros.evaluation.records import KeyframeRecord

FORMAT = 'ar1_ros.eval.metrics/1'
# Leading CSV columns; the metrics (METRIC_NAMES, then others), timings and reasoning follow.
FIXED = ('bag', 't0_ns', 't0_s', 'status', 'decision', 'plan_index', 'samples', 'speed_mps',
         'has_ground_truth', 'detail')


def json_safe(value):
    """Return value with numpy types as Python ones and non-finite floats as None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def keyframe_entry(record: KeyframeRecord) -> Dict:
    """Return the JSON entry of one keyframe (no arrays: trajectories are in the output bag).

    reasoning: the Chain-of-Causation text of the plan (sample 0 when every sample was
    rejected), '' without a prediction. speed_mps: the ego speed at t0.
    """
    plan = plan_sample(record)
    reasoning = record.reasoning[plan] if plan is not None and plan < len(record.reasoning) else ''
    return json_safe({
        'bag': record.bag, 't0_ns': int(record.t0_ns), 't0_s': record.t0_s,
        'status': record.status, 'detail': record.detail, 'decision': record.decision,
        'plan_index': record.plan_index,
        'samples': 0 if record.pred_xyz is None else len(record.pred_xyz),
        'valid': [bool(v) for v in record.valid], 'speed_mps': record.speed,
        'has_ground_truth': record.has_ground_truth, 'reasoning': reasoning,
        'metrics': dict(record.metrics), 'timings': dict(record.timings)})


def csv_columns(entries: Sequence[Dict]) -> List[str]:
    """Return the CSV header: FIXED, METRIC_NAMES, other metrics, time/<timing>, reasoning."""
    extra = sorted({n for e in entries for n in e['metrics']} - set(METRIC_NAMES))
    timings = sorted({n for e in entries for n in e['timings']})
    return [*FIXED, *METRIC_NAMES, *extra, *(f'time/{n}' for n in timings), 'reasoning']


def _cell(entry: Dict, column: str):
    if column == 'reasoning':
        # One physical line per row: spreadsheets and `wc -l` both count keyframes.
        return re.sub(r'\s+', ' ', entry['reasoning']).strip()
    if column.startswith('time/'):
        value = entry['timings'].get(column[5:])
    else:
        value = entry[column] if column in FIXED else entry['metrics'].get(column)
    return '' if value is None else value


def write_metrics(out_dir, records: Iterable[KeyframeRecord],
                  summary: Dict) -> Tuple[Path, Path]:
    """Write metrics.json and metrics.csv into out_dir (created); return (json_path, csv_path).

    summary: metrics.aggregate() of the records, plus anything JSON-able the caller adds.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = list(records)
    entries = [keyframe_entry(r) for r in records]
    document = {'format': FORMAT, 'summary': json_safe(summary),
                'per_bag': json_safe(aggregate_by_bag(records)),
                'metric_names': list(METRIC_NAMES), 'keyframes': entries}
    json_path, csv_path = out_dir / 'metrics.json', out_dir / 'metrics.csv'
    json_path.write_text(json.dumps(document, indent=1, allow_nan=False) + '\n')
    columns = csv_columns(entries)
    with open(csv_path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows([_cell(e, c) for c in columns] for e in entries)
    return json_path, csv_path


def load_metrics(json_path) -> Dict:
    """Return the document of a metrics.json written by write_metrics() (module docstring).

    Raises ValueError (with the path and the reason) for a file that is missing, not JSON or
    not a metrics file.
    """
    path = Path(json_path)
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f'{path}: cannot read metrics ({exc})') from exc
    if not isinstance(document, dict) or document.get('format') != FORMAT:
        raise ValueError(f'{path}: not an ar1 eval metrics file (format {FORMAT} expected)')
    return document
