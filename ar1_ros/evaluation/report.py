"""report.html: one self-contained page (images inline) a person can skim.

Overview first (settings, counts, the aggregate table, error over the horizon, a timeline),
then one card per evaluated keyframe: bird's-eye plot, the front camera with the plan, the
decision and the Chain-of-Causation text, its metrics. Skipped keyframes are listed compactly.
"""
import base64
import html
from pathlib import Path
from typing import Dict, List, Sequence

from ar1_ros.evaluation.plots import bev_png, summary_png
from ar1_ros.evaluation.records import KeyframeRecord

HEADLINE = ('min_ade', 'min_ade/by_t=0.5', 'min_ade/by_t=1.0', 'min_ade/by_t=3.0',
            'min_ade/by_t=5.0', 'ade', 'ade/by_t=3.0', 'fde', 'min_fde', 'corner_distance',
            'displacement@1.0s', 'displacement@3.0s', 'comfort/all', 'rejected_samples')
STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}
.card{border:1px solid #bbb;border-radius:6px;padding:8px;margin:10px 0;display:flex;gap:12px;
flex-wrap:wrap}.text{max-width:480px;font-size:13px}.ok{color:#1f77b4}.rejected{color:#d62728}
.failed{color:#000}.skipped{color:#777}pre{white-space:pre-wrap}"""


def _img(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode('ascii')
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _table(rows: Sequence[Sequence], header: Sequence[str]) -> str:
    head = ''.join(f'<th>{html.escape(str(h))}</th>' for h in header)
    body = ''.join('<tr>' + ''.join(f'<td>{html.escape(str(c))}</td>' for c in row) + '</tr>'
                   for row in rows)
    return f'<table><tr>{head}</tr>{body}</table>'


def _overview(summary: Dict, meta: Dict[str, str]) -> str:
    parts = ['<h1>AR1 offline evaluation</h1>',
             _table(list(meta.items()), ('setting', 'value'))]
    status = summary.get('status', {})
    parts.append(f'<p>{summary.get("keyframes", 0)} keyframes: '
                 + ', '.join(f'{n} {s}' for s, n in status.items())
                 + f'; {summary.get("with_ground_truth", 0)} with ground truth.</p>')
    metrics = summary.get('metrics', {})
    names = [n for n in HEADLINE if n in metrics] + sorted(set(metrics) - set(HEADLINE))
    rows = [(n, f'{metrics[n]["mean"]:.4f}', f'{metrics[n]["std"]:.4f}', metrics[n]['count'])
            for n in names]
    parts.append(_table(rows, ('metric (m, or pass rate)', 'mean', 'std', 'keyframes')))
    for bag in summary.get('bags', []):
        if bag.get('error'):
            parts.append(f'<p class="failed"><b>{html.escape(bag["bag"])}</b>: '
                         f'{html.escape(bag["error"])}</p>')
    return '\n'.join(parts)


def _card(record: KeyframeRecord) -> str:
    plan = record.plan_index if record.plan_index is not None else 0
    text = record.reasoning[plan] if record.reasoning else ''
    metrics = [(n, f'{record.metrics[n]:.3f}') for n in HEADLINE if n in record.metrics]
    camera = (_img(_camera_png(record.camera_rgb), 'front camera') if record.camera_rgb
              is not None else '<p>(no camera picture kept for this keyframe)</p>')
    return (f'<div class="card"><div>{_img(bev_png(record), "bird eye view")}</div>'
            f'<div>{camera}<br><small>{html.escape(record.camera_note)}</small></div>'
            f'<div class="text"><h3 class="{record.status}">{html.escape(record.bag)} '
            f't0 = {record.t0_s:.3f} s: {record.status}</h3>'
            f'<p>{html.escape(record.detail)}</p><p>speed {record.speed:.2f} m/s; decision: '
            f'<b>{html.escape(record.decision or "none")}</b></p>'
            f'<pre>{html.escape(text) or "(no reasoning text)"}</pre>'
            f'{_table(metrics, ("metric", "value"))}</div></div>')


def _camera_png(rgb) -> bytes:
    import cv2
    return cv2.imencode('.png', rgb[..., ::-1])[1].tobytes()


def _skipped(records: List[KeyframeRecord]) -> str:
    if not records:
        return ''
    rows = [(r.bag, f'{r.t0_s:.3f}', r.detail) for r in records]
    return '<h2>Skipped keyframes</h2>' + _table(rows, ('bag', 't [s]', 'why'))


def write_report(out_dir, records: Sequence[KeyframeRecord], summary: Dict,
                 meta: Dict[str, str], max_cards: int = 200) -> Path:
    """Write report.html and summary.png into out_dir; return the report's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = list(records)
    overview = summary_png(records)
    (out_dir / 'summary.png').write_bytes(overview)
    evaluated = [r for r in records if r.status != 'skipped']
    # Spread the cards over the whole evaluation rather than showing only its start.
    stride = max(1, -(-len(evaluated) // max_cards))
    shown = evaluated[::stride]
    note = (f'<p>Showing {len(shown)} of {len(evaluated)} keyframes (every {stride}th); all '
            f'are in metrics.csv.</p>' if stride > 1 else '')
    page = ['<!DOCTYPE html><html><head><meta charset="utf-8"><title>AR1 evaluation</title>',
            f'<style>{STYLE}</style></head><body>', _overview(summary, meta),
            _img(overview, 'overview'), '<h2>Keyframes</h2>', note,
            *(_card(r) for r in shown), _skipped([r for r in records if r.status == 'skipped']),
            '</body></html>']
    path = out_dir / 'report.html'
    path.write_text('\n'.join(page))
    return path
