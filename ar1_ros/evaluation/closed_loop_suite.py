"""Every (scenario, seed) under every policy: the work of `ar1 closed-loop`, without the CLI.

Per case the expert drives first: its closed-loop episode is the reference for relative
progress, and its drive (sim.record.drive_expert, with rendered frames and labels when the model
is evaluated) is the ground truth of the open-loop scores. Then the constant-velocity baseline
and the model drive fresh copies of the same world (make_world(scenario, seed) again: the
same traffic, reacting to the new ego). The expert always runs, whether or not it is among the
policies to report, because the others are measured against it.
"""
import dataclasses
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ar1_ros.evaluation.closed_loop import (
    ConstantVelocityPolicy,
    EpisodeResult,
    EpisodeSettings,
    ExpertPolicy,
    ModelPolicy,
    PolicyError,
    TimeLimited,
    run_episode,
)
from ar1_ros.evaluation.closed_loop_inputs import RuntimeFeeder
from ar1_ros.evaluation.closed_loop_metrics import episode_metrics
from ar1_ros.evaluation.closed_loop_openloop import (
    KeyframeScore,
    keyframe_steps,
    open_loop_cv,
    open_loop_model,
)
from ar1_ros.runtime.config import RuntimeConfig
from ar1_ros.runtime.worker import InferenceWorker
from ar1_ros.sim.record import Drive, RecordSettings, drive_expert
from ar1_ros.sim.rig import RigCamera
from ar1_ros.sim.scene import RoadGeometry, World


@dataclasses.dataclass(frozen=True)
class SuiteSettings:
    """What to run.

    scenarios × seeds × policies ('model', 'cv', 'expert'), episode settings, an optional time
    limit per episode [s], how frames are rendered (camera rate, JPEG) and whether the
    open-loop scores are computed.
    """

    scenarios: Tuple[str, ...]
    seeds: Tuple[int, ...]
    policies: Tuple[str, ...] = ('cv', 'expert')
    episode: EpisodeSettings = EpisodeSettings()
    max_time_s: Optional[float] = None
    record: RecordSettings = RecordSettings()
    open_loop: bool = True


@dataclasses.dataclass
class ModelSetup:
    """The model side of a suite.

    runtime: the runtime configuration (the rig's cameras); worker: the loaded backend and
    the safety gate.
    """

    runtime: RuntimeConfig
    worker: InferenceWorker


@dataclasses.dataclass
class CaseResult:
    """Everything about one (scenario, seed).

    The road geometry, the route (N, 2), and per policy the episode, its metrics
    (closed_loop_metrics.episode_metrics) and its open-loop keyframe scores.
    """

    scenario: str
    seed: int
    geometry: RoadGeometry
    route: object
    episodes: Dict[str, EpisodeResult] = dataclasses.field(default_factory=dict)
    metrics: Dict[str, Dict] = dataclasses.field(default_factory=dict)
    scores: Dict[str, List[KeyframeScore]] = dataclasses.field(default_factory=dict)

    @property
    def failed(self) -> List[str]:
        """Policies whose episode ended in an error."""
        return [p for p, m in self.metrics.items() if m['error']]


class Suite:
    """Runs cases one after another; make_world(name, seed) -> World builds each world."""

    def __init__(self, settings: SuiteSettings, rig: Sequence[RigCamera],
                 make_world: Callable[[str, int], World], model: Optional[ModelSetup] = None):
        if 'model' in settings.policies and model is None:
            raise ValueError("policy 'model' needs a ModelSetup")
        self.settings, self.rig, self.model = settings, tuple(rig), model
        self._make_world = make_world

    def cases(self):
        """Yield the (scenario, seed) pairs in run order."""
        for scenario in self.settings.scenarios:
            for seed in self.settings.seeds:
                yield scenario, seed

    def world(self, scenario: str, seed: int) -> World:
        """Return a fresh world of the case, time-limited when max_time_s is set."""
        world = self._make_world(scenario, seed)
        limit = self.settings.max_time_s
        return TimeLimited(world, limit) if limit is not None else world

    def run_case(self, scenario: str, seed: int,
                 on_episode: Optional[Callable[[CaseResult, str], None]] = None) -> CaseResult:
        """Run every policy on one case; on_episode(case, policy) after each episode."""
        settings = self.settings
        world = self.world(scenario, seed)
        case = CaseResult(scenario, seed, world.geometry, world.route())
        expert = run_episode(world, ExpertPolicy(), settings.episode)
        drive, keyframes = self._reference(scenario, seed, expert)
        self._record(case, expert, expert, [], on_episode)
        for policy in ('cv', 'model'):
            if policy not in settings.policies:
                continue
            result = run_episode(self.world(scenario, seed), self._policy(policy),
                                 settings.episode)
            scores: List[KeyframeScore] = []
            if not result.error and keyframes:
                try:
                    scores = self._open_loop(policy, drive, keyframes, world.dt_s)
                except PolicyError as exc:
                    result.error = f'open loop: {exc}'
            self._record(case, result, expert, scores, on_episode)
        return case

    def _record(self, case: CaseResult, result: EpisodeResult, expert: EpisodeResult,
                scores: List[KeyframeScore], on_episode) -> None:
        case.episodes[result.policy] = result
        case.scores[result.policy] = scores
        case.metrics[result.policy] = episode_metrics(result, expert,
                                                      self.settings.episode.warmup_s, scores)
        if on_episode is not None:
            on_episode(case, result.policy)

    def _reference(self, scenario: str, seed: int, expert: EpisodeResult):
        """Return the expert drive for the open loop and its keyframe steps."""
        settings = self.settings
        if not settings.open_loop:
            return None, []
        if 'model' in settings.policies:
            drive = drive_expert(self.world(scenario, seed), self.rig, settings.record)
        else:  # the baseline needs poses only: no rendering
            drive = Drive(expert.poses, expert.speeds, [], [])
        dt = float(drive.poses[1, 0] - drive.poses[0, 0]) if len(drive.poses) > 1 else 0.05
        return drive, keyframe_steps(drive, dt, settings.record.epoch_s)

    def _policy(self, name: str):
        replan = self.settings.episode.replan_s
        if name == 'cv':
            return ConstantVelocityPolicy(replan)
        return ModelPolicy(self.model.runtime, self.model.worker, self.rig, replan,
                           self.settings.record)

    def _open_loop(self, policy: str, drive: Drive, keyframes, dt: float):
        if policy == 'cv':
            return open_loop_cv(drive, keyframes, dt)
        feeder = RuntimeFeeder(self.model.runtime, self.model.worker, self.rig,
                               self.settings.record)
        return open_loop_model(drive, keyframes, dt, feeder)
