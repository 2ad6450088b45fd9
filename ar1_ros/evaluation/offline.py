"""Offline evaluation of one bag: the node's runtime driven by the bag instead of DDS.

Messages are fed in log-time order through the node's conversions and buffers (data.stream);
after each input message the t0 rule of the node decides whether an observation is ready,
exactly as the node's input-triggered cycle does, and the cycle runs synchronously
(InferenceWorker.run_cycle: decode, backend, safety gate). With `every_s`, t0 advances by at
least 0.9 * every_s, the node's rule for cycle_rate_hz = 1 / every_s, so the evaluated t0s are
the ones the node plans for on replay; with keyframes, t0 is the first frame at or after each
keyframe. Nothing waits on a clock: a bag runs as fast as decoding and the model allow.
"""
import collections
import dataclasses
import time
from typing import Callable, Dict, List, Optional, Protocol

from ar1_ros.data.bags import BagError, BagMessage, BagReader
from ar1_ros.data.ego_track import EgoTrack
from ar1_ros.data.keyframes import Keyframe, detect_keyframes
from ar1_ros.data.stream import BagInputs, TopicMap
from ar1_ros.evaluation.keyframe_record import make_record
from ar1_ros.evaluation.metrics import record_metrics
from ar1_ros.evaluation.records import KeyframeRecord
from ar1_ros.runtime.assembly import InputBuffers
from ar1_ros.runtime.config import RuntimeConfig
from ar1_ros.runtime.types import NS_PER_S, Observation, Skip, seconds_to_ns
from ar1_ros.runtime.worker import InferenceWorker

# Longest ground truth read after an early stop (--max-keyframes): AR1's 6.4 s horizon.
HORIZON_S = 6.4


class OutputSink(Protocol):
    """Where recorded inputs and cycle results go (nodes.bag_outputs.BagOutputSink)."""

    def write_input(self, message: BagMessage) -> None: ...  # noqa: D102

    def write_result(self, result, log_ns: int) -> None: ...  # noqa: D102

    def close(self) -> None: ...  # noqa: D102


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """How keyframes are chosen and what is kept of them.

    every_s: evaluate whenever t0 can advance by 0.9 * every_s (ignored with keyframes).
    keyframes: evaluate at detected decision moments (data.keyframes), plus one every
    uniform_s when > 0. max_keyframes: stop after this many evaluated cycles (None: all).
    camera, camera_width: the front picture kept per keyframe (AR1 name, pixels wide), for at
    most max_pictures keyframes spread over the bag (memory stays bounded on long bags).
    """

    every_s: float = 1.0
    keyframes: bool = False
    uniform_s: float = 0.0
    max_keyframes: Optional[int] = None
    camera: str = 'camera_front_wide_120fov'
    camera_width: int = 640
    max_pictures: int = 200


@dataclasses.dataclass
class BagSummary:
    """What happened while evaluating one bag (besides its keyframe records)."""

    bag: str
    path: str
    duration_s: float = 0.0
    messages: int = 0
    wall_s: float = 0.0
    keyframes_planned: int = 0
    skips: Dict[str, int] = dataclasses.field(default_factory=dict)
    rejected_inputs: Dict[str, int] = dataclasses.field(default_factory=dict)
    notes: List[str] = dataclasses.field(default_factory=list)
    error: str = ''


class BagEvaluation:
    """Evaluates one open bag; run() returns its records (kept up to any read fault)."""

    def __init__(self, reader: BagReader, name: str, topics: TopicMap, runtime: RuntimeConfig,
                 worker: InferenceWorker, settings: EvalSettings,
                 sink: Optional[OutputSink] = None, progress: Optional[Callable] = None):
        topics.check(reader)
        self._reader, self._name, self._topics = reader, name, topics
        self._runtime, self._worker, self._settings = runtime, worker, settings
        self._sink, self._progress = sink, progress or (lambda n, done: None)
        self._buffers = InputBuffers(runtime)
        self.summary = BagSummary(name, str(reader.path),
                                  (reader.end_ns - reader.start_ns) / NS_PER_S)
        self._targets: List[Keyframe] = []
        if settings.keyframes:
            # Keyframes need the whole track first; otherwise it is collected on the way.
            track, fault = EgoTrack.from_bag(reader, topics.ego_topic,
                                             runtime.selection.max_ego_gap_s)
            if fault is not None:
                self.summary.notes.append(f'odometry read stopped early: {fault}')
            self._targets = detect_keyframes(track.kinematics(), uniform_s=settings.uniform_s)
            self.summary.keyframes_planned = len(self._targets)
        self._track = EgoTrack(max_gap_s=runtime.selection.max_ego_gap_s)
        self._inputs = BagInputs(reader, topics, self._buffers, on_ego=self._track.add)
        self._pictures = _PictureBudget(settings.max_pictures)
        self._skips = collections.Counter()
        self._last_t0: Optional[int] = None
        self._next_skip_ns = 0
        self.records: List[KeyframeRecord] = []

    def run(self) -> List[KeyframeRecord]:
        """Evaluate the whole bag; a read fault ends it with summary.error set."""
        start = time.monotonic()
        try:
            for message in self._reader.messages(self._topics.topics):
                self._on_message(message)
                if self._done():
                    self._targets = []
                    self._read_future(message.log_ns + 1)
                    break
        except BagError as exc:
            self.summary.error = str(exc)
        for target in self._targets:
            self._skipped(target.t_ns, f'{target.kind}: bag ended before an observation')
        self._score()
        self._finish(time.monotonic() - start)
        return self.records

    def _read_future(self, start_ns: int) -> None:
        """After an early stop, read the odometry the last keyframe's ground truth needs."""
        stop = self._last_t0 + seconds_to_ns(HORIZON_S + 1.0)
        for message in self._reader.messages([self._topics.ego_topic], start_ns, stop):
            self._inputs.feed(message)

    def _done(self) -> bool:
        limit = self._settings.max_keyframes
        return limit is not None and len(self.records) >= limit

    def _on_message(self, message: BagMessage) -> None:
        self.summary.messages += 1
        if self._sink is not None:
            self._sink.write_input(message)
        problem = self._inputs.feed(message)
        self._progress(1, len(self.records))
        if problem is None:
            if self._settings.keyframes:
                self._keyframe_cycle(message.log_ns)
            else:
                self._periodic_cycle(message.log_ns)

    def _periodic_cycle(self, now: int) -> None:
        step = seconds_to_ns(0.9 * self._settings.every_s)
        floor = None if self._last_t0 is None else self._last_t0 + step - 1
        observation = self._buffers.assemble(now, floor)
        if isinstance(observation, Observation):
            self._run(observation, now)
        elif observation.reason != 'no_new_input' and now >= self._next_skip_ns:
            # Counted once per every_s of bag time, not once per message.
            self._skips[observation.reason] += 1
            self._next_skip_ns = now + seconds_to_ns(self._settings.every_s)

    def _keyframe_cycle(self, now: int) -> None:
        while self._targets:
            target = self._targets[0]
            t0 = self._buffers.choose_t0()
            overdue = now - target.t_ns > seconds_to_ns(self._runtime.selection.max_input_age_s)
            if (isinstance(t0, Skip) or t0 < target.t_ns) and not overdue:
                return
            observation = self._buffers.assemble(now, target.t_ns - 1)
            if isinstance(observation, Skip):
                self._targets.pop(0)
                self._skips[observation.reason] += 1
                self._skipped(target.t_ns, f'{target.kind}: {observation.reason}: '
                                           f'{observation.detail}')
                continue
            self._targets = [k for k in self._targets if k.t_ns > observation.t0_ns]
            self._run(observation, now)
            return

    def _run(self, observation: Observation, now: int) -> None:
        result = self._worker.run_cycle(observation, time.monotonic())
        self._last_t0 = observation.t0_ns
        record = make_record(self._name, result, self._runtime, self._settings.camera,
                             self._settings.camera_width)
        self._pictures.keep(record)
        self.records.append(record)
        if self._sink is not None:
            self._sink.write_result(result, now)
        stamps = observation.frame_stamps_ns()
        stamps = stamps[stamps >= 0]  # -1 marks slots a fill policy filled
        if stamps.size:
            self._buffers.release_decoded(int(stamps.min()))

    def _score(self) -> None:
        """Attach ground truth (the odometry after each t0, read by now) and metrics."""
        for record in self.records:
            if record.status == 'skipped':
                continue
            steps = record.pred_xyz.shape[1] if record.has_prediction else 64
            future = self._track.future(record.t0_ns, steps, record.dt)
            if future is not None:
                record.gt_xyz, record.gt_rot = future
            record.metrics = record_metrics(record)

    def _skipped(self, t_ns: int, detail: str) -> None:
        self.records.append(KeyframeRecord(bag=self._name, t0_ns=int(t_ns), status='skipped',
                                           detail=detail))

    def _finish(self, wall_s: float) -> None:
        self.summary.wall_s = wall_s
        self.summary.skips = dict(self._skips)
        self.summary.rejected_inputs = {f'{topic}: {reason}': n for (topic, reason), n
                                        in self._inputs.rejected.items()}
        self.summary.notes.extend(self._inputs.notes[:20])
        self.records.sort(key=lambda r: r.t0_ns)


class _PictureBudget:
    """Keeps camera pictures on at most `limit` records, spread evenly over a bag.

    When the limit is reached every other kept picture is dropped and only every second
    record from then on keeps one, so a long bag ends with pictures at a regular stride.
    """

    def __init__(self, limit: int):
        self._limit, self._stride, self._seen = max(int(limit), 1), 1, 0
        self._kept: List[KeyframeRecord] = []

    def keep(self, record: KeyframeRecord) -> None:
        """Keep or drop `record.camera_rgb` (the records arrive in t0 order)."""
        self._seen += 1
        if (self._seen - 1) % self._stride:
            record.camera_rgb = None
            return
        self._kept.append(record)
        if len(self._kept) > self._limit:
            for dropped in self._kept[1::2]:
                dropped.camera_rgb = None
            self._kept = self._kept[::2]
            self._stride *= 2
