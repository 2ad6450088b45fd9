"""Plots of the closed-loop report (matplotlib, Agg): the drives from above, the metrics as bars.

World frame as sim.scene defines it (x along the road, y to the left), drawn with x to the right
and y up, equal aspect, cropped to where the cars drove.
"""
from typing import Dict

import numpy as np

from ar1_ros.evaluation.closed_loop import EpisodeResult
from ar1_ros.evaluation.closed_loop_suite import CaseResult
from ar1_ros.evaluation.plots import png, pyplot
from ar1_ros.sim.scene import RoadGeometry

COLOURS = {'expert': 'tab:green', 'cv': 'tab:orange', 'model': 'tab:blue'}
# Drawn in this order, each thinner than the one before, so identical paths stay visible.
WIDTHS = {'expert': 5.0, 'cv': 3.0, 'model': 1.5}
LABELS = {'expert': 'expert', 'cv': 'constant velocity', 'model': 'model (AR1)'}
# (key, title, unit) of the bars in summary_png, one panel each.
BARS = (('collision_rate', 'collision rate', ''), ('off_road_rate', 'off-road rate', ''),
        ('progress_rel', 'progress vs expert', ''), ('comfort_rate', 'comfortable windows', ''),
        ('min_ade_3s', 'minADE 3 s', 'm'), ('min_ade_6_4s', 'minADE 6.4 s', 'm'))
_MARGIN_M = 15.0
MIN_ASPECT = 0.3


def _pose_at(result: EpisodeResult, t_s: float) -> np.ndarray:
    """Return the (x, y) driven at the pose nearest to time t_s [s]."""
    index = int(np.argmin(np.abs(result.poses[:, 0] - t_s)))
    return result.poses[index, 1:3]


def draw_road(ax, geometry: RoadGeometry, route=None) -> None:
    """Draw the road surfaces and markings (and the route, (N, 2), if given) from above."""
    for surface in geometry.surfaces:
        ax.fill(surface[:, 0], surface[:, 1], color='0.88', zorder=0)
    for marking in geometry.markings:
        ax.plot(marking.points[:, 0], marking.points[:, 1], color='0.6', lw=0.6,
                ls='--' if marking.style == 'dashed' else '-', zorder=1)
    route = np.asarray(route if route is not None else [])
    if route.ndim == 2 and len(route) > 1:
        ax.plot(route[:, 0], route[:, 1], color='0.4', lw=0.8, ls=':', label='route', zorder=1)


def _drive(ax, result: EpisodeResult) -> None:
    """Draw the driven path, the other vehicles where the episode ended, and its faults."""
    colour = COLOURS.get(result.policy, 'black')
    poses = result.poses
    ax.plot(poses[:, 1], poses[:, 2], color=colour, lw=WIDTHS.get(result.policy, 2.0),
            alpha=0.8, label=LABELS.get(result.policy, result.policy))
    for other in result.others:
        corners = np.vstack([other.corners(), other.corners()[:1]])
        ax.plot(corners[:, 0], corners[:, 1], color=colour, lw=0.8, alpha=0.7, zorder=2)
    if result.collision_time_s is not None:
        x, y = _pose_at(result, result.collision_time_s)
        ax.plot([x], [y], marker='X', color='tab:red', ms=11, mec='black', ls='none',
                label='collision', zorder=5)
    if result.off_road_time_s is not None:
        x, y = _pose_at(result, result.off_road_time_s)
        ax.plot([x], [y], marker='o', mfc='none', mec='tab:red', mew=2, ms=11, ls='none',
                label='left the road', zorder=5)


def extent(xy: np.ndarray) -> np.ndarray:
    """Return the (2, 2) low/high corners [m] of the area to draw around points xy (N, 2).

    The points plus a margin, made at least MIN_ASPECT as tall as wide so that a long straight
    road is not drawn as a hairline.
    """
    low, high = xy.min(axis=0) - _MARGIN_M, xy.max(axis=0) + _MARGIN_M
    grow = max(MIN_ASPECT * (high[0] - low[0]) - (high[1] - low[1]), 0.0) / 2
    return np.array([low - [0.0, grow], high + [0.0, grow]])


def bev_axes(xy: np.ndarray, geometry: RoadGeometry, route=None):
    """Return (fig, ax): a bird's-eye figure around points xy (N, 2) [m] with the road drawn."""
    plt = pyplot()
    box = extent(xy)
    span = box[1] - box[0]
    width = 11.0
    fig, ax = plt.subplots(figsize=(width, float(np.clip(width * span[1] / span[0], 3.0, 9.0))))
    draw_road(ax, geometry, route)
    ax.set_xlim(box[0, 0], box[1, 0])  # fixed limits: later plots do not rescale the view
    ax.set_ylim(box[0, 1], box[1, 1])
    ax.set_aspect('equal', adjustable='box')
    ax.set_xlabel('x [m]')
    ax.set_ylabel('y [m] (left)')
    return fig, ax


def bev_png(case: CaseResult) -> bytes:
    """Return one case from above: road, route, every policy's path, collisions, off-road."""
    episodes = [case.episodes[p] for p in ('expert', 'cv', 'model') if p in case.episodes]
    fig, ax = bev_axes(np.concatenate([e.poses[:, 1:3] for e in episodes if len(e.poses)]),
                       case.geometry, case.route)
    for result in episodes:
        _drive(ax, result)
    start = episodes[0].poses[0, 1:3]
    ax.plot([start[0]], [start[1]], marker='>', color='black', ms=8, ls='none', label='start')
    ax.set_title(f'{case.scenario}, seed {case.seed}')
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=8, loc='upper left',
              bbox_to_anchor=(1.01, 1.0))
    return png(fig)


def summary_png(aggregate: Dict[str, Dict]) -> bytes:
    """Return bars of the aggregated metrics, one panel per metric, one bar per policy.

    A policy without a value for a metric (e.g. the expert's minADE) gets no bar.
    """
    plt = pyplot()
    policies = list(aggregate)
    fig, axes = plt.subplots(1, len(BARS), figsize=(2.6 * len(BARS), 3.2))
    for ax, (key, title, unit) in zip(axes, BARS, strict=True):
        values = [aggregate[p].get(key) for p in policies]
        for i, (policy, value) in enumerate(zip(policies, values, strict=True)):
            if value is None:
                ax.text(i, 0, 'n/a', ha='center', va='bottom', fontsize=8, color='0.4')
                continue
            ax.bar(i, value, color=COLOURS.get(policy, 'tab:gray'))
            ax.text(i, value, f'{value:.2f}', ha='center', va='bottom', fontsize=8)
        ax.set_xticks(range(len(policies)), policies, fontsize=8)
        ax.set_title(title + (f' [{unit}]' if unit else ''), fontsize=9)
        ax.margins(y=0.2)
        top = max([v for v in values if v is not None] + [0.0])
        ax.set_ylim(0.0, top * 1.2 if top > 0 else 1.0)
        ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    return png(fig)
