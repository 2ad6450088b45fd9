"""The report's plots (matplotlib, Agg backend: no display needed), returned as PNG bytes.

matplotlib is imported inside the functions so importing this module stays cheap.
"""
import io
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ar1_ros.evaluation.metrics import best_sample, plan_sample, xy_errors
from ar1_ros.evaluation.records import KeyframeRecord

# Timelines drawn in summary_png(); further bags are named in a note on the figure.
MAX_TIMELINES = 8
_MARKS = {'rejected': ('x', 'tab:red'), 'failed': ('X', 'black'), 'skipped': ('|', 'tab:gray')}


def pyplot():
    """Return matplotlib.pyplot on the Agg backend (imported on first use: it is slow)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def png(fig, dpi: int = 80) -> bytes:
    """Return figure `fig` as PNG bytes and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=dpi, bbox_inches='tight')
    pyplot().close(fig)
    return buffer.getvalue()


def _bev(ax, xyz: np.ndarray, **style) -> None:
    """Plot ego-frame points (N, 3) from above: x forward drawn up, y left drawn left."""
    xyz = np.asarray(xyz)
    ax.plot(-xyz[:, 1], xyz[:, 0], **style)


def _seconds(ax, xyz: np.ndarray, dt: float, color: str) -> None:
    """Mark every whole second along a future path (point i is at t = (i + 1) * dt)."""
    every = max(int(round(1.0 / dt)), 1)
    marks = np.asarray(xyz)[every - 1::every]
    ax.plot(-marks[:, 1], marks[:, 0], 'o', color=color, ms=3)


def _samples(ax, record: KeyframeRecord) -> None:
    """Draw every sample thin (rejected ones dashed red) and the plan (or sample 0) bold."""
    plan = plan_sample(record)
    for k, xyz in enumerate(record.pred_xyz):
        valid = k >= len(record.valid) or record.valid[k]
        if k != plan:
            _bev(ax, xyz, color='tab:cyan' if valid else 'tab:red', lw=1, alpha=0.8,
                 ls='-' if valid else '--', label='sample' if valid else 'rejected sample')
    if record.plan_index is not None:
        _bev(ax, record.pred_xyz[plan], color='tab:blue', lw=2.5, label='plan')
    else:
        _bev(ax, record.pred_xyz[plan], color='tab:red', lw=2.5, ls='--',
             label='sample 0 (all rejected)')
    _seconds(ax, record.pred_xyz[plan], record.dt, 'tab:blue')


def _legend(ax, **kwargs) -> None:
    """Draw a legend with each label once (none when nothing is labelled)."""
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    if unique:
        ax.legend(unique.values(), unique.keys(), **kwargs)


def bev_png(record: KeyframeRecord) -> bytes:
    """Return the bird's-eye plot of one keyframe: history, recorded future, samples, plan.

    Ego frame at t0, equal aspect, x (forward) up and y (left) to the left; dots mark each
    whole second on the recorded future and on the plan.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(3.6, 4.6))
    if record.history_xyz is not None:
        _bev(ax, record.history_xyz, color='0.45', lw=2, label='history')
    if record.gt_xyz is not None:
        _bev(ax, record.gt_xyz, color='tab:green', lw=3, alpha=0.8, label='recorded')
        _seconds(ax, record.gt_xyz, record.dt, 'tab:green')
    if record.has_prediction:
        _samples(ax, record)
    ax.plot([0], [0], marker='^', color='black', ms=8, ls='none', label='ego at t0')
    ax.set_aspect('equal', adjustable='datalim')
    # Drawn at -y so that left is on the left; the ticks name y itself.
    ax.xaxis.set_major_formatter(lambda value, _: f'{-value + 0.0:g}')
    ax.set_xlabel('y [m] (left positive)')
    ax.set_ylabel('x forward [m]')
    ax.grid(alpha=0.3)
    _legend(ax, fontsize=7, loc='best')
    return png(fig)


def horizon_errors(records: Sequence[KeyframeRecord]) -> Optional[Tuple[np.ndarray, ...]]:
    """Return (t (T,), error of k* (N, T), error of sample 0 (N, T)) over keyframes with GT.

    k* is the min_ade sample (chosen on the full horizon). Shorter horizons are padded with
    NaN; t uses the first such keyframe's dt. None when no keyframe has a prediction and GT.
    """
    best, first, dt = [], [], None
    for record in records:
        if not (record.has_prediction and record.has_ground_truth):
            continue
        error = xy_errors(record.pred_xyz, record.gt_xyz)
        best.append(error[best_sample(error)])
        first.append(error[0])
        dt = dt or record.dt
    if not best:
        return None
    horizon = max(len(e) for e in best)

    def padded(rows: List[np.ndarray]) -> np.ndarray:
        return np.stack([np.pad(r, (0, horizon - len(r)), constant_values=np.nan)
                         for r in rows])
    return np.arange(1, horizon + 1) * dt, padded(best), padded(first)


def _horizon(ax, records: Sequence[KeyframeRecord]) -> None:
    errors = horizon_errors(records)
    if errors is None:
        ax.text(0.5, 0.5, 'no keyframe with ground truth', ha='center', transform=ax.transAxes)
        ax.set_axis_off()
        return
    t, best, first = errors
    ax.plot(t, np.nanmean(best, axis=0), color='tab:blue', lw=2,
            label='min_ade sample (k*), mean')
    ax.fill_between(t, np.nanpercentile(best, 25, axis=0), np.nanpercentile(best, 75, axis=0),
                    color='tab:blue', alpha=0.2, label='k*, 25-75 %')
    ax.plot(t, np.nanmean(first, axis=0), color='tab:orange', lw=2, label='sample 0 (ade), mean')
    ax.set_xlabel('time after t0 [s]')
    ax.set_ylabel('XY error [m]')
    ax.set_title(f'error over the horizon ({len(best)} keyframes with ground truth)')
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    _legend(ax, fontsize=8, loc='upper left')


def _timeline(ax, bag: str, rows: Sequence[KeyframeRecord]) -> None:
    """Plot min_ade and ade per keyframe of one bag against t0; mark the other outcomes."""
    start = min(r.t0_s for r in rows)
    for name, style in (('min_ade', {'color': 'tab:blue'}), ('ade', {'color': 'tab:orange'})):
        scored = [r for r in rows if name in r.metrics]
        ax.plot([r.t0_s - start for r in scored], [r.metrics[name] for r in scored], '.-',
                lw=1, label=name, **style)
    # Outcomes sit on the bottom edge (axes coordinates): they have no error value.
    bottom = ax.get_xaxis_transform()
    for status, (marker, color) in _MARKS.items():
        times = [r.t0_s - start for r in rows if r.status == status]
        if times:
            ax.plot(times, [0.04] * len(times), marker, color=color, ms=7, ls='none',
                    transform=bottom, label=f'{status} ({len(times)})')
    ax.set_title(f'{bag}: {len(rows)} keyframes', fontsize=10)
    ax.set_xlabel('t0 since the first keyframe [s]')
    ax.set_ylabel('error [m]')
    # Errors are >= 0: from zero, with headroom (a zoomed axis makes noise look like trends).
    ax.set_ylim(0, max(ax.get_ylim()[1] * 1.15, 1e-3))
    ax.grid(alpha=0.3)
    _legend(ax, fontsize=7, loc='upper right')


def _by_bag(records: Sequence[KeyframeRecord]) -> Dict[str, List[KeyframeRecord]]:
    rows: Dict[str, List[KeyframeRecord]] = {}
    for record in records:
        rows.setdefault(record.bag, []).append(record)
    return rows


def summary_png(records: Sequence[KeyframeRecord]) -> bytes:
    """Return the overview figure: error over the horizon, then a timeline per bag.

    At most MAX_TIMELINES bags get a timeline; a note names how many more there are.
    """
    plt = pyplot()
    bags = _by_bag(records)
    shown = list(bags.items())[:MAX_TIMELINES]
    fig, axes = plt.subplots(1 + len(shown), 1, figsize=(10, 3.4 * (1 + len(shown))),
                             squeeze=False)
    _horizon(axes[0, 0], records)
    for ax, (bag, rows) in zip(axes[1:, 0], shown, strict=True):
        _timeline(ax, bag, rows)
    if len(bags) > len(shown):
        fig.text(0.01, 0.0, f'{len(bags) - len(shown)} more bags not drawn: see metrics.csv',
                 fontsize=9)
    fig.tight_layout()
    return png(fig)
