"""RViz markers of a plan: frame-locked path lines and the wrapped reasoning text.

Markers are frame-locked to the ego frame so RViz re-transforms them every frame instead of
pinning them where the car was when they arrived (which makes a path lag metres behind at
speed). No DELETEALL: every marker has a fixed (namespace, id) and is replaced in place; ids
that vanish (fewer samples than last time) are deleted one by one. A lifetime makes a plan
disappear from the screen when plans stop coming (rejected or stale), rather than linger.
"""
from typing import List, Sequence, Set, Tuple

from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
import numpy as np
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

PLAN_NS, SAMPLES_NS, TEXT_NS = 'ar1_plan', 'ar1_samples', 'ar1_reasoning'
PLAN_COLOR = ColorRGBA(r=0.1, g=0.9, b=0.2, a=0.9)
SAMPLE_COLOR = ColorRGBA(r=0.2, g=0.6, b=1.0, a=0.5)
TEXT_COLOR = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)


def _line(header: Header, ns: str, marker_id: int, xyz: np.ndarray, width: float,
          z_offset: float, color: ColorRGBA, lifetime: Duration) -> Marker:
    marker = Marker(header=header, ns=ns, id=marker_id, type=Marker.LINE_STRIP,
                    action=Marker.ADD, frame_locked=True, color=color, lifetime=lifetime)
    marker.pose.orientation.w = 1.0
    marker.scale.x = width
    # The path starts at the ego origin (t0 pose), then the 64 planned points.
    marker.points = [Point(x=0.0, y=0.0, z=z_offset)] + [
        Point(x=float(p[0]), y=float(p[1]), z=float(p[2]) + z_offset) for p in xyz]
    return marker


def _text(header: Header, lines: Sequence[str], z_offset: float,
          lifetime: Duration) -> Marker:
    marker = Marker(header=header, ns=TEXT_NS, id=0, type=Marker.TEXT_VIEW_FACING,
                    action=Marker.ADD, frame_locked=True, color=TEXT_COLOR, lifetime=lifetime,
                    text='\n'.join(lines))
    marker.pose.position.z = 4.0 + z_offset
    marker.pose.orientation.w = 1.0
    marker.scale.z = 0.6
    return marker


def plan_markers(header: Header, samples_xyz: np.ndarray, plan_index: int,
                 text_lines: Sequence[str], width: float, z_offset: float,
                 lifetime: Duration, previous: Set[Tuple[str, int]]) -> MarkerArray:
    """Return markers for samples_xyz (S, N, 3) with sample `plan_index` drawn as the plan.

    previous: the (namespace, id) pairs published last time; pairs not drawn now are deleted.
    """
    header = Header(stamp=header.stamp, frame_id=header.frame_id)
    markers: List[Marker] = [
        _line(header, PLAN_NS, 0, samples_xyz[plan_index], width, z_offset, PLAN_COLOR,
              lifetime)]
    for index, xyz in enumerate(samples_xyz):
        if index != plan_index:
            markers.append(_line(header, SAMPLES_NS, index, xyz, width / 3, z_offset,
                                 SAMPLE_COLOR, lifetime))
    if text_lines:
        markers.append(_text(header, text_lines, z_offset, lifetime))
    drawn = {(m.ns, m.id) for m in markers}
    for ns, marker_id in sorted(previous - drawn):
        markers.append(Marker(header=header, ns=ns, id=marker_id, action=Marker.DELETE))
    return MarkerArray(markers=markers)


def marker_keys(array: MarkerArray) -> Set[Tuple[str, int]]:
    """Return the (namespace, id) pairs an array draws (its ADD markers)."""
    return {(m.ns, m.id) for m in array.markers if m.action == Marker.ADD}


STATUS_COLORS = (ColorRGBA(r=0.3, g=1.0, b=0.3, a=1.0), ColorRGBA(r=1.0, g=0.8, b=0.1, a=1.0),
                 ColorRGBA(r=1.0, g=0.2, b=0.2, a=1.0))


def status_markers(header: Header, lines: Sequence[str], level: int) -> MarkerArray:
    """Return one text marker, 6 m above the ego frame, listing the diagnostic statuses.

    RViz has no diagnostics display of its own; this puts the node's health next to its plan,
    coloured by the worst level (0 OK, 1 WARN, 2 ERROR).
    """
    marker = Marker(header=header, ns='ar1_status', id=0, type=Marker.TEXT_VIEW_FACING,
                    action=Marker.ADD, frame_locked=True, text='\n'.join(lines),
                    color=STATUS_COLORS[min(max(level, 0), 2)])
    marker.pose.position.z = 6.0
    marker.pose.orientation.w = 1.0
    marker.scale.z = 0.5
    return MarkerArray(markers=[marker])
