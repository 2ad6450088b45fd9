"""What `ar1 label review` shows of each label: its frames at t0, the ego paths, the rule table.

Each bag is sampled with the dataset builder's own machinery (dataset_targets.BagSampling over
the node's InputBuffers, TargetSampler at the labels' t0s), so the frames of a label are the
observation the model sees at the sample t0 the label attaches to in `ar1 dataset build`; a
label written by `ar1 label` lies exactly on it. Per label (ReviewItem):

- strips: per camera (model order) the observation's frame grid, t0 - 0.3 s ... t0, each scaled
  down to `width` pixels and embedded as a JPEG data URI;
- history_xy: observation.history.xyz[:, :2], 16 poses ending at t0, and future_xy: the recorded
  path EgoTrack.future (64 poses at 0.1 s), both in the t0 ego frame (x forward, y left) [m];
- overlay: the front camera's t0 frame with the recorded future drawn by the node's overlay
  projection (runtime.overlay), when that camera is calibrated in the parameters;
- compatible: {decision: meta_actions.compatible(decision, meta_action)} for every decision, so
  the page recomputes `consistent` for an edited decision without a copy of the rule.

A label whose bag is not given, cannot be read, or whose sample is skipped keeps its place with
`problem` = 'no frames: <reason>: <detail>' (the runtime's skip reason, or bag_not_given,
bag_error, shared_sample): the review never drops a label.
"""
import base64
import dataclasses
import io
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ar1_ros.data.bags import BagError, BagReader
from ar1_ros.data.dataset_build import FUTURE_DT_S, FUTURE_STEPS
from ar1_ros.data.dataset_targets import BagSampling, Outcome, plan_targets
from ar1_ros.data.ego_track import EgoTrack
from ar1_ros.data.labels import DEFAULT_TOLERANCE_NS, CocLabel
from ar1_ros.data.meta_actions import LATERAL, LONGITUDINAL, MetaAction, compatible
from ar1_ros.data.stream import TopicMap
from ar1_ros.runtime.config import RuntimeConfig
from ar1_ros.runtime.images import ImageError
from ar1_ros.runtime.overlay import calibration_mismatch, draw_overlay
from ar1_ros.runtime.presentation import DECISIONS
from ar1_ros.runtime.types import Observation, Skip

# The camera the recorded future is drawn on: the first of these the observation has.
FRONT_CAMERAS = ('camera_front_wide_120fov', 'camera_front_tele_30fov')
JPEG_QUALITY = 80
OnBag = Callable[[str, List['ReviewItem'], str], None]  # (bag name, its items, error or '')


@dataclasses.dataclass(frozen=True)
class ReviewSettings:
    """The node's topics and runtime settings, the picture width [px], the label tolerance."""

    topics: TopicMap
    runtime: RuntimeConfig
    width: int = 320
    tolerance_ns: int = DEFAULT_TOLERANCE_NS


@dataclasses.dataclass(frozen=True)
class Shot:
    """One picture: caption, JPEG data URI ('' when there is none) and why not (error)."""

    caption: str
    uri: str = ''
    error: str = ''


@dataclasses.dataclass
class ReviewItem:
    """One label and what the page shows of it (module docstring).

    strips: [(camera name, [Shot per grid slot, oldest first])]; history_xy (16, 2) and
    future_xy (64, 2) float64 [m] or None; sample_t0_ns: t0 of the frames (None: no frames,
    `problem` says why); notes: what else the reviewer should know (filled slots, ...).
    """

    label: CocLabel
    compatible: Dict[str, Optional[bool]]
    notes: List[str] = dataclasses.field(default_factory=list)
    problem: str = ''
    sample_t0_ns: Optional[int] = None
    strips: List[Tuple[str, List[Shot]]] = dataclasses.field(default_factory=list)
    overlay: Optional[Shot] = None
    history_xy: Optional[np.ndarray] = None
    future_xy: Optional[np.ndarray] = None

    @property
    def key(self) -> str:
        """Return 'bag@t0_ns', unique within a labels file."""
        return f'{self.label.bag}@{self.label.t0_ns}'


def compatibility(meta_action) -> Tuple[Dict[str, Optional[bool]], str]:
    """Return ({decision: compatible or None}, note) for a label's `meta_action` value.

    A missing or unknown meta-action gives None everywhere (consistency unknown) and a note.
    """
    try:
        meta = MetaAction(str(meta_action['longitudinal']), str(meta_action['lateral']))
    except (TypeError, KeyError):
        meta = None
    if meta is None or meta.longitudinal not in LONGITUDINAL or meta.lateral not in LATERAL:
        return (dict.fromkeys(DECISIONS),
                f'no usable meta_action ({meta_action!r}): consistency stays unknown')
    return {d: compatible(d, meta) for d in DECISIONS}, ''


def jpeg_uri(rgb: np.ndarray, width: int) -> str:
    """Return rgb (H, W, 3) uint8 as a JPEG data URI, scaled down to at most `width` px wide."""
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    if image.width > width:
        height = max(1, round(image.height * width / image.width))
        image = image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
    buffer = io.BytesIO()
    image.save(buffer, 'JPEG', quality=JPEG_QUALITY)
    return 'data:image/jpeg;base64,' + base64.b64encode(buffer.getvalue()).decode('ascii')


def _shot(frame, t0_ns: int, width: int) -> Shot:
    """Return the Shot of one selected frame; a filled slot (stamp -1) is captioned so."""
    stamp = int(getattr(frame, 'stamp_ns', -1))
    caption = 'filled' if stamp < 0 else f't0{(stamp - t0_ns) / 1e6:+.0f} ms'
    try:
        return Shot(caption, jpeg_uri(frame.rgb(), width))
    except ImageError as exc:
        return Shot(caption, error=f'cannot decode: {exc}')


def _overlay(observation: Observation, future_xyz: Optional[np.ndarray],
             runtime: RuntimeConfig, width: int) -> Tuple[Optional[Shot], str]:
    """Return (the front t0 frame with the recorded future drawn, or None; why not)."""
    names = observation.camera_names
    name = next((n for n in FRONT_CAMERAS if n in names), None)
    if name is None:
        return None, "no front camera: the recorded future is in the bird's-eye view only"
    spec = runtime.camera(name)
    if not spec.calibrated:
        return None, (f'{name} is not calibrated (no intrinsics/extrinsics in the parameters): '
                      'the recorded future is not drawn on it')
    if future_xyz is None:
        return None, ''
    try:
        rgb = observation.frames[names.index(name)][-1].rgb()
        mismatch = calibration_mismatch(spec, rgb.shape[1], rgb.shape[0])
        if mismatch:
            return None, (f'{mismatch}; the recorded future is not drawn on it (give --params '
                          "with this camera's calibration)")
        rgb = draw_overlay(rgb, future_xyz, spec, [])
    except (ImageError, ValueError) as exc:
        return None, f'{name}: cannot draw the recorded future: {exc}'
    return Shot(f'{name} at t0, recorded future {FUTURE_STEPS * FUTURE_DT_S:.1f} s',
                jpeg_uri(rgb, width)), ''


def fill_item(item: ReviewItem, observation: Observation, track: EgoTrack,
              settings: ReviewSettings) -> None:
    """Fill `item` from the observation of its sample and the bag's odometry track."""
    t0 = item.sample_t0_ns = observation.t0_ns
    item.strips = [(name, [_shot(frame, t0, settings.width) for frame in frames])
                   for name, frames in zip(observation.camera_names, observation.frames,
                                           strict=True)]
    item.history_xy = np.asarray(observation.history.xyz, dtype=np.float64)[:, :2]
    future = track.future(t0, FUTURE_STEPS, FUTURE_DT_S)
    item.future_xy = None if future is None else future[0][:, :2]
    if future is None:
        item.notes.append(f'the odometry does not cover the {FUTURE_STEPS * FUTURE_DT_S:.1f} s '
                          'after t0: no recorded future')
    item.overlay, note = _overlay(observation, None if future is None else future[0],
                                  settings.runtime, settings.width)
    item.notes.extend([note] if note else [])
    item.notes.extend(observation.filled)
    if t0 != item.label.t0_ns:
        item.notes.append(f'frames of the sample t0 {(t0 - item.label.t0_ns) / 1e6:+.0f} ms '
                          'from the label (where ar1 dataset build attaches it)')


class _BagReview:
    """Fills the items of one bag (keyed by t0_ns); run() returns the bag's error or ''."""

    def __init__(self, path: Path, items: Dict[int, ReviewItem], settings: ReviewSettings):
        self._path, self._items, self._settings = path, items, settings

    def run(self) -> str:
        error, tolerance = '', self._settings.tolerance_ns
        try:
            with BagReader(self._path) as reader:
                sampling = BagSampling(reader, self._settings.topics, self._settings.runtime)
                sampling.run(plan_targets([], sorted(self._items), tolerance), tolerance,
                             lambda outcomes: self._take(outcomes, sampling.track))
        except BagError as exc:
            error = str(exc)
        # TargetSampler gives a label within the tolerance after an accepted sample no outcome
        # of its own (the builder attaches only the nearer label there).
        why = (f'bag_error: {error}' if error else
               f'shared_sample: its sample went to another label within {tolerance / 1e6:.0f} ms')
        for item in self._items.values():
            if item.sample_t0_ns is None and not item.problem:
                item.problem = f'no frames: {why}'
        return error

    def _take(self, outcomes: List[Outcome], track: EgoTrack) -> None:
        for target, observation in outcomes:
            item = self._items.get(target.t_ns)
            if item is None:
                continue
            if isinstance(observation, Skip):
                item.problem = f'no frames: {observation.reason}: {observation.detail}'
            else:
                fill_item(item, observation, track, self._settings)


def gather_review(labels: Sequence[CocLabel], bags: Sequence[Path], settings: ReviewSettings,
                  on_bag: Optional[OnBag] = None) -> Tuple[List[ReviewItem], Dict[str, str]]:
    """Return (one ReviewItem per label in input order, {bag name: read error}).

    bags: rosbag2 folders, told apart by folder name (a label names its bag so); a bag without
    labels is not read. on_bag(name, items, error) is called after each bag read.
    """
    items = []
    for label in labels:
        table, note = compatibility(label.meta_action)
        items.append(ReviewItem(label, table, [note] if note else []))
    paths = {Path(bag).name: Path(bag) for bag in bags}
    errors = {}
    for name, path in paths.items():
        mine = {item.label.t0_ns: item for item in items if item.label.bag == name}
        if not mine:
            continue
        error = _BagReview(path, mine, settings).run()
        if error:
            errors[name] = error
        if on_bag is not None:
            on_bag(name, list(mine.values()), error)
    for item in items:
        if item.label.bag not in paths:
            item.problem = f'no frames: bag_not_given: bag {item.label.bag} is not among --bags'
        elif item.sample_t0_ns is None and not item.problem:  # a repeated (bag, t0)
            item.problem = 'no frames: repeated_label: an earlier label has the same bag and t0'
    return items, errors
