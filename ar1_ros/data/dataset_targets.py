"""The moments of a bag to sample for training, and their observations from the input stream.

Targets are the rule keyframes (data.keyframes; optionally uniform ones) plus the labelled
moments. A keyframe is sampled exactly as `ar1 eval --keyframes` evaluates it: t0 is the first
complete camera t0 at or after the keyframe, the observation is InputBuffers.assemble(now,
keyframe - 1) of the node's own buffers. A label is sampled at the camera t0 nearest its t0_ns:
a keyframe within the label tolerance of a label moves to the label (it keeps its kind), a label
without one becomes a target of kind 'label', so every label gets a sample near it.

BagSampling streams one bag through the node's conversions and buffers (data.stream) and hands
on the outcome of every target; the dataset builder, `ar1 label` and `ar1 label review` all
sample their bags with it, so they see the same observation at the same t0.
"""
import dataclasses
from typing import Callable, List, Optional, Sequence, Tuple, Union

from ar1_ros.data.bags import BagError, BagReader
from ar1_ros.data.ego_track import EgoTrack, Kinematics
from ar1_ros.data.keyframes import Keyframe, KeyframeRules, detect_keyframes
from ar1_ros.data.stream import BagInputs, TopicMap
from ar1_ros.runtime.assembly import InputBuffers
from ar1_ros.runtime.config import RuntimeConfig
from ar1_ros.runtime.types import NS_PER_S, Observation, Skip, seconds_to_ns

LABEL_KIND = 'label'
Outcome = Tuple['Target', Union[Observation, Skip]]
Progress = Callable[[int, int], None]  # (messages just read, messages in the bag)


@dataclasses.dataclass(frozen=True, order=True)
class Target:
    """A moment to sample: t_ns [ns], the rule that chose it, and whether a label is there.

    labelled: t_ns is a label's t0 and the sample takes the camera t0 nearest to it.
    """

    t_ns: int
    kind: str
    labelled: bool = False


def uniform_keyframes(k: Optional[Kinematics], rules: KeyframeRules,
                      uniform_s: float) -> List[Keyframe]:
    """Return one 'uniform' keyframe every uniform_s, with the rules' history/horizon margins."""
    if k is None or uniform_s <= 0 or len(k.stamps_ns) < 3:
        return []
    first = int(k.stamps_ns[0]) + seconds_to_ns(rules.history_s)
    last = int(k.stamps_ns[-1]) - seconds_to_ns(rules.horizon_s)
    return [Keyframe(t, 'uniform') for t in range(first, last + 1, seconds_to_ns(uniform_s))]


def plan_targets(keyframes: Sequence[Keyframe], label_t0s: Sequence[int],
                 tolerance_ns: int) -> List[Target]:
    """Return the targets of one bag in time order (module docstring).

    Args:
        keyframes: the bag's keyframes (detect_keyframes or uniform_keyframes).
        label_t0s: t0_ns of the bag's labels.
        tolerance_ns: how near a keyframe must be to a label to move onto it.
    """
    free = list(keyframes)
    targets = []
    for t0 in sorted({int(t) for t in label_t0s}):
        near = min(free, key=lambda k, t=t0: abs(k.t_ns - t), default=None)
        if near is not None and abs(near.t_ns - t0) <= tolerance_ns:
            free.remove(near)
            targets.append(Target(t0, near.kind, True))
        else:
            targets.append(Target(t0, LABEL_KIND, True))
    targets.extend(Target(k.t_ns, k.kind) for k in free)
    return sorted(targets)


def keyframes_of(k: Optional[Kinematics], use_rules: bool, uniform_s: float,
                 rules: Optional[KeyframeRules] = None) -> List[Keyframe]:
    """Return the rule keyframes (plus uniform fill), or with use_rules False the uniform ones."""
    rules = rules or KeyframeRules()
    if use_rules:
        return detect_keyframes(k, rules, uniform_s)
    return uniform_keyframes(k, rules, uniform_s)


class TargetSampler:
    """Turns the input stream of one bag into one observation (or Skip) per target.

    Call step(now) after every accepted input message and finish() after the last one; both
    return (target, Observation or Skip) pairs in time order. Skips carry the runtime's reason
    ('camera_missing', 'ego_not_covered', ...), 'merged' (an earlier sample's t0 already lies
    past the keyframe), 'no_frame_near_label' (a label-only target whose first complete t0 is
    beyond the tolerance) or 'bag_ended'.
    """

    def __init__(self, buffers: InputBuffers, targets: Sequence[Target], max_input_age_s: float,
                 tolerance_ns: int):
        self._buffers, self._targets = buffers, sorted(targets)
        self._max_age_ns = seconds_to_ns(max_input_age_s)
        self._tol_ns = int(tolerance_ns)
        self._pending: Optional[Observation] = None  # a labelled target's best t0 so far
        self._last_t0 = -1

    def _start(self, target: Target) -> int:
        return target.t_ns - self._tol_ns if target.labelled else target.t_ns

    def step(self, now_ns: int) -> List[Outcome]:
        """Assemble the observations that became possible at `now_ns` (a message's log time)."""
        out: List[Outcome] = []
        while self._targets:
            if self._pending is not None:
                if not self._improve(now_ns, out):
                    return out
                continue
            target = self._targets[0]
            t0 = self._buffers.choose_t0()
            overdue = now_ns - target.t_ns > self._max_age_ns
            if (isinstance(t0, Skip) or t0 < self._start(target)) and not overdue:
                return out
            floor = max(self._start(target) - 1, self._last_t0)
            observation = self._buffers.assemble(now_ns, floor)
            if isinstance(observation, Skip):
                out.append((self._targets.pop(0), observation))
            elif target.kind == LABEL_KIND and observation.t0_ns - target.t_ns > self._tol_ns:
                # Only the label asked for this moment and no frame lies near it: the t0 is
                # left to the targets after it.
                away_ms = (observation.t0_ns - target.t_ns) / 1e6
                out.append((self._targets.pop(0), Skip(
                    'no_frame_near_label', f'the first complete t0 is {away_ms:.0f} ms after it')))
            elif target.labelled and observation.t0_ns < target.t_ns:
                self._pending = observation  # a later frame may lie nearer the label
            else:
                self._accept(observation, out)
        return out

    def _improve(self, now_ns: int, out: List[Outcome]) -> bool:
        """Replace the pending observation by a nearer one, or accept it; False: wait."""
        pending, target = self._pending, self._targets[0]
        t0 = self._buffers.choose_t0()
        overdue = now_ns - target.t_ns > self._max_age_ns
        if (isinstance(t0, Skip) or t0 <= pending.t0_ns) and not overdue:
            return False
        newer = self._buffers.assemble(now_ns, pending.t0_ns)
        if (isinstance(newer, Observation)
                and abs(newer.t0_ns - target.t_ns) < abs(pending.t0_ns - target.t_ns)):
            if newer.t0_ns < target.t_ns:
                self._pending = newer
                return False
            pending = newer
        self._accept(pending, out)
        return True

    def _accept(self, observation: Observation, out: List[Outcome]) -> None:
        self._pending = None
        out.append((self._targets.pop(0), observation))
        t0 = self._last_t0 = observation.t0_ns
        while self._targets and self._targets[0].t_ns <= t0 + (
                self._tol_ns if self._targets[0].labelled else 0):
            covered = self._targets.pop(0)
            if not covered.labelled:  # a label here is matched to this sample later
                out.append((covered, Skip('merged', f'the sample at t0 {t0 / NS_PER_S:.3f} s '
                                                    'already lies past it')))

    def finish(self, reason: str = 'bag_ended',
               detail: str = 'the bag ended before an observation') -> List[Outcome]:
        """Return the outcomes left when the stream ends (a pending label sample is taken).

        The targets left are skipped with `reason` and `detail` (a read fault passes its own).
        """
        out: List[Outcome] = []
        if self._pending is not None:
            self._accept(self._pending, out)
        out.extend((target, Skip(reason, detail)) for target in self._targets)
        self._targets = []
        return out


class BagSampling:
    """One bag's input stream through the node's own buffers, sampled at targets.

    Construction checks that the bag has every input topic with its type and usable odometry
    (BagError otherwise, naming what is missing). track: the bag's whole odometry (EgoTrack);
    inputs: the BagInputs feeding the buffers (its `rejected` counts and `notes` say what was
    refused).
    """

    def __init__(self, reader: BagReader, topics: TopicMap, runtime: RuntimeConfig):
        topics.check(reader)
        self.track, fault = EgoTrack.from_bag(reader, topics.ego_topic,
                                              runtime.selection.max_ego_gap_s)
        if not len(self.track):
            raise fault or BagError(f'{reader.path}: no usable odometry on {topics.ego_topic}')
        self._reader, self._topics, self._runtime = reader, topics, runtime
        self._buffers = InputBuffers(runtime)
        self.inputs = BagInputs(reader, topics, self._buffers)

    def run(self, targets: Sequence[Target], tolerance_ns: int,
            take: Callable[[List[Outcome]], None], progress: Optional[Progress] = None) -> None:
        """Stream the bag; hand `take` the outcomes of `targets` as they come, in time order.

        A read fault hands `take` the outcomes before it and the remaining targets skipped as
        'read_fault', then raises its BagError.
        """
        progress = progress or (lambda n, total: None)
        sampler = TargetSampler(self._buffers, targets, self._runtime.selection.max_input_age_s,
                                tolerance_ns)
        reader, topics = self._reader, self._topics.topics
        total = sum(reader.message_count(t) for t in topics)
        try:
            for message in reader.messages(topics):
                progress(1, total)
                if self.inputs.feed(message) is None:
                    take(sampler.step(message.log_ns))
        except BagError as exc:
            take(sampler.finish('read_fault', str(exc)))
            raise
        take(sampler.finish())
