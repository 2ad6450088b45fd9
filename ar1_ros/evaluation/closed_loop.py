"""Closed-loop episodes in the demo world: a policy drives, the world answers.

Three policies, one episode loop (run_episode):

- ExpertPolicy: the world's own privileged expert (world.expert_control()), the reference.
- ConstantVelocityPolicy: plans a straight line at the current speed and heading, tracked by
  the same PathTracker as the model: the "do nothing clever" baseline.
- ModelPolicy: AR1 through the node's runtime (closed_loop_inputs.RuntimeFeeder: rendered
  cameras and odometry into InputBuffers, the worker's cycle with the safety gate), its plan
  tracked by the PathTracker.

Every episode starts with warmup_s under the expert, for every policy alike: AR1 needs 1.6 s
of history before its first plan, and all policies then take over from the same state. The
tracked policies replan every replan_s on a fixed grid; a replanning that yields no plan
(assembly skip, every sample rejected by the gate) is counted and the previous plan is kept
(before the first plan: the constant-velocity plan). An episode ends when the world is done,
at the first collision (what follows is not driving any more), or when the policy fails
(a backend error): then EpisodeResult.error says why.
"""
import abc
import collections
import dataclasses
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ar1_ros.evaluation.closed_loop_inputs import PlanOutcome, RuntimeFeeder
from ar1_ros.runtime.config import RuntimeConfig
from ar1_ros.runtime.worker import InferenceWorker
from ar1_ros.sim.controller import PathTracker, Plan, TrackerSettings
from ar1_ros.sim.record import RecordSettings
from ar1_ros.sim.rig import RigCamera
from ar1_ros.sim.scene import Box, Control, Scene, World

PLAN_STEPS = 64
PLAN_DT_S = 0.1


@dataclasses.dataclass(frozen=True)
class EpisodeSettings:
    """How episodes run.

    replan_s: period of the tracked policies' plans [s]; warmup_s: expert driving first [s];
    stop_on_collision: end the episode at the first collision.
    """

    replan_s: float = 0.5
    warmup_s: float = 1.6
    stop_on_collision: bool = True


@dataclasses.dataclass
class EpisodeResult:
    """One driven episode.

    poses (N, 4): t [s], x, y [m], yaw [rad] every world step; speeds (N,) [m/s]; controls
    (N - 1, 2): commanded accel [m/s²] and curvature [1/m] per step. collision_time_s /
    off_road_time_s: world time of the first one (None: never); off_road_s: time spent off the
    road [s]. progress_m: along the route at the end. plans / skips: replannings with a plan,
    and without one by reason. error: why the episode stopped early ('' when it did not).
    others: the other vehicles at the end (for plots: where the ego hit something).
    """

    scenario: str
    seed: int
    policy: str
    poses: np.ndarray
    speeds: np.ndarray
    controls: np.ndarray
    collision_time_s: Optional[float]
    off_road_time_s: Optional[float]
    off_road_s: float
    progress_m: float
    duration_s: float
    plans: int = 0
    skips: Dict[str, int] = dataclasses.field(default_factory=dict)
    wall_s: float = 0.0
    error: str = ''
    others: Tuple[Box, ...] = ()

    @property
    def collided(self) -> bool:
        """Whether the ego collided with anything."""
        return self.collision_time_s is not None

    @property
    def off_road(self) -> bool:
        """Whether the ego ever left the drivable surface."""
        return self.off_road_time_s is not None


class TimeLimited:
    """A World whose episode ends after max_time_s [s] (or earlier, when the world's does).

    Everything else is the wrapped world's; used to shorten episodes (tests, quick looks).
    """

    def __init__(self, world: World, max_time_s: float):
        self._world, self._max = world, float(max_time_s)

    def __getattr__(self, name: str):
        return getattr(self._world, name)

    @property
    def done(self) -> bool:
        """The world's done, or the time limit reached."""
        return self._world.done or self._world.time_s >= self._max - 1e-9

    @property
    def duration_s(self) -> float:
        """The shorter of the world's duration and the limit [s]."""
        return min(self._world.duration_s, self._max)


def straight_path(speed: float, steps: int = PLAN_STEPS, dt: float = PLAN_DT_S) -> np.ndarray:
    """Return (steps, 3) ego-frame points of driving straight on at `speed` [m/s]."""
    xyz = np.zeros((steps, 3))
    xyz[:, 0] = max(float(speed), 0.0) * dt * np.arange(1, steps + 1)
    return xyz


def constant_velocity_plan(scene: Scene) -> Plan:
    """Return the plan keeping the ego's current speed and heading (a straight line)."""
    ego = scene.ego
    return Plan(scene.time_s, ego.x, ego.y, ego.yaw, straight_path(ego.speed))


class ExpertPolicy:
    """The world's privileged expert, commanded directly (no plan, no tracker)."""

    name = 'expert'

    def __init__(self):
        self.plans, self.skips = 0, collections.Counter()

    def start(self, world: World) -> None:
        """Nothing to prepare."""

    def observe(self, scene: Scene, step: int) -> None:
        """Ignore the inputs: the expert reads the world's privileged state itself."""

    def act(self, world: World, scene: Scene, step: int) -> Control:
        """Return what the expert does now."""
        return world.expert_control()


class _TrackedPolicy(abc.ABC):
    """A policy that plans every replan_s and follows its plan with a PathTracker."""

    name = ''

    def __init__(self, replan_s: float):
        self.replan_s = replan_s
        self.plans, self.skips = 0, collections.Counter()
        self._tracker, self._every = PathTracker(), 1

    def start(self, world: World) -> None:
        """Reset for a new episode of `world`."""
        self._tracker = PathTracker(TrackerSettings(step_s=world.dt_s))
        self._every = max(int(round(self.replan_s / world.dt_s)), 1)
        self.plans, self.skips = 0, collections.Counter()

    @abc.abstractmethod
    def observe(self, scene: Scene, step: int) -> None:
        """Take the inputs of every step (before act() on that step)."""

    def act(self, world: World, scene: Scene, step: int) -> Control:
        """Replan on the grid (and at the first call), then track the current plan."""
        if step % self._every == 0 or not self._tracker.has_plan:
            outcome = self.plan(scene)
            if outcome.plan is not None:
                self._tracker.set_plan(outcome.plan)
                self.plans += 1
            else:
                self.skips[outcome.skip] += 1
                if not self._tracker.has_plan:
                    self._tracker.set_plan(constant_velocity_plan(scene))
        return self._tracker.control(scene.time_s, scene.ego)

    @abc.abstractmethod
    def plan(self, scene: Scene) -> PlanOutcome:
        """Return a new plan for the current scene."""


class ConstantVelocityPolicy(_TrackedPolicy):
    """Keeps the current speed and heading: a straight line at v * t, replanned."""

    name = 'cv'

    def observe(self, scene: Scene, step: int) -> None:
        """Ignore the inputs: the plan only needs the scene at replanning time."""

    def plan(self, scene: Scene) -> PlanOutcome:
        """Return the constant-velocity plan of the current ego state."""
        return PlanOutcome(constant_velocity_plan(scene))


class PolicyError(RuntimeError):
    """The policy cannot go on (its backend failed); the episode ends with this error."""


class ModelPolicy(_TrackedPolicy):
    """AR1 through the node's runtime: RuntimeFeeder inputs, worker cycle, safety gate."""

    name = 'model'

    def __init__(self, runtime: RuntimeConfig, worker: InferenceWorker,
                 rig: Sequence[RigCamera], replan_s: float,
                 record: Optional[RecordSettings] = None):
        super().__init__(replan_s)
        self._runtime, self._worker, self._rig = runtime, worker, tuple(rig)
        self._record = record or RecordSettings()
        self.feeder: Optional[RuntimeFeeder] = None
        self.reasoning: List[str] = []

    def start(self, world: World) -> None:
        """Create fresh input buffers and renderers for this world."""
        super().start(world)
        self.feeder = RuntimeFeeder(self._runtime, self._worker, self._rig, self._record)
        self.feeder.attach(world)
        self.reasoning = []

    def observe(self, scene: Scene, step: int) -> None:
        """Render the cameras (on their grid) and add the odometry, as the node receives them."""
        self.feeder.observe(scene, step)

    def plan(self, scene: Scene) -> PlanOutcome:
        """Run one runtime cycle now; a failed cycle ends the episode (PolicyError)."""
        outcome = self.feeder.plan(scene.time_s)
        if outcome.skip == 'error':
            raise PolicyError(outcome.detail)
        if outcome.plan is not None:
            result = outcome.result
            self.reasoning.append(result.output.reasoning[result.plan_index])
        return outcome


def _control(world: World, policy, scene: Scene, step: int, warmup: int) -> Control:
    """Return this step's command: the expert's during the warm-up, the policy's after it."""
    policy.observe(scene, step)
    return world.expert_control() if step < warmup else policy.act(world, scene, step)


def run_episode(world: World, policy,
                settings: EpisodeSettings = EpisodeSettings()) -> EpisodeResult:
    """Drive `world` with `policy` until it is done; return what happened.

    The expert drives the first warmup_s; policy.observe() sees every step from the start.
    A policy exception ends the episode with EpisodeResult.error set (KeyboardInterrupt
    propagates).
    """
    started = time.monotonic()
    policy.start(world)
    warmup = int(round(settings.warmup_s / world.dt_s))
    rows, speeds, controls, error = [], [], [], ''
    first: Dict[str, Optional[float]] = {'collision': None, 'off_road': None}
    off_road_steps, step = 0, 0
    while True:
        scene = world.scene()
        rows.append((scene.time_s, scene.ego.x, scene.ego.y, scene.ego.yaw))
        speeds.append(scene.ego.speed)
        if world.done or (settings.stop_on_collision and first['collision'] is not None):
            break
        try:
            control = _control(world, policy, scene, step, warmup)
        except Exception as exc:  # noqa: BLE001 - one failing episode must not stop the suite
            error = f'{type(exc).__name__}: {exc}'
            break
        status = world.step(control)
        controls.append((control.accel_mps2, control.curvature_1pm))
        for key, happened in (('collision', status.collided), ('off_road', status.off_road)):
            if happened and first[key] is None:
                first[key] = float(world.time_s)
        off_road_steps, step = off_road_steps + bool(status.off_road), step + 1
    return EpisodeResult(
        world.name, int(world.seed), policy.name,
        np.array(rows, dtype=np.float64), np.array(speeds, dtype=np.float64),
        np.array(controls, dtype=np.float64).reshape(-1, 2), first['collision'],
        first['off_road'], off_road_steps * world.dt_s, float(world.progress_m()),
        float(rows[-1][0]), policy.plans, dict(policy.skips), time.monotonic() - started, error,
        tuple(scene.others))
