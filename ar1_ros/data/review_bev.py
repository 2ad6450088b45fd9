"""A bird's-eye view of one label's ego paths as inline SVG (for `ar1 label review`).

The paths are in the t0 ego frame (x forward, y left) [m]; the picture puts forward up and left
left, so it reads like the front camera. Drawn: a metre grid (its spacing in the corner), the
history in grey and the recorded future in colour from the ego origin, a dot every second on
both (t0 - 1 s on the history, t0 + 1 s ... on the future), and the ego at the origin as a
triangle pointing forward. The view fits every point with a margin and spans at least
MIN_SPAN_M, so a standing car does not fill the picture with one pixel of path.
"""
import html
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

MIN_SPAN_M = 12.0
MARGIN_M = 2.0
GRID_STEPS_M = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0)
MAX_GRID_LINES = 12
DT_S = 0.1  # the spacing of history and future poses
TICK_EVERY = 10  # poses per second


class _View:
    """Maps ego-frame metres (x forward, y left) to SVG pixels of a size x size picture."""

    def __init__(self, points: np.ndarray, size: int):
        low, high = points.min(axis=0), points.max(axis=0)
        self.span = max(float((high - low).max()) + 2 * MARGIN_M, MIN_SPAN_M)
        self.centre = (low + high) / 2.0
        self.size, self.scale = size, size / self.span

    def uv(self, x: float, y: float) -> Tuple[float, float]:
        """Return the pixel (u right, v down) of the ego-frame point (x, y) [m]."""
        return (self.size / 2 - (y - self.centre[1]) * self.scale,
                self.size / 2 - (x - self.centre[0]) * self.scale)

    def xy(self, x: float, y: float) -> str:
        """Return 'u,v' of the ego-frame point (x, y), as SVG point lists want it."""
        u, v = self.uv(x, y)
        return f'{u:.1f},{v:.1f}'

    def grid(self) -> List[str]:
        """Return the grid lines (through the origin: class bev-axis) and the spacing caption."""
        step = next((s for s in GRID_STEPS_M if self.span / s <= MAX_GRID_LINES),
                    GRID_STEPS_M[-1])
        half, out = self.span / 2, []
        for axis in (0, 1):  # 0: lines of constant x (across the picture), 1: of constant y
            low, high = self.centre[1 - axis] - half, self.centre[1 - axis] + half
            for k in range(math.ceil((self.centre[axis] - half) / step),
                           math.floor((self.centre[axis] + half) / step) + 1):
                ends = [(k * step, low), (k * step, high)]
                (u1, v1), (u2, v2) = (self.uv(*(e if axis == 0 else e[::-1])) for e in ends)
                css = 'bev-grid bev-axis' if k == 0 else 'bev-grid'
                out.append(f'<line class="{css}" x1="{u1:.1f}" y1="{v1:.1f}" x2="{u2:.1f}" '
                           f'y2="{v2:.1f}"/>')
        out.append(f'<text class="bev-caption" x="4" y="{self.size - 4}">grid {step:g} m</text>')
        return out


def _polyline(view: _View, xy: np.ndarray, css: str) -> str:
    points = ' '.join(view.xy(x, y) for x, y in xy)
    return f'<polyline class="{css}" points="{points}"/>'


def _ticks(view: _View, xy: np.ndarray, css: str, seconds: Sequence[int]) -> List[str]:
    """Return a dot (with its time as tooltip and text) at each xy (N, 2) of `seconds`."""
    out = []
    for (x, y), second in zip(xy, seconds, strict=True):
        u, v = view.uv(x, y)
        out.append(f'<circle class="{css}" cx="{u:.1f}" cy="{v:.1f}" r="2.5">'
                   f'<title>t0 {second:+d} s</title></circle>'
                   f'<text class="bev-tick-text" x="{u + 4:.1f}" y="{v:.1f}">{second:+d} s</text>')
    return out


def _ego(view: _View) -> str:
    nose, left, right = view.xy(1.5, 0.0), view.xy(-1.0, 0.9), view.xy(-1.0, -0.9)
    return f'<polygon class="bev-ego" points="{nose} {left} {right}"><title>ego at t0</title>' \
           '</polygon>'


def bev_svg(history_xy: Optional[np.ndarray], future_xy: Optional[np.ndarray],
            size: int = 240, title: str = "bird's-eye view") -> str:
    """Return the SVG of the history (16, 2) and recorded future (64, 2) [m], either may be None.

    History pose k lies at t0 - (N - 1 - k) * 0.1 s, future pose i at t0 + (i + 1) * 0.1 s.
    """
    history = np.zeros((0, 2)) if history_xy is None else np.asarray(history_xy, float)[:, :2]
    future = np.zeros((0, 2)) if future_xy is None else np.asarray(future_xy, float)[:, :2]
    history = history[np.isfinite(history).all(axis=1)]
    future = future[np.isfinite(future).all(axis=1)]
    view = _View(np.concatenate([np.zeros((1, 2)), history, future]), size)
    parts = [f'<title>{html.escape(title)}</title>', *view.grid()]
    if len(history):
        parts.append(_polyline(view, history, 'bev-history'))
        back = np.arange(len(history) - 1 - TICK_EVERY, -1, -TICK_EVERY)
        parts += _ticks(view, history[back], 'bev-tick bev-history-tick',
                        [-(len(history) - 1 - k) // TICK_EVERY for k in back])
    if len(future):
        parts.append(_polyline(view, np.concatenate([np.zeros((1, 2)), future]), 'bev-future'))
        ahead = np.arange(TICK_EVERY - 1, len(future), TICK_EVERY)
        parts += _ticks(view, future[ahead], 'bev-tick bev-future-tick',
                        [(i + 1) // TICK_EVERY for i in ahead])
    parts.append(_ego(view))
    return (f'<svg class="bev" xmlns="http://www.w3.org/2000/svg" width="{size}" '
            f'height="{size}" viewBox="0 0 {size} {size}" role="img">' + ''.join(parts)
            + '</svg>')
