"""report.html: one self-contained page (images inline as data URIs, no JavaScript) to skim.

Overview first (settings, outcome counts, the aggregate table, one row per bag, error over the
horizon and a timeline per bag), then one card per evaluated keyframe: bird's-eye plot, the
front camera with the plan drawn, the decision and the Chain-of-Causation text, its metrics.
Skipped keyframes are listed compactly at the end. Every text is HTML-escaped.
"""
import base64
import html
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from ar1_ros.evaluation.metrics import aggregate_by_bag, plan_sample
from ar1_ros.evaluation.plots import bev_png, summary_png
from ar1_ros.evaluation.records import STATUSES, KeyframeRecord

# Rows of the skipped table; the rest are counted (metrics.csv has them all).
MAX_SKIPPED_ROWS = 500
STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1400px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
.card{border:1px solid #bbb;border-radius:6px;padding:8px;margin:12px 0;display:flex;gap:14px;
flex-wrap:wrap}.text{max-width:520px;font-size:13px}.text h3{margin:2px 0 6px}
.ok{color:#1f77b4}.rejected{color:#d62728}.failed{color:#000}.skipped{color:#777}
pre{white-space:pre-wrap;background:#f6f6f6;padding:6px}small{color:#555}"""


def _img(data: bytes, mime: str, alt: str) -> str:
    encoded = base64.b64encode(data).decode('ascii')
    return f'<img alt="{html.escape(alt)}" src="data:{mime};base64,{encoded}">'


def _table(rows: Sequence[Sequence], header: Sequence[str]) -> str:
    head = ''.join(f'<th>{html.escape(str(h))}</th>' for h in header)
    body = ''.join('<tr>' + ''.join(f'<td>{html.escape(str(c))}</td>' for c in row) + '</tr>'
                   for row in rows)
    return f'<table><tr>{head}</tr>{body}</table>'


def _number(value, digits: int = 3) -> str:
    return '' if value is None else f'{value:.{digits}f}'


def _percent(rate) -> str:
    return 'n/a' if rate is None else f'{100 * rate:.1f} %'


def _metric_rows(metrics: Dict[str, float]) -> List[tuple]:
    """Return one keyframe's (name, text) rows: distances in metres, comfort folded."""
    rows, failed = [], [n[8:] for n, v in metrics.items()
                        if n.startswith('comfort/') and n != 'comfort/all' and v < 0.5]
    for name, value in metrics.items():
        if name == 'comfort/all':
            rows.append(('comfort of the plan', 'FAIL: ' + ', '.join(failed) if failed
                         else 'pass'))
        elif name == 'comfort_samples/all':
            rows.append(('samples passing all comfort checks', _percent(value)))
        elif name.startswith('comfort'):
            continue
        elif name.endswith('_samples') or name == 'min_ade_sample':
            rows.append((name, f'{value:.0f}'))
        else:
            rows.append((name, f'{value:.3f} m'))
    return rows


def _unit(name: str) -> str:
    if name.startswith('comfort'):
        return 'pass rate'
    return 'count' if name.endswith('_samples') else 'm'


def _overview(summary: Dict, meta: Dict[str, str]) -> str:
    status = summary.get('status', {})
    counts = ', '.join(f'{status.get(s, 0)} {s}' for s in STATUSES)
    rates = (f'Every sample rejected (no plan) in '
             f'{_percent(summary.get("plan_rejection_rate"))} of the keyframes with a prediction; '
             f'{_percent(summary.get("sample_rejection_rate"))} of all samples rejected')
    metrics = summary.get('metrics', {})
    rows = [(name, _unit(name), _number(s['mean'], 4), _number(s['std'], 4), _number(s['min']),
             _number(s['max']), s['count']) for name, s in metrics.items()]
    return '\n'.join([
        '<h1>AR1 offline evaluation</h1>',
        _table(list(meta.items()), ('setting', 'value')),
        f'<p>{summary.get("keyframes", 0)} keyframes: {html.escape(counts)}; '
        f'{summary.get("with_ground_truth", 0)} with a prediction and ground truth. '
        f'{html.escape(rates)}.</p>',
        '<h2>Aggregate (mean over the keyframes that have each metric)</h2>',
        _table(rows, ('metric', 'unit', 'mean', 'std', 'min', 'max', 'keyframes'))
        if rows else '<p>No metrics: no keyframe produced a prediction.</p>'])


def _bags(records: Sequence[KeyframeRecord], summary: Dict) -> str:
    rows = []
    for bag, agg in aggregate_by_bag(records).items():
        mean = {n: _number(s['mean']) for n, s in agg['metrics'].items()}
        rows.append((bag, agg['keyframes'], *(agg['status'][s] for s in STATUSES),
                     agg['with_ground_truth'], mean.get('min_ade', ''), mean.get('ade', ''),
                     mean.get('comfort/all', '')))
    errors = [f'<p class="failed"><b>{html.escape(str(b.get("bag", "?")))}</b>: '
              f'{html.escape(str(b["error"]))}</p>'
              for b in summary.get('bags', []) if isinstance(b, dict) and b.get('error')]
    header = ('bag', 'keyframes', *STATUSES, 'with GT', 'min_ade [m]', 'ade [m]', 'comfort/all')
    return '<h2>Bags</h2>' + (_table(rows, header) if rows else '') + ''.join(errors)


def _camera(record: KeyframeRecord) -> str:
    if record.camera_rgb is None:
        return f'<p>(no camera picture kept)</p><small>{html.escape(record.camera_note)}</small>'
    import cv2
    # JPEG, not PNG: a photo is about ten times smaller, and there may be hundreds of cards.
    rgb = np.asarray(record.camera_rgb, dtype=np.uint8)
    bgr = np.ascontiguousarray(rgb[..., ::-1] if rgb.ndim == 3 else rgb)
    ok, data = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        return '<p>(camera picture could not be encoded)</p>'
    return (_img(data.tobytes(), 'image/jpeg', 'front camera') + '<br><small>'
            f'{html.escape(record.camera_note)}</small>')


def _samples(record: KeyframeRecord) -> str:
    """Return every sample's validity and reasoning, folded (an HTML <details>, no script)."""
    if len(record.reasoning) < 2:
        return ''
    items = ''.join(
        f'<li>sample {k}{" (plan)" if k == record.plan_index else ""}: '
        f'{"valid" if k >= len(record.valid) or record.valid[k] else "rejected"}'
        f'<pre>{html.escape(text)}</pre></li>' for k, text in enumerate(record.reasoning))
    return f'<details><summary>all {len(record.reasoning)} samples</summary><ul>{items}</ul>' \
           '</details>'


def _card(record: KeyframeRecord) -> str:
    plan = plan_sample(record)
    text = record.reasoning[plan] if plan is not None and plan < len(record.reasoning) else ''
    which = ('plan: sample ' + str(plan) if record.plan_index is not None
             else 'no plan; sample 0 shown' if plan is not None else 'no prediction')
    metrics = _metric_rows(record.metrics)
    ground_truth = '' if record.has_ground_truth else '<p>No ground truth: the recording ' \
        'ends (or odometry stops) before the horizon; distances not computed.</p>'
    return (f'<div class="card"><div>{_img(bev_png(record), "image/png", "bird eye view")}'
            f'</div><div>{_camera(record)}</div><div class="text">'
            f'<h3 class="{record.status}">{html.escape(record.bag)} t0 = {record.t0_s:.3f} s: '
            f'{html.escape(record.status)}</h3>'
            + (f'<p>{html.escape(record.detail)}</p>' if record.detail else '')
            + f'<p>speed {record.speed:.2f} m/s; {html.escape(which)}; decision: '
            f'<b>{html.escape(record.decision or "none")}</b></p>'
            f'<pre>{html.escape(text) or "(no reasoning text)"}</pre>{_samples(record)}'
            f'{ground_truth}{_table(metrics, ("metric", "value")) if metrics else ""}'
            '</div></div>')


def _skipped(records: List[KeyframeRecord]) -> str:
    if not records:
        return ''
    rows = [(r.bag, f'{r.t0_s:.3f}', r.detail) for r in records[:MAX_SKIPPED_ROWS]]
    more = len(records) - len(rows)
    note = f'<p>{more} more skipped keyframes: see metrics.csv.</p>' if more > 0 else ''
    return (f'<h2>Skipped keyframes ({len(records)})</h2>'
            + _table(rows, ('bag', 't [s]', 'why')) + note)


def _chosen(evaluated: List[KeyframeRecord], max_cards: int) -> List[KeyframeRecord]:
    """Return at most max_cards records spread evenly over the list (first and last kept)."""
    if len(evaluated) <= max_cards:
        return evaluated
    if max_cards <= 0:
        return []
    picks = np.unique(np.linspace(0, len(evaluated) - 1, max_cards).round().astype(int))
    return [evaluated[i] for i in picks]


def write_report(out_dir, records: Sequence[KeyframeRecord], summary: Dict,
                 meta: Dict[str, str], max_cards: int = 200) -> Path:
    """Write report.html and summary.png into out_dir (created); return report.html's path.

    summary: metrics.aggregate() of the records (plus the caller's 'bags' list of dicts, whose
    'error' entries are shown); meta: settings shown in the header (bags, checkpoint, date...).
    At most max_cards keyframe cards, spread evenly over the evaluated keyframes.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = list(records)
    overview = summary_png(records)
    (out_dir / 'summary.png').write_bytes(overview)
    evaluated = [r for r in records if r.status != 'skipped']
    shown = _chosen(evaluated, max_cards)
    note = (f'<p>Showing {len(shown)} of {len(evaluated)} evaluated keyframes, evenly spread; '
            'metrics.csv has them all.</p>' if len(shown) < len(evaluated) else '')
    page = ['<!DOCTYPE html><html><head><meta charset="utf-8">',
            f'<title>AR1 evaluation</title><style>{STYLE}</style></head><body>',
            _overview(summary, meta), _bags(records, summary), _img(overview, 'image/png',
                                                                    'overview'),
            f'<h2>Keyframes ({len(evaluated)} evaluated)</h2>', note,
            *(_card(r) for r in shown), _skipped([r for r in records if r.status == 'skipped']),
            '</body></html>']
    path = out_dir / 'report.html'
    path.write_text('\n'.join(page), encoding='utf-8')
    return path
