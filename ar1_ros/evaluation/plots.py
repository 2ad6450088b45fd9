"""The report's plots (matplotlib, Agg backend), returned as PNG bytes."""
import io
from typing import List, Optional, Sequence

import numpy as np

from ar1_ros.evaluation.records import KeyframeRecord

STATUS_COLORS = {'ok': 'tab:blue', 'rejected': 'tab:red', 'failed': 'black',
                 'skipped': 'tab:gray'}


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def png(fig) -> bytes:
    """Return `fig` as PNG bytes and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=80, bbox_inches='tight')
    _pyplot().close(fig)
    return buffer.getvalue()


def _bev(ax, xyz: np.ndarray, **style) -> None:
    """Plot points in the ego frame: x forward drawn up, y left drawn left."""
    ax.plot(-xyz[:, 1], xyz[:, 0], **style)


def bev_png(record: KeyframeRecord) -> bytes:
    """Return the bird's-eye plot of one keyframe: history, recorded future, samples, plan."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(3.6, 4.4))
    if record.history_xyz is not None:
        _bev(ax, record.history_xyz, color='0.5', lw=2, label='history')
    if record.gt_xyz is not None:
        _bev(ax, record.gt_xyz, color='tab:green', lw=2.5, label='recorded')
    if record.pred_xyz is not None:
        plan = record.plan_index
        for k, xyz in enumerate(record.pred_xyz):
            if k != plan:
                _bev(ax, xyz, color='tab:red' if not record.valid[k] else 'tab:cyan', lw=1,
                     alpha=0.7, label='rejected' if not record.valid[k] else 'sample')
        if plan is not None:
            _bev(ax, record.pred_xyz[plan], color='tab:blue', lw=2.5, label='plan')
    ax.plot([0], [0], 'k^', ms=8)
    ax.set_aspect('equal', adjustable='datalim')
    ax.set_xlabel('lateral [m] (left is left)')
    ax.set_ylabel('forward [m]')
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc='best')
    ax.grid(alpha=0.3)
    return png(fig)


def horizon_errors(records: Sequence[KeyframeRecord]):
    """Return (t (T,), best-sample error (N, T), sample-0 error (N, T)) over keyframes with GT."""
    best, first = [], []
    for r in records:
        if r.pred_xyz is None or r.gt_xyz is None:
            continue
        error = np.linalg.norm(r.pred_xyz[..., :2] - r.gt_xyz[None, :, :2], axis=-1)
        best.append(error[int(np.argmin(error.mean(axis=1)))])
        first.append(error[0])
    if not best:
        return None
    dt = records[0].dt
    return np.arange(1, len(best[0]) + 1) * dt, np.stack(best), np.stack(first)


def _horizon(ax, records: Sequence[KeyframeRecord]) -> None:
    errors = horizon_errors(records)
    if errors is None:
        ax.text(0.5, 0.5, 'no keyframe with ground truth', ha='center', transform=ax.transAxes)
        return
    t, best, first = errors
    ax.plot(t, best.mean(axis=0), color='tab:blue', label='best sample (minADE choice)')
    ax.fill_between(t, np.percentile(best, 25, axis=0), np.percentile(best, 75, axis=0),
                    color='tab:blue', alpha=0.2, label='best sample, 25-75 %')
    ax.plot(t, first.mean(axis=0), color='tab:orange', label='sample 0 (ADE)')
    ax.set_xlabel('time after t0 [s]')
    ax.set_ylabel('XY error [m]')
    ax.set_title(f'error over the horizon ({len(best)} keyframes)')
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def _timeline(ax, records: Sequence[KeyframeRecord]) -> None:
    for bag in sorted({r.bag for r in records}):
        rows = [r for r in records if r.bag == bag]
        t0 = rows[0].t0_s
        scored = [r for r in rows if 'min_ade' in r.metrics]
        ax.plot([r.t0_s - t0 for r in scored], [r.metrics['min_ade'] for r in scored], '.-',
                label=f'{bag} minADE')
        for status in ('rejected', 'failed', 'skipped'):
            marks = [r.t0_s - t0 for r in rows if r.status == status]
            if marks:
                ax.plot(marks, [0] * len(marks), 'x', color=STATUS_COLORS[status],
                        label=f'{bag} {status}')
    ax.set_xlabel('time in bag [s]')
    ax.set_ylabel('minADE [m]')
    ax.set_title('per keyframe')
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def summary_png(records: List[KeyframeRecord]) -> Optional[bytes]:
    """Return the overview figure: error over the horizon and minADE per keyframe."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    _horizon(axes[0], records)
    _timeline(axes[1], records)
    return png(fig)
