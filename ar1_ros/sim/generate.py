"""Many demo-world episodes into one folder: bags, labels.jsonl and an episodes.json manifest.

Layout of `out`:

    out/<scenario>_<seed:03d>/   one rosbag2 bag per episode (sim.record)
    out/labels.jsonl             every episode's CoC labels (data/labels.py schema)
    out/episodes.json            settings, rig, and per episode: summary and labels

An episode already in the manifest with the same settings and rig, whose bag is complete
(metadata.yaml written), is reused instead of simulated again; anything else is rebuilt.
Manifest and labels are replaced atomically (written next to their place, then renamed).
"""
import dataclasses
import json
from multiprocessing import get_context
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ar1_ros.data.labels import CocLabel, read_labels
from ar1_ros.sim.record import RecordSettings, drive_expert, episode_labels, write_bag
from ar1_ros.sim.rig import RigCamera
from ar1_ros.sim.scenarios import SCENARIOS, make_world

MANIFEST = 'episodes.json'
LABELS = 'labels.jsonl'


@dataclasses.dataclass
class EpisodeSummary:
    """One recorded episode: its bag folder name, scenario, seed, how it went, its labels."""

    bag: str
    scenario: str
    seed: int
    duration_s: float
    frames: int
    collided: bool
    off_road: bool
    labels: List[dict]

    @property
    def decisions(self) -> Dict[str, int]:
        """How many labels state each decision."""
        counts: Dict[str, int] = {}
        for label in self.labels:
            counts[label['decision']] = counts.get(label['decision'], 0) + 1
        return counts

    @property
    def agreement(self) -> Optional[float]:
        """Fraction of labels whose decision agrees with the driven meta-action (None: n/a)."""
        verdicts = [label['consistent'] for label in self.labels
                    if label['consistent'] is not None]
        return sum(verdicts) / len(verdicts) if verdicts else None


def bag_name(scenario: str, seed: int) -> str:
    """Return the bag folder name of an episode, e.g. 'overtake_007'."""
    return f'{scenario}_{seed:03d}'


def parse_scenarios(text: str) -> Tuple[str, ...]:
    """Return scenario names from 'all' or a comma list; unknown names raise ValueError."""
    names = SCENARIOS if text.strip() == 'all' else tuple(
        n.strip() for n in text.split(',') if n.strip())
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        raise ValueError(f'unknown scenario(s) {unknown or text!r}; known: {", ".join(SCENARIOS)}')
    return names


def parse_seeds(text: str) -> Tuple[int, ...]:
    """Return seeds from '3', '0-9' or '0,4,7-9' (ranges inclusive); bad text: ValueError."""
    seeds: List[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(','))):
            low, _, high = part.partition('-')
            seeds.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        raise ValueError(f'seeds must look like 3, 0-9 or 0,4,7-9; got {text!r}') from None
    if not seeds or min(seeds) < 0:
        raise ValueError(f'seeds must be non-negative integers, got {text!r}')
    return tuple(dict.fromkeys(seeds))


def record_episode(job: Tuple[str, int, str, Tuple[RigCamera, ...], RecordSettings]
                   ) -> EpisodeSummary:
    """Simulate one (scenario, seed) under the expert and write its bag into the out folder."""
    scenario, seed, out, rig, settings = job
    world = make_world(scenario, seed)
    drive = drive_expert(world, rig, settings)
    name = bag_name(scenario, seed)
    write_bag(Path(out) / name, drive, rig, world.dt_s, settings)
    labels = episode_labels(drive, name, world.dt_s, settings,
                            notes=f'demo world {scenario} seed {seed}: privileged state')
    return EpisodeSummary(name, scenario, seed, float(drive.poses[-1, 0]), len(drive.frames),
                          drive.collided, drive.off_road, [label.to_json() for label in labels])


def _identity(rig: Sequence[RigCamera], settings: RecordSettings) -> dict:
    return {'settings': dataclasses.asdict(settings),
            'rig': [dataclasses.asdict(camera) for camera in rig]}


def _reusable(out: Path, identity: dict) -> Dict[str, EpisodeSummary]:
    """Episodes of an existing manifest recorded the same way, with complete bags."""
    path = out / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if json.loads(json.dumps(identity)) != {k: manifest.get(k) for k in identity}:
        return {}
    return {name: EpisodeSummary(**row) for name, row in manifest.get('episodes', {}).items()
            if (out / name / 'metadata.yaml').is_file()}


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + '.partial')
    partial.write_text(text)
    os.replace(partial, path)


def write_outputs(out: Path, identity: dict, episodes: Sequence[EpisodeSummary]) -> None:
    """Write episodes.json and labels.jsonl for these episodes (sorted by bag, then t0)."""
    rows = {e.bag: dataclasses.asdict(e) for e in sorted(episodes, key=lambda e: e.bag)}
    _write_atomic(out / MANIFEST, json.dumps({**identity, 'episodes': rows}, indent=1) + '\n')
    labels = sorted((label for e in episodes for label in e.labels),
                    key=lambda label: (label['bag'], label['t0_ns']))
    _write_atomic(out / LABELS, ''.join(json.dumps(label) + '\n' for label in labels))


def generate(scenarios: Sequence[str], seeds: Sequence[int], out, rig: Sequence[RigCamera],
             settings: Optional[RecordSettings] = None, workers: int = 1,
             on_episode: Optional[Callable[[EpisodeSummary, bool], None]] = None
             ) -> List[EpisodeSummary]:
    """Record every (scenario, seed) into `out`; return the summaries in (scenario, seed) order.

    workers > 1 simulates episodes in that many processes. on_episode(summary, reused) is
    called as each episode is done. Earlier episodes of the folder not asked for stay listed.
    """
    out, settings = Path(out), settings or RecordSettings()
    out.mkdir(parents=True, exist_ok=True)
    identity = _identity(rig, settings)
    done = _reusable(out, identity)
    wanted = [bag_name(s, seed) for s in scenarios for seed in seeds]
    jobs = [(s, seed, str(out), tuple(rig), settings) for s in scenarios for seed in seeds
            if bag_name(s, seed) not in done]
    for name in wanted:
        if name in done and on_episode:
            on_episode(done[name], True)
    for summary in _run(jobs, workers):
        done[summary.bag] = summary
        write_outputs(out, identity, list(done.values()))  # a crash keeps finished episodes
        if on_episode:
            on_episode(summary, False)
    write_outputs(out, identity, list(done.values()))
    return [done[name] for name in wanted]


def _run(jobs: list, workers: int):
    """Yield the summaries of jobs, in a process pool when workers > 1 (fork: no re-import)."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(record_episode, jobs)
        return
    with get_context('fork').Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap(record_episode, jobs)


def read_labels_of(out) -> List[CocLabel]:
    """Return the labels of a generated folder (labels.jsonl), checked by data.labels."""
    labels = read_labels(Path(out) / LABELS)
    if labels.problems:
        raise ValueError('; '.join(labels.problems))
    return list(labels.labels)
