"""Fault cases of the policy node over real DDS (node, feeder and listener in one process).

Each case: the fault yields a diagnostic, nothing unsafe is published as a plan, and the node
keeps running (diagnostics keep coming; where the fault is transient, plans resume).
"""
from pathlib import Path

from lifecycle_msgs.msg import State
import pytest
from rclpy.lifecycle import TransitionCallbackReturn
from ros.harness import Harness, fake_overrides, stamp_ns
import torch

pytestmark = [pytest.mark.ros, pytest.mark.slow]
WARN, ERROR = b'\x01', b'\x02'
TINY = str(Path(__file__).resolve().parents[1] / 'fixtures' / 'ar1_tiny' / 'checkpoint')


@pytest.fixture
def make_harness():
    made = []

    def make(active=True, **kwargs):
        harness = Harness(**kwargs)
        made.append(harness)
        if active:
            assert harness.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            assert harness.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        return harness
    yield make
    for harness in made:
        harness.close()


def warm_up(harness, seconds=2.2):
    harness.drive(seconds)
    assert harness.wait_for(lambda: harness.take('trajectory')), 'no plan before the fault'


def plans_after(harness, t_ns):
    return [m for m in harness.take('trajectory')
            if stamp_ns(m) > t_ns]


def event_seen(harness, kind):
    return any(kv.key == f'count {kind}' for s in harness.diagnostics('events') for kv in s.values)


def resumes(harness, seconds=2.5):
    start = harness.sim_ns
    harness.drive(seconds)
    return harness.wait_for(lambda: plans_after(harness, start), timeout=5)


def faulty_camera(h, attribute, camera, diagnosed, seconds=1.5):
    """Set Feeder.<attribute> = {camera}: diagnosed, no plan from then on, plans resume."""
    warm_up(h)
    start = h.sim_ns
    setattr(h.feeder, attribute, {camera})
    h.drive(seconds)
    assert h.wait_for(diagnosed)
    # One frame period of slack: a cycle already under way when the fault began.
    assert not plans_after(h, start + 10**8), f'planned with a {attribute} camera'
    setattr(h.feeder, attribute, set())
    assert resumes(h)


def test_camera_drop(make_harness):
    h = make_harness(overrides=fake_overrides())
    faulty_camera(h, 'drop', 'front_tele', lambda: any(
        '/test/front_tele/image/compressed' in s.message for s in h.diagnostics('inputs')), 2.0)


def test_stale_odometry(make_harness):
    h = make_harness(overrides=fake_overrides())
    warm_up(h)
    h.feeder.odometry_enabled = False
    h.drive(2.0)
    assert h.wait_for(lambda: any('stale_inputs' in s.message or '/test/odom' in s.message
                                  for s in h.diagnostics('cycle') + h.diagnostics('inputs')))
    stale_from = h.sim_ns
    h.drive(0.5)
    assert not plans_after(h, stale_from)
    h.feeder.odometry_enabled = True
    assert resumes(h)


def test_clock_jump_back_clears_buffers(make_harness):
    h = make_harness(overrides=fake_overrides())
    warm_up(h)
    h.sim_ns -= 30 * 10**9
    h.drive(0.5)
    assert h.wait_for(lambda: event_seen(h, 'clock_jump'))
    assert resumes(h, 3.0)


def test_nan_pose(make_harness):
    h = make_harness(overrides=fake_overrides())
    warm_up(h)
    h.feeder.nan_pose = True
    h.drive(1.5)
    assert h.wait_for(lambda: event_seen(h, 'odometry_rejected'))
    h.feeder.nan_pose = False
    assert resumes(h)


def test_unsupported_encoding(make_harness):
    h = make_harness(overrides=fake_overrides(**{
        f'camera.{c}.compressed': False for c in ('cross_left', 'front_wide', 'cross_right',
                                                  'front_tele')} | {
        f'camera.{c}.topic': f'/test/{c}/image' for c in ('cross_left', 'front_wide',
                                                          'cross_right', 'front_tele')}),
        compressed=False)
    warm_up(h)
    h.feeder.encoding = '16UC1'
    h.drive(1.0)
    assert h.wait_for(lambda: any('16UC1' in kv.value for s in h.diagnostics('events')
                                  for kv in s.values))
    h.feeder.encoding = 'bgr8'
    assert resumes(h)


def test_image_size_change(make_harness):
    h = make_harness(overrides=fake_overrides())
    warm_up(h)
    h.feeder.set_size((96, 160))
    h.drive(0.5)
    assert h.wait_for(lambda: event_seen(h, 'image_size_changed'))
    assert resumes(h)


def test_corrupt_jpeg(make_harness):
    h = make_harness(overrides=fake_overrides())
    faulty_camera(h, 'corrupt', 'front_wide',
                  lambda: event_seen(h, 'image_rejected') or event_seen(h, 'cycle_failed'))


def test_unstamped_camera(make_harness):
    h = make_harness(overrides=fake_overrides())
    faulty_camera(h, 'unstamped', 'cross_right', lambda: any(
        'does not stamp' in kv.value for s in h.diagnostics('events') for kv in s.values))


@pytest.mark.parametrize(('mode', 'event'), [('raise', 'cycle_failed'),
                                             ('nan', 'plan_rejected'),
                                             ('swerve', 'plan_rejected')])
def test_backend_faults_never_publish_a_plan(make_harness, mode, event):
    h = make_harness(overrides=fake_overrides(**{'backend.fake_mode': mode}))
    h.drive(3.0)
    assert h.wait_for(lambda: event_seen(h, event))
    assert not h.take('trajectory')
    assert not h.take('path')
    level = ERROR
    assert h.wait_for(lambda: any(s.level == level for s in
                                  h.diagnostics('cycle') + h.diagnostics('safety gate')))
    if mode != 'raise':
        assert h.take('rejected_trajectory'), 'rejected samples go to the debug topic'


def test_stale_result_is_dropped(make_harness):
    h = make_harness(overrides=fake_overrides(**{'backend.fake_delay_s': 1.0,
                                                 'output.max_result_age_s': 0.3}))
    h.drive(4.0)
    assert h.wait_for(lambda: event_seen(h, 'stale_result'))
    assert not h.take('trajectory')


@pytest.mark.parametrize(('overrides', 'needle'), [
    ({'selection.missing_camera_policy': 'bogus'}, 'missing_camera_policy'),
    ({'camera.front_tele.ar1_name': 'camera_roof_360'}, 'camera_roof_360'),
    ({'cycle_rate_hz': -1.0}, 'cycle_rate_hz'),
    ({'backend.kind': 'torch', 'backend.checkpoint': '/nonexistent/ar1'}, '/nonexistent/ar1'),
    pytest.param({'backend.kind': 'torch', 'backend.checkpoint': TINY, 'backend.device': 'cuda',
                  'backend.dtype': 'fp8'}, 'model load failed: FP8UnsupportedError: backend.dtype '
                 'fp8 needs a CUDA GPU', marks=pytest.mark.skipif(
                     torch.cuda.is_available(), reason='needs a machine without CUDA')),
])
def test_configuration_errors_leave_the_node_up(make_harness, overrides, needle):
    h = make_harness(overrides=fake_overrides(**overrides), active=False)
    assert h.node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert h.node._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED
    h.drive(1.5)
    assert h.wait_for(lambda: any(s.level == ERROR and needle in s.message
                                  for s in h.diagnostics('node')))
