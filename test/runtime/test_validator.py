import numpy as np
import pytest

from ar1_ros.runtime.config import ValidatorConfig
from ar1_ros.runtime.kinematics import integrate_unicycle
from ar1_ros.runtime.types import BackendOutput
from ar1_ros.runtime.validator import validate, validate_all

DT = 0.1
CFG = ValidatorConfig()


def _output(accel, curvature, v0, samples=1):
    actions = np.zeros((samples, 64, 2))
    actions[..., 0] = accel
    actions[..., 1] = curvature
    xyz, rot, _ = integrate_unicycle(actions, v0, DT)
    return BackendOutput(xyz, rot, actions, ['text'] * samples, [1] * samples, {}, DT)


def _single_reason(verdict, word):
    assert not verdict.ok
    assert len(verdict.reasons) == 1, verdict.reasons
    assert verdict.reasons[0].startswith(word), verdict.reasons
    return verdict.reasons[0]


def test_nominal_plan_passes():
    verdict = validate(_output(0.2, 0.01, 10.0), 0, 10.0, CFG)
    assert verdict.ok
    assert verdict.reasons == ()


def test_standing_still_passes():
    assert validate(_output(0.0, 0.0, 0.0), 0, 0.0, CFG).ok


def test_acceleration_above_bound():
    reason = _single_reason(validate(_output(3.0, 0.0, 5.0), 0, 5.0,
                                     ValidatorConfig(max_accel=2.0)), 'accel')
    assert reason == 'accel 3 m/s² at t=0.0 s outside [-9.8, 2]'


def test_acceleration_below_bound():
    reason = _single_reason(validate(_output(-1.0, 0.0, 20.0), 0, 20.0,
                                     ValidatorConfig(min_accel=-0.5)), 'accel')
    assert '-1 m/s²' in reason
    assert '[-0.5, 9.8]' in reason


@pytest.mark.parametrize('curvature', [0.3, -0.3])
def test_curvature_bound(curvature):
    reason = _single_reason(validate(_output(0.0, curvature, 1.0), 0, 1.0, CFG), 'curvature')
    assert f'{curvature:g} 1/m' in reason
    assert '[-0.25, 0.25]' in reason


def test_jerk_bound():
    accel = np.where(np.arange(64) >= 10, 1.0, 0.0)
    reason = _single_reason(validate(_output(accel, 0.0, 5.0), 0, 5.0,
                                     ValidatorConfig(max_jerk=5.0)), 'jerk')
    assert reason.startswith('jerk 10 m/s³ at t=1.0 s')


def test_lateral_acceleration_bound():
    # 20 m/s on a 20 m radius: 20 m/s², curvature 0.05 itself is allowed.
    reason = _single_reason(validate(_output(0.0, 0.05, 20.0), 0, 20.0, CFG), 'lateral accel')
    assert 'lateral accel 20 m/s²' in reason
    assert 'above 12' in reason


def test_reversing_speed_bound():
    # Braking at 1 m/s² from 2 m/s for 6.4 s ends at -4.4 m/s: AR1 never plans reversing.
    reason = _single_reason(validate(_output(-1.0, 0.0, 2.0), 0, 2.0, CFG), 'speed')
    assert reason == 'speed -4.4 m/s at t=6.4 s below -0.5'


def test_first_point_far_from_current_speed():
    # The plan was integrated from 20 m/s, the vehicle drives 5 m/s: 2.0 m instead of 0.5 m.
    reason = _single_reason(validate(_output(0.0, 0.0, 20.0), 0, 5.0, CFG), 'first point')
    assert '2.00 m' in reason
    assert '0.50 ± 0.75 m' in reason


def test_first_point_within_tolerance():
    assert validate(_output(0.0, 0.0, 12.0), 0, 10.0, CFG).ok


def test_several_bounds_are_all_reported():
    verdict = validate(_output(12.0, 0.5, 10.0), 0, 10.0, CFG)
    assert not verdict.ok
    assert [r.split(' ')[0] for r in verdict.reasons] == ['accel', 'curvature', 'lateral']


@pytest.mark.parametrize(('array', 'value'), [('trajectory_xyz', np.nan),
                                              ('trajectory_rot', np.inf),
                                              ('actions', np.nan)])
def test_non_finite_values_are_rejected(array, value):
    output = _output(0.0, 0.0, 10.0)
    getattr(output, array)[0, 5, 0] = value
    verdict = validate(output, 0, 10.0, CFG)
    assert not verdict.ok
    name = {'trajectory_xyz': 'xyz', 'trajectory_rot': 'rot', 'actions': 'actions'}[array]
    assert verdict.reasons == (f'non-finite values in {name}',)


def test_non_finite_speed_is_rejected():
    verdict = validate(_output(0.0, 0.0, 10.0), 0, float('nan'), CFG)
    assert not verdict.ok
    assert 'not finite' in verdict.reasons[0]


def test_validate_all_gives_one_verdict_per_sample():
    output = _output(0.0, 0.0, 10.0, samples=3)
    output.actions[1, :, 1] = 0.4
    verdicts = validate_all(output, 10.0, CFG)
    assert [v.ok for v in verdicts] == [True, False, True]


def test_inconsistent_shapes_raise():
    output = _output(0.0, 0.0, 10.0, samples=2)
    output.actions = output.actions[:1]
    with pytest.raises(ValueError, match='shapes disagree'):
        validate_all(output, 10.0, CFG)
