"""Pinhole images of a sim Scene from one rig camera: sky, grass, road, painted lines, boxes.

The camera model is runtime.overlay's (camera_from_ego, no distortion), so paths the node draws
with overlay.project land on this road. Pixel (i, j) is centred on (u, v) = (i, j), as in OpenCV.
Painter's order, exact for flat ground under boxes seen from above: the road (asphalt, then
lines) hazed per pixel by its ground distance, then shadows, then boxes farthest first. Polygons
are clipped in camera coordinates (Sutherland-Hodgman, near plane and a guard band) before they
are projected. All work is batched numpy, and images are bit-for-bit deterministic.
"""
from typing import List, NamedTuple, Sequence, Tuple

import cv2
import numpy as np

from ar1_ros.runtime.overlay import NEAR_M, camera_from_ego
from ar1_ros.runtime.rotations import rot_z
from ar1_ros.sim.rig import RigCamera
from ar1_ros.sim.scene import Box, Marking, RoadGeometry, Scene

PIECE_M = 3.0  # static road pieces are at most this long on a side [m]: cheap to clip
MARKING_Z_M = 0.01  # lines float above the asphalt so their depth never ties with it
DASH_M, DASH_PERIOD_M = 3.0, 9.0  # dashed lines: 3 m painted every 9 m
SKY_ZENITH, HAZE = np.array([70.0, 120.0, 200.0]), np.array([196.0, 208.0, 222.0])
GRASS, ASPHALT = (84, 116, 62), (86, 86, 90)
GLASS, LIGHT, SHADOW = (34, 42, 52), (200, 30, 30), (38, 38, 40)
_SUN = np.array([-0.35, 0.3, 0.89]) / np.linalg.norm([-0.35, 0.3, 0.89])  # world light direction
_SHIFT = 4  # fillPoly fractional bits: vertices at 1/16 px so slow motion stays smooth
_GUARD_PX = 1024.0  # clip this far outside the image: int32 coordinates with room to spare

# Vehicle parts on a unit box (x, y in [-1, 1] of half length / width, z in [0, 1] of height):
# (axis, value on that axis, range on the next axis, range on the last one, part).
_BODY = ((2, 0, (-1.1, 1.1), (-1.15, 1.15), 'shadow'), (2, 1, (-1, 1), (-1, 1), 'body'),
         *((axis, v, (-1, 1), (0, 1), 'body') for axis in (0, 1) for v in (1, -1)),
         *((0, -1, lamp, (0.35, 0.5), 'light') for lamp in ((0.55, 0.85), (-0.85, -0.55))))
_CAR = _BODY + (*((0, v, (-0.8, 0.8), (0.56, 0.88), 'glass') for v in (1, -1)),
                *((1, v, (-0.55, 0.5), (0.56, 0.88), 'glass') for v in (1, -1)))
_TRUCK = _BODY + ((0, 1, (-0.85, 0.85), (0.6, 0.85), 'glass'),  # cab windows only
                  *((1, v, (0.72, 0.95), (0.6, 0.85), 'glass') for v in (1, -1)))
_PART_RGB = {'glass': GLASS, 'light': LIGHT, 'shadow': SHADOW}


class _Layer(NamedTuple):
    """Static ground polygons, one fillPoly call per group.

    pieces (N, K, 3) world [m], padded by repeating the last vertex; group (N,) ascending (OpenCV
    fills even-odd, so polygons that may overlap go to different calls); rgb: per group.
    """

    pieces: np.ndarray
    group: np.ndarray
    rgb: List[Tuple[int, int, int]]
    reach: np.ndarray  # (N, 3): bounding-box centre x, y and radius [m], to skip far pieces


def clip_polygons(polys: np.ndarray, normal, offset) -> Tuple[np.ndarray, np.ndarray]:
    """Clip polygons to the half-spaces normal . p >= offset (batched Sutherland-Hodgman).

    polys: (M, K, D) vertices, padded by repeating one; normal: (D,) or (M, D); offset: scalar
    or (M,). Returns (clipped (M', K', D), rows (M',) indices into polys), dropping polygons
    left with < 3 vertices. Concave polygons may gain zero-width bridges, which fill as nothing.
    """
    m, k, dim = polys.shape
    dist = (polys * np.reshape(normal, (-1, 1, dim))).sum(axis=2) - np.reshape(offset, (-1, 1))
    inside, ahead = dist >= 0.0, np.roll(dist, -1, axis=1)
    crosses = inside != (ahead >= 0.0)
    t = dist / np.where(crosses, dist - ahead, 1.0)
    cut = polys + t[..., None] * (np.roll(polys, -1, axis=1) - polys)
    candidates = np.stack([polys, cut], axis=2).reshape(m, 2 * k, dim)
    # Repeated vertices (padding) are dropped, else padding would pile up with every clip.
    distinct = (polys != np.roll(polys, -1, axis=1)).any(axis=2)
    keep = np.stack([inside & distinct, crosses], axis=2).reshape(m, 2 * k)
    count = keep.sum(axis=1)
    rows = np.flatnonzero(count >= 3)
    if not len(rows):
        return np.zeros((0, 3, dim)), rows
    order = np.argsort(~keep[rows], axis=1, kind='stable')  # kept vertices first, in order
    slots = np.minimum(np.arange(count[rows].max()), count[rows, None] - 1)
    order = np.take_along_axis(order, slots, axis=1)
    return np.take_along_axis(candidates[rows], order[..., None], axis=1), rows


def _stack(batches: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate 2D polygon batches (Mi, Ki, 2), padding each by repeating its last vertex."""
    batches = [b for b in batches if len(b)]
    k = max([b.shape[1] for b in batches], default=3)
    return np.concatenate([np.zeros((0, k, 2))] + [np.concatenate(
        [b, np.repeat(b[:, -1:], k - b.shape[1], axis=1)], axis=1) for b in batches])


def grid_pieces(polygon: np.ndarray, cell: float = PIECE_M) -> np.ndarray:
    """Cut a simple polygon (N, 2) [m] by the grid lines x, y = k * cell: pieces (M, K, 2) [m].

    Pieces are halved at the grid line nearest their middle, across their longer side, until
    each fits a cell: O(N log N) for a long lane sampled every few metres. Zero-area pieces
    (bridges left by clipping a concave polygon) are dropped.
    """
    pieces, done = np.asarray(polygon, dtype=np.float64).reshape(1, -1, 2), []
    while len(pieces):
        low, high = pieces.min(axis=1), pieces.max(axis=1)
        small = (high - low <= cell * (1.0 + 1e-9)).all(axis=1)
        done.append(pieces[small])
        pieces, low, high = pieces[~small], low[~small], high[~small]
        axis = np.argmax(high - low, axis=1)
        low, high = low[np.arange(len(axis)), axis], high[np.arange(len(axis)), axis]
        cut = np.clip(np.round((low + high) / (2 * cell)) * cell,
                      (np.floor(low / cell) + 1) * cell, (np.ceil(high / cell) - 1) * cell)
        # Rounding may put the grid line on an edge; the middle always makes progress.
        cut = np.where((cut > low + 1e-6) & (cut < high - 1e-6), cut, (low + high) / 2)
        pieces = _stack([clip_polygons(pieces, s * np.eye(2)[axis], s * cut)[0] for s in (-1, 1)])
    pieces, _ = clip_polygons(_stack(done), np.zeros(2), -1.0)  # a no-op cut drops repeats
    x, y = pieces[..., 0], pieces[..., 1]
    area = 0.5 * np.abs((x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y).sum(axis=1))
    return pieces[area > 1e-6]


def marking_quads(marking: Marking, cell: float = PIECE_M) -> np.ndarray:
    """Return the painted quads (S, 4, 2) [m] of a line: a miter-joined ribbon of width_m.

    Segments are at most `cell` long; dashed lines keep DASH_M of every DASH_PERIOD_M.
    """
    if marking.style not in ('solid', 'dashed'):
        raise ValueError(f"marking style must be 'solid' or 'dashed', got {marking.style!r}")
    points = np.asarray(marking.points, dtype=np.float64).reshape(-1, 2)
    arc = np.r_[0.0, np.cumsum(np.hypot(*np.diff(points, axis=0).T))]
    stops = [arc, np.arange(0.0, arc[-1], cell)]
    if marking.style == 'dashed':
        stops.append((np.arange(0.0, arc[-1], DASH_PERIOD_M)[:, None] + [0.0, DASH_M]).ravel())
    at = np.unique(np.concatenate(stops))
    at = at[np.r_[True, np.diff(at) > 1e-6] & (at <= arc[-1])]
    if len(at) < 2:
        return np.zeros((0, 4, 2))
    # Interpolate on the arc length: ties in `arc` (repeated points) are harmless to np.interp.
    line = np.stack([np.interp(at, arc, points[:, i]) for i in (0, 1)], axis=1)
    along = np.diff(line, axis=0) / np.diff(at)[:, None]  # unit: each step is on one segment
    normal = np.stack([-along[:, 1], along[:, 0]], axis=1)
    before, after = np.r_[normal[:1], normal], np.r_[normal, normal[-1:]]  # at each vertex
    miter = before + after
    miter /= np.maximum(np.linalg.norm(miter, axis=1, keepdims=True), 1e-9)
    # Stretch the joint so each strip keeps its width; capped so hairpins stay bounded.
    side = miter * (0.5 * marking.width_m / np.maximum((miter * after).sum(axis=1), 0.5))[:, None]
    quads = np.stack([line[:-1] + side[:-1], line[:-1] - side[:-1],
                      line[1:] - side[1:], line[1:] + side[1:]], axis=1)
    if marking.style == 'dashed':
        quads = quads[(0.5 * (at[:-1] + at[1:])) % DASH_PERIOD_M < DASH_M]
    return quads


def _layer(pieces: Sequence[np.ndarray], rgb: Sequence[tuple], z: float) -> _Layer:
    """Stack per-group 2D pieces (Ni, Ki, 2) into one _Layer at height z [m]."""
    flat = _stack(pieces)
    centre = 0.5 * (flat.min(axis=1) + flat.max(axis=1))
    reach = np.c_[centre, np.linalg.norm(flat.max(axis=1) - centre, axis=1)]
    group = np.repeat(np.arange(len(pieces)), [len(p) for p in pieces])
    ground = np.concatenate([flat, np.full(flat.shape[:2] + (1,), z)], axis=2)
    return _Layer(ground, group, [tuple(int(c) for c in colour) for colour in rgb], reach)


def _haze(distance: np.ndarray, max_range_m: float) -> np.ndarray:
    """Return the haze weight (0: clear, 1: all haze) at a distance [m]; 1 from max_range_m on."""
    return np.clip(distance / max_range_m, 0.0, 1.0) ** 2


def _background(camera: RigCamera, max_range_m: float) -> Tuple[np.ndarray, np.ndarray]:
    """Return the static sky over flat grass (H, W, 3) uint8 and the ground haze (H, W) float32.

    Per pixel ray in the ego frame: above the horizon a sky gradient from the haze colour up to
    SKY_ZENITH; below it grass, whose haze weight follows the ray's ground distance.
    """
    rotation, _ = camera_from_ego(camera.extrinsics)
    u, v = np.meshgrid(np.arange(camera.width), np.arange(camera.height))
    ray = np.dstack(((u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones(u.shape)))
    up = (ray @ rotation)[..., 2] / np.linalg.norm(ray, axis=-1)  # sin(elevation), ego frame
    ground = up < 0.0
    distance = max(camera.extrinsics[2], 0.01) / np.maximum(-up, 1e-9)
    haze = np.where(ground, _haze(distance, max_range_m), 0.0).astype(np.float32)
    sky = HAZE + (SKY_ZENITH - HAZE) * (np.clip(up / 0.6, 0.0, 1.0) ** 0.7)[..., None]
    image = np.where(ground[..., None], np.array(GRASS, dtype=np.float64), sky)
    return np.rint(image).astype(np.uint8), haze


def _planes(camera: RigCamera, margin_px: float) -> np.ndarray:
    """Return optical half-spaces n . p >= c (5, 4): z >= NEAR_M, image sides + margin_px."""
    fx, fy, cx, cy, w, h = camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height
    m = margin_px
    return np.array([[0, 0, 1, NEAR_M], [fx, 0, cx + m, 0], [-fx, 0, w - cx + m, 0],
                     [0, fy, cy + m, 0], [0, -fy, h - cy + m, 0]], dtype=np.float64)


def _template(parts: Sequence[tuple]) -> Tuple[np.ndarray, np.ndarray, Tuple[str, ...]]:
    """Return unit-box quads (F, 4, 3), outward normals (F, 3) and part names of _CAR/_TRUCK."""
    quads, normals = np.zeros((len(parts), 4, 3)), np.zeros((len(parts), 3))
    for i, (axis, value, (a0, a1), (b0, b1), _) in enumerate(parts):
        first, second = (j for j in range(3) if j != axis)
        quads[i, :, axis] = value
        quads[i, :, first], quads[i, :, second] = (a0, a1, a1, a0), (b0, b0, b1, b1)
        normals[i, axis] = 1.0 if axis == 2 else value  # shadows face up like roofs
    return quads, normals, tuple(part[-1] for part in parts)


_TEMPLATES = {'car': _template(_CAR), 'truck': _template(_TRUCK)}


def _vehicle_parts(boxes: Sequence[Box]) -> Tuple[np.ndarray, ...]:
    """Return parts' world quads (F, 4, 3) [m], normals, colours, owner box index, shadow flag."""
    quads, normals, rgb, owner, shadow = [], [], [], [], []
    for i, box in enumerate(boxes):
        unit, unit_normals, names = _TEMPLATES['truck' if box.kind == 'truck' else 'car']
        rotation = rot_z(box.yaw)
        quads.append(unit * [box.length / 2, box.width / 2, box.height] @ rotation.T
                     + [box.x, box.y, 0.0])
        normals.append(unit_normals @ rotation.T)
        rgb += [_PART_RGB.get(name, box.rgb) for name in names]
        owner += [i] * len(names)
        shadow += [name == 'shadow' for name in names]
    return (np.concatenate(quads), np.concatenate(normals), np.array(rgb, dtype=np.float64),
            np.array(owner), np.array(shadow))


class Renderer:
    """Render Scenes on one road from one rig camera as (H, W, 3) uint8 RGB images.

    geometry: the static road, prepared here once (render does not read scene.geometry: its
    scenes must show this road); camera: the rig camera; max_range_m: nothing farther is
    drawn, and the haze reaches the sky's horizon colour there [m].
    """

    def __init__(self, geometry: RoadGeometry, camera: RigCamera, max_range_m: float = 150.0):
        if not max_range_m > NEAR_M:
            raise ValueError(f'max_range_m must exceed {NEAR_M} m, got {max_range_m}')
        self.camera, self.max_range_m = camera, float(max_range_m)
        self._rotation, self._translation = camera_from_ego(camera.extrinsics)
        surfaces = [grid_pieces(surface) for surface in geometry.surfaces]
        lines = [marking_quads(marking) for marking in geometry.markings]
        self._layers = (_layer(surfaces, [ASPHALT] * len(surfaces), 0.0),
                        _layer(lines, [m.rgb for m in geometry.markings], MARKING_Z_M))
        # Culled: wholly beyond one side of the image (1 px margin), or past max_range_m deep.
        self._cull = np.vstack([_planes(camera, 1.0), [0.0, 0.0, -1.0, -self.max_range_m]])
        self._clip = _planes(camera, _GUARD_PX)
        self._focal, self._centre = (np.array(v) * (1 << _SHIFT) for v in (
            (camera.fx, camera.fy), (camera.cx, camera.cy)))  # in fillPoly's fixed point
        self._sky, haze = _background(camera, self.max_range_m)
        first = int(np.argmax(haze.any(axis=1)))  # no ground at all: 0, and a no-op blend
        self._rows = slice(first, camera.height)  # rows with some ground in them
        self._hazy, self._clear = haze[first:], np.ascontiguousarray(1.0 - haze[first:])
        self._mist = np.full(self._sky[first:].shape, np.rint(HAZE), dtype=np.uint8)

    def render(self, scene: Scene) -> np.ndarray:
        """Return the camera's image (H, W, 3) uint8 RGB of `scene`, the ego not drawn."""
        ego_to_world, origin = rot_z(scene.ego.yaw), np.array([scene.ego.x, scene.ego.y, 0.0])
        rotation = self._rotation @ ego_to_world.T  # p_optical = rotation @ p_world + translation
        translation = self._translation - rotation @ origin
        eye = origin + ego_to_world @ np.asarray(self.camera.extrinsics[:3], dtype=np.float64)
        image = self._sky.copy()
        for layer in self._layers:
            gap = np.hypot(*(layer.reach[:, :2] - eye[:2]).T) - layer.reach[:, 2]
            near = np.flatnonzero(gap < self.max_range_m)  # a long road: only what is in range
            for pixels, rows in self._visible(layer.pieces[near] @ rotation.T + translation):
                group = layer.group[near[rows]]
                for g in np.unique(group):
                    cv2.fillPoly(image, pixels[group == g], layer.rgb[g], cv2.LINE_8, _SHIFT)
        image[self._rows] = cv2.blendLinear(image[self._rows], self._mist, self._clear, self._hazy)
        if scene.others:
            self._draw_vehicles(image, scene.others, rotation, translation, eye)
        return image

    def _visible(self, cam: np.ndarray) -> List[Tuple[np.ndarray, np.ndarray]]:
        """Return [(pixels (M, K, 2) int32 [1/16 px], rows)] of cam (N, K, 3) [m] in view."""
        planes = np.concatenate([self._cull, self._clip])
        outside = cam @ planes[:, :3].T < planes[:, 3]  # (N, K, planes)
        count = len(self._cull)
        shown = ~outside[..., :count].all(axis=1).any(axis=1)
        crossing = shown & outside[..., count:].any(axis=(1, 2))
        whole, rows = np.flatnonzero(shown & ~crossing), np.flatnonzero(crossing)
        cut = cam[rows]
        for plane in self._clip:
            if len(rows):
                cut, kept = clip_polygons(cut, plane[:3], plane[3])
                rows = rows[kept]
        # Pinhole projection; every point is in front of the near plane by now.
        return [(np.rint(p[..., :2] / p[..., 2:] * self._focal + self._centre).astype(np.int32),
                 index) for p, index in ((cam[whole], whole), (cut, rows)) if len(index)]

    def _draw_vehicles(self, image: np.ndarray, boxes: Sequence[Box], rotation: np.ndarray,
                       translation: np.ndarray, eye: np.ndarray) -> None:
        """Draw the boxes' shadows, then their facing parts farthest box first, into image."""
        quads, normals, rgb, owner, shadow = _vehicle_parts(boxes)
        centre = quads.mean(axis=1)
        facing = np.flatnonzero(((eye - centre) * normals).sum(axis=1) > 0.0)
        shade = np.where(shadow, 1.0, 0.55 + 0.45 * np.clip(normals @ _SUN, 0.0, None))
        haze = _haze(np.linalg.norm(centre - eye, axis=1), self.max_range_m)[:, None]
        colour = np.rint(rgb * shade[:, None] * (1.0 - haze) + HAZE * haze).astype(int).tolist()
        middle = np.array([[b.x, b.y, 0.5 * b.height] for b in boxes])
        depth = np.linalg.norm(middle - eye, axis=1)[owner]
        shown = {}
        for pixels, rows in self._visible(quads[facing] @ rotation.T + translation):
            shown.update(zip(facing[rows].tolist(), pixels, strict=True))
        # Shadows lie on the ground, under every body; bodies go farthest first.
        for part in np.lexsort((np.arange(len(quads)), -depth, ~shadow)).tolist():
            if part in shown:
                cv2.fillConvexPoly(image, shown[part], colour[part], cv2.LINE_8, _SHIFT)
