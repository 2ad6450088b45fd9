"""The static HTML review page of `ar1 label review` (docs/labelling.md, "Review page").

One self-contained file, no network: the style and the script are the package files
review/page.css and review/page.js, inlined; pictures are JPEG data URIs; the bird's-eye views
inline SVG (data.review_bev). The cards are rendered here, so the page shows every label even
without its script; the script adds the review: edits, status, filters, saving and export.

What the script needs travels as one JSON block (<script type="application/json"
id="review-data">): the labels file's name, its sha256 (the localStorage key of saved edits),
the decisions, and per label its key 'bag@t0_ns', its JSON object with t0_ns as a string
(nanosecond stamps exceed the 2^53 a JavaScript number holds exactly; the export writes the
digits back as a JSON integer) and its table {decision: consistent or null}. '<', '>' and '&'
are written as JSON unicode escapes there, so no text in a label can end the block.
"""
import html
import json
from pathlib import Path
from typing import List, Sequence

from ar1_ros.data.label_review import ReviewItem, Shot
from ar1_ros.data.review_bev import bev_svg
from ar1_ros.runtime.presentation import DECISIONS

ASSETS = Path(__file__).resolve().with_name('review')
_VERDICT = {True: ('consistent', 'consistent with the recorded meta-action'),
            False: ('inconsistent', 'INCONSISTENT with the recorded meta-action'),
            None: ('unknown', 'consistency unknown (no meta-action)')}
_OPTION_MARK = {True: ' (agrees)', False: ' (disagrees)', None: ''}


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def asset(name: str) -> str:
    """Return the text of review/<name>; ValueError if it would end its inline element early."""
    text = (ASSETS / name).read_text(encoding='utf-8')
    closing = '</script' if name.endswith('.js') else '</style'
    if closing in text.lower():
        raise ValueError(f'{ASSETS / name} contains {closing!r}: it cannot be inlined')
    return text


def script_json(obj) -> str:
    """Return obj as JSON that is safe inside a <script> element (no '<', '>' or '&')."""
    text = json.dumps(obj, ensure_ascii=False, separators=(',', ':'))
    return text.replace('<', '\\u003c').replace('>', '\\u003e').replace('&', '\\u0026')


def page_data(items: Sequence[ReviewItem], labels_name: str, sha256: str) -> dict:
    """Return the JSON the page script reads (module docstring)."""
    stem = labels_name[:-len('.jsonl')] if labels_name.endswith('.jsonl') else labels_name
    return {'labels_file': labels_name, 'export_name': f'{stem}.reviewed.jsonl',
            'sha256': sha256, 'decisions': list(DECISIONS),
            'items': [{'key': item.key,
                       'label': dict(item.label.to_json(), t0_ns=str(item.label.t0_ns)),
                       'compatible': item.compatible} for item in items]}


def _figure(shot: Shot, alt: str, css: str) -> str:
    picture = (f'<img src="{shot.uri}" alt="{_esc(alt)}">' if shot.uri
               else f'<div class="missing">{_esc(shot.error or "no picture")}</div>')
    return (f'<figure class="{css}">{picture}<figcaption>{_esc(shot.caption)}</figcaption>'
            '</figure>')


def _seen(item: ReviewItem) -> str:
    """Return the problem, if any, and the frame strips: what the model sees at t0."""
    parts = [f'<p class="problem" data-role="problem">{_esc(item.problem)}</p>'
             if item.problem else '']
    parts += [f'<div class="strip" data-camera="{_esc(name)}"><span class="camera">'
              f'{_esc(name)}</span>'
              + ''.join(_figure(s, f'{name} {s.caption}', 'frame') for s in shots) + '</div>'
              for name, shots in item.strips]
    return ''.join(parts)


def _pictures(item: ReviewItem) -> str:
    """Return the overlay and the bird's-eye view (nothing without frames)."""
    pictures = []
    if item.overlay is not None:
        pictures.append(_figure(item.overlay, item.overlay.caption, 'overlay'))
    if item.history_xy is not None or item.future_xy is not None:
        svg = bev_svg(item.history_xy, item.future_xy, title=f"bird's-eye view, {item.key}")
        pictures.append(f'<figure class="bev-figure">{svg}<figcaption>history grey, recorded '
                        'future red, a dot every second</figcaption></figure>')
    return f'<div class="pictures">{"".join(pictures)}</div>' if pictures else ''


def _facts(item: ReviewItem) -> str:
    lb, meta = item.label, item.label.meta_action or {}
    motion = (f'recorded meta-action: longitudinal <b>{_esc(meta.get("longitudinal"))}</b>, '
              f'lateral <b>{_esc(meta.get("lateral"))}</b>' if meta else 'no meta-action')
    css, text = _VERDICT[item.compatible.get(lb.decision)]
    notes = ''.join(f'<li>{_esc(n)}</li>' for n in item.notes)
    return (f'<p class="facts"><span class="meta">{motion}</span> · draft: '
            f'<span class="provenance">{_esc(lb.provenance)}</span> · <span class="verdict '
            f'{css}" data-role="verdict">{text}</span></p>'
            + (f'<ul class="notes">{notes}</ul>' if notes else ''))


def _editor(item: ReviewItem, decisions: Sequence[str]) -> str:
    lb = item.label
    options = ''.join(
        f'<option value="{_esc(d)}"{" selected" if d == lb.decision else ""}>'
        f'{_esc(d)}{_OPTION_MARK[item.compatible.get(d)]}</option>' for d in decisions)
    components = '\n'.join(lb.critical_components)
    buttons = ''.join(f'<button type="button" data-role="{role}" title="{title}">{text}</button>'
                      for role, text, title in (
                          ('accept', 'Accept', 'accept the label as shown (key a)'),
                          ('reject', 'Reject', 'leave the label out of the export'),
                          ('reset', 'Reset', 'back to the draft, pending')))
    return ('<div class="editor">'
            f'<label>decision <select data-role="decision" title="decision">{options}</select>'
            '</label><label>Chain-of-Causation <textarea data-role="coc" rows="3" '
            f'title="the CoC text: the action first, then its cause">{_esc(lb.coc)}</textarea>'
            '</label><label>critical components, one per line <textarea '
            'data-role="components" rows="4" title="what the decision hinges on, one per line">'
            f'{_esc(components)}</textarea></label><div class="buttons">{buttons}</div></div>')


def _card(index: int, item: ReviewItem, decisions: Sequence[str]) -> str:
    lb = item.label
    sample = ('' if item.sample_t0_ns in (None, lb.t0_ns)
              else f' (frames at {item.sample_t0_ns / 1e9:.3f} s)')
    return (f'<section class="card" id="card-{index}" data-index="{index}" '
            f'data-key="{_esc(item.key)}" data-status="pending" '
            f'data-frames="{"no" if item.problem else "yes"}">'
            f'<header><h2><span class="bag">{_esc(lb.bag)}</span> <span class="t0">t0 '
            f'{lb.t0_ns / 1e9:.3f} s{sample}</span></h2><span class="keyframe">'
            f'{_esc(lb.notes)}</span><span class="status" data-role="status">pending</span>'
            f'</header><div class="card-body"><div class="seen">{_seen(item)}</div>'
            f'<div class="review">{_pictures(item)}{_facts(item)}{_editor(item, decisions)}'
            '</div></div></section>')


def _toolbar(labels_name: str, count: int, problems: Sequence[str]) -> str:
    filters = ''.join(f'<button type="button" data-filter="{f}" id="filter-{f}">{f}</button>'
                      for f in ('all', 'pending', 'inconsistent'))
    listed = ''.join(f'<li>{_esc(problem)}</li>' for problem in problems)
    return (f'<header class="toolbar"><h1>Label review: {_esc(labels_name)} ({count} labels)'
            f'</h1><div class="filters">show {filters}</div><span id="counter"></span>'
            '<button type="button" id="export" title="download the reviewed labels as JSONL">'
            'Export JSONL</button><span id="export-info"></span><button type="button" '
            'id="clear-saved" title="forget the edits saved in this browser">Clear saved review'
            '</button><p class="help">keys: j / k next / previous label, a accept</p>'
            + (f'<ul class="problems" id="problems">{listed}</ul>' if listed else '') +
            '<p id="errors" hidden></p></header>')


def render_page(items: Sequence[ReviewItem], labels_name: str, sha256: str,
                problems: Sequence[str] = ()) -> str:
    """Return the whole review page of `items` (input order) as HTML text.

    problems: what the reviewer must know beyond the cards (bags that failed, skipped lines).
    """
    cards: List[str] = [_card(i, item, DECISIONS) for i, item in enumerate(items)]
    data = script_json(page_data(items, labels_name, sha256))
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>Label review: {_esc(labels_name)}</title><style>{asset("page.css")}'
            f'</style></head><body>{_toolbar(labels_name, len(items), problems)}'
            f'<main id="cards">{"".join(cards)}</main>'
            f'<script type="application/json" id="review-data">{data}</script>'
            f'<script>{asset("page.js")}</script></body></html>\n')
