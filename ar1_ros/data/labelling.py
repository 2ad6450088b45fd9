"""Chain-of-Causation labels for recorded bags: keyframes, meta-actions, drafts.

The command, thresholds and measured agreement: docs/labelling.md.

Each bag is streamed exactly as `ar1 dataset build` streams it (data.dataset_build): the same
odometry track (EgoTrack.from_bag), the same keyframes (dataset_targets.keyframes_of, plus
uniform ones every uniform_s), the same t0 per keyframe (TargetSampler over the node's own
InputBuffers: the first complete camera t0 at or after the keyframe). A moment gets a label
when the recorded odometry covers the 6.4 s after its t0, so every label lands on a sample of
the builder and the JSONL feeds `ar1 dataset build --labels` unchanged.

Per moment: the recorded future in the t0 ego frame gives the meta-action (data.meta_actions);
the ego history of the observation gives the priors at t0 (data.label_drafts). The draft comes
from the teacher VLM when one is given and its answer is accepted (provenance 'teacher'), else
from the rules (provenance 'rule'; a rejected teacher answer's reason goes to `notes`).
Apart from the decision (a rule draft's is the meta-action, by definition of an auto-label),
only `meta_action` and `consistent` describe the time after t0: they are the recorded future
and whether the decision agrees with it (`compatible`); disagreeing labels are kept, flagged.
"""
import collections
import dataclasses
import json
from pathlib import Path
from typing import Callable, Dict, List, Optional, Protocol, Sequence

from ar1_ros.data.bags import BagError, BagReader
from ar1_ros.data.dataset_build import FUTURE_DT_S, FUTURE_STEPS
from ar1_ros.data.dataset_shards import write_atomic
from ar1_ros.data.dataset_targets import BagSampling, Outcome, keyframes_of, plan_targets
from ar1_ros.data.ego_track import EgoTrack
from ar1_ros.data.label_drafts import Draft, DraftRejectedError, Priors, priors_from, rule_draft
from ar1_ros.data.labels import DEFAULT_TOLERANCE_NS, CocLabel
from ar1_ros.data.meta_actions import (
    DEFAULT_RULES,
    MetaActionRules,
    compatible,
    meta_action_from_path,
)
from ar1_ros.data.stream import TopicMap
from ar1_ros.runtime.config import RuntimeConfig
from ar1_ros.runtime.types import Observation, Skip

Progress = Callable[[int, int], None]  # (messages just read, messages in the bag)


class Drafter(Protocol):
    """A teacher: drafts the label of one moment or raises DraftRejectedError saying why."""

    def draft(self, observation: Observation, priors: Priors) -> Draft: ...  # noqa: D102


@dataclasses.dataclass(frozen=True)
class LabelSettings:
    """What to label: the node's topics and runtime settings, uniform fill, meta-action rules.

    tolerance_ns is the builder's label tolerance, which TargetSampler uses for labelled
    targets only; it is passed on so the sampling is the builder's to the letter.
    """

    topics: TopicMap
    runtime: RuntimeConfig
    uniform_s: float = 0.0
    tolerance_ns: int = DEFAULT_TOLERANCE_NS
    rules: MetaActionRules = DEFAULT_RULES


@dataclasses.dataclass
class BagLabels:
    """The labels of one bag and what happened: keyframes found, skips, teacher verdicts.

    error: the bag fault that ended the bag early ('' when it was read to the end); the
    labels before it are kept. teacher_rejected counts the rejection reasons.
    """

    bag: str
    path: str
    keyframes: int = 0
    labels: List[CocLabel] = dataclasses.field(default_factory=list)
    skips: Dict[str, int] = dataclasses.field(default_factory=collections.Counter)
    teacher_accepted: int = 0
    teacher_rejected: Dict[str, int] = dataclasses.field(default_factory=collections.Counter)
    error: str = ''

    @property
    def decisions(self) -> Dict[str, int]:
        """Return {decision: number of labels}, most frequent first."""
        return dict(collections.Counter(lb.decision for lb in self.labels).most_common())

    @property
    def inconsistent(self) -> int:
        """Return how many labels disagree with their recorded meta-action."""
        return sum(lb.consistent is False for lb in self.labels)


class _BagLabelling:
    """Labels one bag; run() returns its BagLabels (module docstring)."""

    def __init__(self, path: Path, settings: LabelSettings, teacher: Optional[Drafter],
                 progress: Optional[Progress]):
        self._settings, self._teacher = settings, teacher
        self._progress = progress or (lambda n, total: None)
        self.result = BagLabels(path.name, str(path))

    def run(self) -> BagLabels:
        """Label the whole bag; a fault keeps the labels before it and sets `error`."""
        try:
            with BagReader(Path(self.result.path)) as reader:
                self._stream(reader)
        except BagError as exc:
            self.result.error = str(exc)
        self.result.labels.sort(key=lambda lb: lb.t0_ns)
        return self.result

    def _stream(self, reader: BagReader) -> None:
        # The body of dataset_build._BagBuild._stream, with labels where it writes samples.
        settings = self._settings
        sampling = BagSampling(reader, settings.topics, settings.runtime)
        keyframes = keyframes_of(sampling.track.kinematics(), True, settings.uniform_s)
        self.result.keyframes = len(keyframes)
        sampling.run(plan_targets(keyframes, [], settings.tolerance_ns), settings.tolerance_ns,
                     lambda outcomes: self._take(outcomes, sampling.track), self._progress)

    def _take(self, outcomes: List[Outcome], track: EgoTrack) -> None:
        for target, observation in outcomes:
            if isinstance(observation, Skip):
                self.result.skips[observation.reason] += 1
                continue
            future = track.future(observation.t0_ns, FUTURE_STEPS, FUTURE_DT_S)
            if future is None:  # the builder drops such a sample too ('no_future')
                self.result.skips['no_future'] += 1
                continue
            meta = meta_action_from_path(future[0], observation.history.speed, FUTURE_DT_S,
                                         self._settings.rules)
            self.result.labels.append(self._label(observation, target.kind,
                                                  priors_from(observation.history, meta)))

    def _label(self, observation: Observation, kind: str, priors: Priors) -> CocLabel:
        draft, provenance, notes = rule_draft(priors), 'rule', f'{kind} keyframe; rule draft'
        if self._teacher is not None:
            try:
                draft, provenance = self._teacher.draft(observation, priors), 'teacher'
                notes = f'{kind} keyframe; teacher draft'
                self.result.teacher_accepted += 1
            except DraftRejectedError as exc:
                self.result.teacher_rejected[exc.reason] += 1
                notes = f'{kind} keyframe; rule draft; teacher draft rejected: {exc}'
        meta = priors.meta
        return CocLabel(bag=self.result.bag, t0_ns=observation.t0_ns, decision=draft.decision,
                        coc=draft.coc, critical_components=draft.critical_components,
                        provenance=provenance, meta_action=dataclasses.asdict(meta),
                        consistent=compatible(draft.decision, meta), notes=notes)


def label_bag(path, settings: LabelSettings, teacher: Optional[Drafter] = None,
              progress: Optional[Progress] = None) -> BagLabels:
    """Label the bag at `path` (a rosbag2 folder); bag faults end in BagLabels.error."""
    return _BagLabelling(Path(path), settings, teacher, progress).run()


def write_labels(path, labels: Sequence[CocLabel]) -> None:
    """Write labels as JSONL sorted by (bag, t0_ns), atomically (the old file or the new one)."""
    rows = sorted(labels, key=lambda lb: (lb.bag, lb.t0_ns))
    text = ''.join(json.dumps(label.to_json()) + '\n' for label in rows)
    write_atomic(Path(path), lambda tmp: tmp.write_text(text, encoding='utf-8'))
