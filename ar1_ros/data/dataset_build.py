"""Training datasets from bags: the samples of each bag's targets, written to shards.

Each bag is streamed once through the node's conversions and buffers (data.stream), exactly as
`ar1 eval --keyframes` streams it, and every target (data.dataset_targets) becomes an
Observation of the runtime's own selection; a sample also needs the complete recorded 6.4 s
future (data.ego_track). Samples go to shards (data.dataset_shards) and the folder's
`dataset.json` records per bag its status and counts, so an interrupted build resumes: bags
recorded 'complete' (with the same labels) are kept, any other is rebuilt from scratch.
"""
import collections
import dataclasses
import datetime
import hashlib
import json
from pathlib import Path
import re
import shutil
from typing import Callable, Dict, List, Optional, Sequence

from ar1_ros.data.bags import BagError, BagReader
from ar1_ros.data.dataset_shards import (
    FORMAT_VERSION,
    INDEX_NAME,
    SHARD_DIR,
    DatasetError,
    SampleRecord,
    ShardWriter,
    read_index,
    write_json,
)
from ar1_ros.data.dataset_targets import BagSampling, Outcome, keyframes_of, plan_targets
from ar1_ros.data.ego_track import EgoTrack
from ar1_ros.data.keyframes import KeyframeRules
from ar1_ros.data.labels import DEFAULT_TOLERANCE_NS, CocLabel, LabelSet, match
from ar1_ros.data.stream import TopicMap
from ar1_ros.runtime.config import RuntimeConfig
from ar1_ros.runtime.types import NS_PER_S, Skip

FUTURE_STEPS, FUTURE_DT_S = 64, 0.1  # AR1's plan: 6.4 s at 10 Hz
MAX_DETAILS = 20  # skip details kept per bag in the index (the counts are complete)
Progress = Callable[[int, int], None]  # (messages just read, messages in the bag)


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    """What to sample: the node's topics and runtime settings, keyframe and label options.

    keyframes: detect rule keyframes (False: uniform ones and labels only). uniform_s > 0 adds
    one every uniform_s. tolerance_ns: how near a sample t0 a label must lie to attach.
    shard_size: samples per shard.
    """

    topics: TopicMap
    runtime: RuntimeConfig
    keyframes: bool = True
    uniform_s: float = 0.0
    tolerance_ns: int = DEFAULT_TOLERANCE_NS
    shard_size: int = 64

    def fingerprint(self) -> dict:
        """Return the settings the samples depend on (JSON values), compared on resume."""
        return json.loads(json.dumps({
            'camera_names': self.runtime.camera_names,
            'topics': [dataclasses.asdict(c) for c in self.topics.cameras]
            + [self.topics.ego_topic],
            'selection': dataclasses.asdict(self.runtime.selection),
            'keyframes': self.keyframes, 'keyframe_rules': dataclasses.asdict(KeyframeRules()),
            'uniform_s': self.uniform_s, 'tolerance_ns': self.tolerance_ns,
            'future_steps': FUTURE_STEPS, 'future_dt_s': FUTURE_DT_S}))


def _digest(labels: Sequence[CocLabel]) -> str:
    text = json.dumps([label.to_json() for label in labels], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class _BagBuild:
    """Builds the samples of one bag; run() returns its index entry."""

    def __init__(self, folder: Path, name: str, labels: List[CocLabel],
                 settings: BuildSettings, progress: Optional[Progress]):
        self._folder, self._name, self._labels, self._settings = folder, name, labels, settings
        self._progress = progress or (lambda n, total: None)
        self._skips: Dict[str, int] = collections.Counter()
        self.entry = {'status': 'building', 'error': '', 'targets': 0, 'skip_details': [],
                      'rejected_inputs': {}, 'notes': [], 'labels_digest': _digest(labels)}

    def run(self, path: Path) -> dict:
        """Build the bag at `path`; a fault keeps the samples before it (status 'failed')."""
        writer = ShardWriter(self._folder, self._name, self._settings.shard_size)
        try:
            with BagReader(path) as reader:
                self._stream(reader, writer)
        except BagError as exc:
            self.entry['error'] = str(exc)
        attached, unmatched = match(self._labels, writer.t0s, self._settings.tolerance_ns)
        shards = writer.finish(attached)
        self.entry.update(
            status='failed' if self.entry['error'] else 'complete', shards=shards,
            samples=sum(s['samples'] for s in shards), labelled=len(attached),
            skips=dict(self._skips), unmatched_labels=[lb.t0_ns for lb in unmatched])
        return self.entry

    def _stream(self, reader: BagReader, writer: ShardWriter) -> None:
        sampling = BagSampling(reader, self._settings.topics, self._settings.runtime)
        keyframes = keyframes_of(sampling.track.kinematics(), self._settings.keyframes,
                                 self._settings.uniform_s)
        targets = plan_targets(keyframes, [lb.t0_ns for lb in self._labels],
                               self._settings.tolerance_ns)
        self.entry['targets'] = len(targets)
        try:
            sampling.run(targets, self._settings.tolerance_ns,
                         lambda outcomes: self._take(outcomes, sampling.track, writer),
                         self._progress)
        finally:
            self.entry['rejected_inputs'] = {f'{topic}: {reason}': n for (topic, reason), n
                                             in sampling.inputs.rejected.items()}
            self.entry['notes'] = sampling.inputs.notes[:MAX_DETAILS]

    def _take(self, outcomes: List[Outcome], track: EgoTrack, writer: ShardWriter) -> None:
        for target, observation in outcomes:
            if isinstance(observation, Skip):
                self._skip(target.t_ns, target.kind, observation)
                continue
            future = track.future(observation.t0_ns, FUTURE_STEPS, FUTURE_DT_S)
            if future is None:
                self._skip(target.t_ns, target.kind, Skip(
                    'no_future', f'the odometry does not cover the '
                                 f'{FUTURE_STEPS * FUTURE_DT_S:.1f} s after t0 '
                                 f'{observation.t0_ns / NS_PER_S:.3f} s'))
                continue
            history = observation.history
            writer.add(SampleRecord(
                bag=self._name, t0_ns=observation.t0_ns, kind=target.kind,
                camera_names=observation.camera_names, frames=observation.frames,
                history_xyz=history.xyz, history_rot=history.rot, future_xyz=future[0],
                future_rot=future[1], filled=observation.filled))

    def _skip(self, t_ns: int, kind: str, skip: Skip) -> None:
        self._skips[skip.reason] += 1
        if len(self.entry['skip_details']) < MAX_DETAILS:
            self.entry['skip_details'].append(f'{kind} at {t_ns / NS_PER_S:.3f} s: '
                                              f'{skip.reason}: {skip.detail}')


class DatasetBuilder:
    """One dataset folder being built, bag by bag (module docstring).

    Raises DatasetError when the folder holds a dataset built with other settings (pass
    overwrite=True to start over) or an unreadable one.
    """

    def __init__(self, folder, settings: BuildSettings, labels: Optional[LabelSet] = None,
                 overwrite: bool = False):
        self.folder, self.settings = Path(folder), settings
        self.labels = labels or LabelSet()
        if self.folder.exists() and not self.folder.is_dir():
            raise DatasetError(f'{self.folder} exists and is not a folder')
        if overwrite:
            (self.folder / INDEX_NAME).unlink(missing_ok=True)
            shutil.rmtree(self.folder / SHARD_DIR, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.index = self._open_index()
        self.index['label_problems'] = list(self.labels.problems)
        self.index['labels_file'] = self.labels.path
        self._save()

    def _open_index(self) -> dict:
        fingerprint = self.settings.fingerprint()
        if not (self.folder / INDEX_NAME).exists():
            return {'version': FORMAT_VERSION, 'camera_names': fingerprint['camera_names'],
                    'num_frames': len(self.settings.runtime.selection.frame_offsets_s),
                    'settings': fingerprint, 'bags': {},
                    'created': datetime.datetime.now().isoformat(timespec='seconds')}
        index = read_index(self.folder)
        old = index.get('settings', {})
        changed = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint[k])
        if changed:
            raise DatasetError(f'{self.folder} was built with other settings ({", ".join(changed)}'
                               '); pass --overwrite to start over, or choose another --out')
        return index

    def _save(self) -> None:
        bags = self.index['bags'].values()
        self.index['samples'] = sum(b.get('samples', 0) for b in bags)
        self.index['labelled'] = sum(b.get('labelled', 0) for b in bags)
        write_json(self.folder / INDEX_NAME, self.index)

    def _rebuild_reason(self, entry: Optional[dict], digest: str) -> Optional[str]:
        """Return why a bag must be (re)built, or None when its recorded shards can be kept."""
        if entry is None:
            return 'new'
        if entry.get('status') != 'complete':
            return {'building': 'interrupted before'}.get(entry.get('status'), 'failed before')
        if entry.get('labels_digest') != digest:
            return 'its labels changed'
        shards = self.folder / SHARD_DIR
        for shard in entry.get('shards', []):
            tensors = shards / shard['file']
            if (not tensors.is_file() or tensors.stat().st_size != shard['bytes']
                    or not tensors.with_suffix('.json').is_file()):
                return f'shard {shard["file"]} is missing or changed'
        return None

    def _remove_shards(self, name: str) -> None:
        # Also the temporary files a killed process left (dataset_shards.write_atomic).
        shard = re.escape(name) + r'-\d{5}\.(safetensors|json)'
        pattern = re.compile(f'{shard}|\\.{shard}\\.\\d+\\.tmp')
        for path in (self.folder / SHARD_DIR).glob('*'):
            if pattern.fullmatch(path.name):
                path.unlink()

    def build(self, path, progress: Optional[Progress] = None) -> dict:
        """Build one bag unless complete already; return its index entry plus 'bag', 'action'.

        action: 'kept' (complete with the same labels, not read again) or 'built'; 'reason'
        says why it was (re)built. Bag faults end in status 'failed' with 'error'.
        """
        path = Path(path)
        name = path.name
        labels = self.labels.for_bag(name)
        entry = self.index['bags'].get(name)
        reason = self._rebuild_reason(entry, _digest(labels))
        if reason is None:
            return dict(entry, bag=name, action='kept')
        self._remove_shards(name)
        self.index['bags'][name] = {'path': str(path), 'status': 'building'}
        self._save()  # an interruption from here on leaves the bag marked 'building'
        entry = _BagBuild(self.folder, name, labels, self.settings, progress).run(path)
        self.index['bags'][name] = dict(entry, path=str(path))
        self._save()
        return dict(entry, bag=name, action='built', reason=reason)
