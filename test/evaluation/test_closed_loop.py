"""Closed loop: episodes on a test-double world, then the real demo world and `ar1 closed-loop`."""
import json
import math

import pytest
from ros.processes import LOOSE_VALIDATOR, TINY_BACKEND, write_params
import yaml

from ar1_ros.cli.main import main
from ar1_ros.evaluation.closed_loop import (
    ConstantVelocityPolicy,
    EpisodeSettings,
    ExpertPolicy,
    ModelPolicy,
    TimeLimited,
    run_episode,
)
from ar1_ros.evaluation.closed_loop_report import write_outputs
from ar1_ros.evaluation.closed_loop_suite import ModelSetup, Suite, SuiteSettings
from ar1_ros.runtime.backends.base import BackendSettings, create_backend
from ar1_ros.runtime.config import RuntimeConfig
from ar1_ros.runtime.worker import InferenceWorker
from ar1_ros.sim.rig import load_rig
from evaluation.closed_loop_double import LaneWorld

SMALL = {'width': 96, 'height': 64}  # renders in about a millisecond per camera
FAKE_BACKEND = {'backend.kind': 'fake', 'backend.device': 'cpu', 'backend.dtype': 'float32'}


def fake_model(rig, mode='nominal') -> ModelSetup:
    runtime = RuntimeConfig(cameras=tuple(camera.spec() for camera in rig))
    backend = create_backend(BackendSettings(kind='fake', fake_mode=mode))
    return ModelSetup(runtime, InferenceWorker(backend, runtime.validator, lambda r: None))


def test_expert_stops_and_constant_velocity_collides_on_the_double():
    expert = run_episode(LaneWorld(), ExpertPolicy())
    assert not expert.collided
    assert not expert.off_road
    assert expert.speeds[-1] < 0.5
    assert 35.0 < expert.progress_m < 45.0
    assert expert.controls.shape == (len(expert.poses) - 1, 2)
    cv = run_episode(LaneWorld(), ConstantVelocityPolicy(0.5))
    assert cv.collided
    assert 3.5 < cv.collision_time_s < 5.0
    assert cv.duration_s == pytest.approx(cv.collision_time_s), 'ends at the first collision'
    assert cv.plans >= 5
    assert not cv.skips


def test_model_policy_runs_through_the_runtime_with_the_fake_double():
    rig = load_rig(SMALL)
    model = fake_model(rig)
    policy = ModelPolicy(model.runtime, model.worker, rig, replan_s=0.5)
    result = run_episode(TimeLimited(LaneWorld(), 3.0), policy)
    assert result.error == ''
    # Warm-up 1.6 s under the expert, then a plan every 0.5 s, all through the safety gate.
    assert result.plans == 3
    assert not result.skips
    assert policy.reasoning[0].startswith('FAKE BACKEND (test double)')
    failing = fake_model(rig, 'raise')
    broken = ModelPolicy(failing.runtime, failing.worker, rig, replan_s=0.5)
    result = run_episode(TimeLimited(LaneWorld(), 3.0), broken)
    assert 'fake backend fault' in result.error
    assert result.duration_s == pytest.approx(1.6)


def test_suite_metrics_and_report_on_the_double(tmp_path):
    rig = load_rig(SMALL)
    settings = SuiteSettings(('lane_double',), (0, 1), ('cv', 'model'))
    suite = Suite(settings, rig, lambda name, seed: LaneWorld(seed), fake_model(rig))
    cases = [suite.run_case(*case) for case in suite.cases()]
    metrics = cases[0].metrics
    assert metrics['expert']['progress_rel'] == pytest.approx(1.0)
    assert metrics['cv']['collision']
    assert not metrics['expert']['collision']
    cv_scores = cases[0].scores['cv']
    assert [s.t_s for s in cv_scores][:1] == [pytest.approx(1.6)]
    assert all(s.min_ade_3s < s.min_ade_6_4s for s in cv_scores), 'errors grow with time'
    model = cases[0].scores['model']
    assert len(model) == len(cv_scores)
    assert all(s.label == 'stop' and s.decision == 'keep_lane' for s in model)
    assert metrics['model']['decision_accuracy'] == 0.0
    paths = write_outputs(tmp_path, cases, ('model', 'cv', 'expert'), {'note': 'test'})
    data = json.loads(paths['json'].read_text())
    assert data['aggregate']['cv']['collision_rate'] == 1.0
    assert data['aggregate']['expert']['collision_rate'] == 0.0
    assert data['aggregate']['model']['keyframes'] == 2 * len(model)
    assert len(data['episodes']) == 6
    assert (tmp_path / 'plots' / 'lane_double_001.png').stat().st_size > 5000
    report = paths['report'].read_text()
    assert '| cv |' in report
    assert 'What the numbers mean' in report


# ---- the real demo world (sim.world, sim.render) ---------------------------------------------

@pytest.fixture(scope='module')
def rig_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('rig') / 'rig.yaml'
    path.write_text(yaml.safe_dump(SMALL))
    return path


def test_expert_and_cv_drive_a_real_scenario():
    from ar1_ros.sim.scenarios import SCENARIOS, make_world
    expert = run_episode(TimeLimited(make_world(SCENARIOS[0], 0), 6.0), ExpertPolicy())
    assert not expert.collided
    assert not expert.error
    assert expert.progress_m > 0
    cv = run_episode(TimeLimited(make_world(SCENARIOS[0], 0), 6.0), ConstantVelocityPolicy(0.5),
                     EpisodeSettings(replan_s=0.5))
    assert not cv.error
    assert cv.plans >= 8


def closed_loop(tmp_path, *args):
    return main(['closed-loop', '--out', str(tmp_path / 'out'), '--no-progress', *args])


def test_tiny_checkpoint_drives_end_to_end(tmp_path, rig_file, capsys):
    params = write_params(tmp_path / 'params.yaml', dict(TINY_BACKEND, **LOOSE_VALIDATOR))
    code = closed_loop(tmp_path, '--params', str(params), '--scenarios', 'lead_brake',
                       '--seeds', '3', '--rig', str(rig_file), '--max-time', '8.6')
    assert code == 0, capsys.readouterr().err
    out = tmp_path / 'out'
    data = json.loads((out / 'closed_loop.json').read_text())
    model = data['aggregate']['model']
    assert model['episodes'] == 1
    assert model['failed'] == 0
    assert model['plans'] >= 3, model
    assert model['keyframes'] >= 1
    for key in ('progress_m', 'min_ade_3s', 'min_ade_6_4s', 'comfort_rate'):
        assert math.isfinite(model[key]), key
    assert data['meta']['model'] == 'checkpoint'
    assert (out / 'report.md').is_file()
    assert (out / 'plots' / 'lead_brake_003.png').is_file()
    assert (out / 'plots' / 'summary.png').is_file()
    printed = capsys.readouterr().out
    assert '| model |' in printed
    assert 'report' in printed


def test_a_failing_backend_fails_the_episode_not_the_run(tmp_path, rig_file, capsys):
    params = write_params(tmp_path / 'params.yaml', dict(FAKE_BACKEND,
                                                         **{'backend.fake_mode': 'raise'}))
    code = closed_loop(tmp_path, '--params', str(params), '--scenarios', 'curve',
                       '--rig', str(rig_file), '--max-time', '2.5', '--no-open-loop')
    assert code == 1
    assert 'fake backend fault' in capsys.readouterr().out
    data = json.loads((tmp_path / 'out' / 'closed_loop.json').read_text())
    assert data['aggregate']['model']['failed'] == 1
    assert data['aggregate']['expert']['failed'] == 0


@pytest.mark.parametrize(('args', 'message'), [
    (('--scenarios', 'nowhere'), 'unknown scenario'),
    (('--seeds', 'x-3'), 'seeds must look like'),
    (('--checkpoint', '/no/such/checkpoint'), 'no such folder'),
    (('--replan-s', '0'), '--replan-s must be > 0'),
    (('--baselines', 'cv,oracle'), '--baselines'),
    (('--baselines-only', '--rig', '/no/such/rig.yaml'), 'rig:'),
])
def test_usage_errors_exit_2(tmp_path, capsys, args, message):
    assert closed_loop(tmp_path, *args) == 2
    assert message in capsys.readouterr().err
