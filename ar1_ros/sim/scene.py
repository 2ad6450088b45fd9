"""What the demo world looks like from outside: plain values, no highway-env objects.

The renderer (sim.render), the recorder (sim.record) and the closed loop
(evaluation.closed_loop) only see these types, so they never depend on highway-env's
classes or its screen coordinates.

World frame: right-handed, x along the road where the ego starts, y to its left, z up; yaw is
counter-clockwise from +x [rad]. sim.world converts from highway-env (whose y axis points down
the screen, so its headings turn clockwise) at the boundary: "left" everywhere in ar1_ros,
labels included, means +y here. Units are SI (m, s, rad, m/s, m/s²).
"""
import dataclasses
from typing import Protocol, Tuple

import numpy as np

# Vehicle kinds the renderer knows how to draw (height and colour differ).
KINDS = ('ego', 'car', 'truck')


@dataclasses.dataclass(frozen=True)
class Box:
    """One vehicle: a box on the ground.

    x, y: centre [m]; yaw [rad]; length, width, height [m]; speed: along the heading [m/s];
    accel: longitudinal acceleration [m/s²] of the last step; vehicle_id: stable over an
    episode; kind: one of KINDS; rgb: body colour (0-255).
    """

    vehicle_id: int
    x: float
    y: float
    yaw: float
    length: float = 5.0
    width: float = 2.0
    height: float = 1.5
    speed: float = 0.0
    accel: float = 0.0
    kind: str = 'car'
    rgb: Tuple[int, int, int] = (60, 90, 200)

    def corners(self) -> np.ndarray:
        """Return the (4, 2) ground corners, counter-clockwise from front-left."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        half = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], float) * [self.length / 2,
                                                                         self.width / 2]
        rotation = np.array([[c, -s], [s, c]])
        return half @ rotation.T + [self.x, self.y]


@dataclasses.dataclass(frozen=True)
class Marking:
    """A painted line: a (N, 2) world polyline, 'solid' or 'dashed', width [m], colour."""

    points: np.ndarray
    style: str = 'solid'
    width_m: float = 0.15
    rgb: Tuple[int, int, int] = (235, 235, 235)


@dataclasses.dataclass(frozen=True)
class RoadGeometry:
    """The static road: drivable surfaces as (N, 2) polygons, plus the painted markings."""

    surfaces: Tuple[np.ndarray, ...]
    markings: Tuple[Marking, ...]


@dataclasses.dataclass(frozen=True)
class Scene:
    """Everything visible at one time [s since the episode start]."""

    time_s: float
    ego: Box
    others: Tuple[Box, ...]
    geometry: RoadGeometry


@dataclasses.dataclass(frozen=True)
class Control:
    """One step's command: longitudinal acceleration [m/s²] and path curvature [1/m, + left].

    Curvature rather than a steering angle: AR1 plans (acceleration, curvature) and the
    controllers track paths; the world converts to its own vehicle model's steering.
    """

    accel_mps2: float
    curvature_1pm: float


@dataclasses.dataclass(frozen=True)
class StepStatus:
    """What one world step did to the ego: a collision with any vehicle, leaving the road."""

    collided: bool
    off_road: bool


@dataclasses.dataclass(frozen=True)
class PrivilegedLabel:
    """The Chain-of-Causation of the expert's current decision, from privileged state.

    decision: one of runtime.presentation.DECISIONS, and parse_decision(coc) == decision.
    critical_components: what the decision hinges on, with distances and speeds.
    """

    decision: str
    coc: str
    critical_components: Tuple[str, ...] = ()


class World(Protocol):
    """A running scenario (sim.world.SimWorld); one step lasts dt_s of world time.

    scene(): the current Scene. expert_control(): what the expert would do now. step(control):
    advance dt_s with the ego commanded by `control` (traffic by its own models), report
    collision/off-road. label(): the expert's current decision as a PrivilegedLabel.
    progress_m(): distance travelled along route() since the start [m]. route(): the ego's
    intended path, (N, 2) world polyline. done: the episode's time or route is used up.
    """

    name: str
    seed: int
    dt_s: float
    time_s: float
    duration_s: float
    geometry: RoadGeometry

    def scene(self) -> Scene: ...  # noqa: D102

    def expert_control(self) -> Control: ...  # noqa: D102

    def step(self, control: Control) -> StepStatus: ...  # noqa: D102

    def label(self) -> PrivilegedLabel: ...  # noqa: D102

    def progress_m(self) -> float: ...  # noqa: D102

    def route(self) -> np.ndarray: ...  # noqa: D102

    @property
    def done(self) -> bool: ...  # noqa: D102

