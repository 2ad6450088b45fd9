"""SimWorld: coordinate conversion, the ego's bicycle model, collisions, off-road, geometry."""
from highway_env.road.road import Road, RoadNetwork
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle
import numpy as np
import pytest

from ar1_ros.sim.scenarios import Truck
from ar1_ros.sim.scene import Control
from ar1_ros.sim.world import Path, SimWorld, route_path


def bare_world(lanes=1, speed=10.0, others=(), duration=30.0):
    """An empty straight road (x from 0 to 500 m, lane 0 at y = 0, the others to its right)."""
    road = Road(RoadNetwork.straight_road_network(lanes, length=500.0, speed_limit=30.0),
                np_random=np.random.default_rng(0))
    lane = road.network.get_lane(('0', '1', 0))
    ego = Vehicle(road, lane.position(50.0, 0.0), 0.0, speed)
    road.vehicles.append(ego)
    for cls, s, v in others:
        road.vehicles.append(cls(road, lane.position(s, 0.0), 0.0, v))
    return SimWorld('bare', 0, road, ego, None, route_path(road, [('0', '1', 0)]), duration)


def drive(world, control, steps):
    poses, statuses = [], []
    for _ in range(steps):
        statuses.append(world.step(control))
        ego = world.scene().ego
        poses.append((ego.x, ego.y, ego.yaw, ego.speed))
    return np.array(poses), statuses


def test_positive_curvature_turns_left():
    world = bare_world()
    start = world.scene().ego
    assert (start.x, start.y, start.yaw) == pytest.approx((50.0, 0.0, 0.0))
    poses, _ = drive(world, Control(0.0, 0.02), 40)
    assert poses[-1, 2] > 0.1
    assert poses[-1, 1] > 0.5
    poses, _ = drive(bare_world(), Control(0.0, -0.02), 40)
    assert poses[-1, 2] < -0.1
    assert poses[-1, 1] < -0.5


@pytest.mark.parametrize('curvature', [0.05, -0.02, 0.1])
def test_constant_curvature_gives_its_radius(curvature):
    poses, _ = drive(bare_world(speed=8.0), Control(0.0, curvature), 160)
    x, y = poses[:, 0], poses[:, 1]
    # Algebraic circle fit: x² + y² = 2 a x + 2 b y + c.
    a, b, c = np.linalg.lstsq(np.column_stack([2 * x, 2 * y, np.ones_like(x)]), x * x + y * y,
                              rcond=None)[0]
    radius = np.sqrt(c + a * a + b * b)
    assert radius == pytest.approx(1 / abs(curvature), rel=0.02)
    assert np.sign(b) == np.sign(curvature)  # the centre lies on the side it turns to


def test_acceleration_is_clipped_and_never_reverses():
    world = bare_world(speed=2.0)
    poses, _ = drive(world, Control(-20.0, 0.0), 20)
    assert poses[:, 3].min() >= 0.0
    assert poses[-1, 3] == 0.0
    assert world.scene().ego.accel >= -8.0
    poses, _ = drive(world, Control(20.0, 0.0), 20)
    assert poses[-1, 3] == pytest.approx(4.0 * 20 * world.dt_s, abs=0.2)  # 4 m/s² at most


def test_collision_with_a_stopped_car_is_reported():
    world = bare_world(speed=10.0, others=[(Vehicle, 80.0, 0.0)])
    _, statuses = drive(world, Control(0.0, 0.0), 80)
    collided = [status.collided for status in statuses]
    assert not collided[0]
    assert any(collided)
    assert not any(status.off_road for status in statuses)


def test_leaving_the_road_is_reported():
    world = bare_world()
    assert world.on_road()
    _, statuses = drive(world, Control(0.0, -0.1), 60)
    off = [status.off_road for status in statuses]
    assert not off[0]
    assert any(off)


def test_scene_boxes_ids_and_kinds():
    world = bare_world(lanes=2, others=[(Truck, 90.0, 8.0), (IDMVehicle, 140.0, 9.0)])
    before = world.scene()
    assert before.ego.kind == 'ego'
    assert before.ego.vehicle_id == 0
    assert [(b.vehicle_id, b.kind) for b in before.others] == [(1, 'truck'), (2, 'car')]
    assert before.others[0].length == Truck.LENGTH
    assert before.others[0].height > 2.5
    world.step(Control(0.0, 0.0))
    after = world.scene()
    assert after.time_s == pytest.approx(world.dt_s)
    assert [b.vehicle_id for b in after.others] == [1, 2]
    assert after.others[1].x > before.others[1].x


def test_geometry_surfaces_and_markings():
    geometry = bare_world(lanes=2).geometry
    assert len(geometry.surfaces) == 2
    ys = sorted((s[:, 1].min(), s[:, 1].max()) for s in geometry.surfaces)
    assert ys[0] == pytest.approx((-6.0, -2.0))
    assert ys[1] == pytest.approx((-2.0, 2.0))
    # Left edge solid, shared border dashed once, right edge solid.
    styles = sorted((m.points[0, 1], m.style) for m in geometry.markings)
    assert styles == [(-6.0, 'solid'), (-2.0, 'dashed'), (2.0, 'solid')]
    assert all(np.diff(m.points[:, 0]).max() <= 2.0 + 1e-9 for m in geometry.markings)


def test_route_progress_and_done():
    world = bare_world(speed=10.0, duration=1.0)
    assert world.route().shape[1] == 2
    assert world.progress_m() == pytest.approx(0.0)
    steps = 0
    while not world.done:
        world.step(Control(0.0, 0.0))
        steps += 1
    assert steps == 20
    assert world.progress_m() == pytest.approx(10.0, abs=0.6)


def test_path_projection_and_curvature():
    phase = np.linspace(-np.pi / 2, 0.0, 200)
    arc = Path(np.column_stack([30 * np.cos(phase), 30 + 30 * np.sin(phase)]))  # left, R 30
    assert arc.length == pytest.approx(30 * np.pi / 2, rel=1e-3)
    s, lateral = arc.project((0.0, 1.0))
    assert s == pytest.approx(0.0, abs=0.01)
    assert lateral == pytest.approx(1.0, abs=1e-3)
    assert arc.curvature(arc.length / 2) == pytest.approx(1 / 30, rel=0.01)
    assert arc.heading(arc.length) == pytest.approx(np.pi / 2, abs=0.01)
    assert arc.point(-5.0) == pytest.approx((-5.0, 0.0), abs=0.05)  # extrapolated
    side, distance, radius = arc.bend_near(-40.0)
    assert side == 'left'
    assert distance == pytest.approx(40.0, abs=2)
    assert radius == pytest.approx(30, rel=0.02)
