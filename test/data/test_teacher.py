"""The teacher VLM path: answer parsing and rejection, history-only prompts, fallback to rules.

The model is the golden tiny Qwen3-VL base VLM with seeded random weights: it runs end to end
but its answers are noise, so they must be rejected with a reason. Accepted answers are tested
with FixedAnswerTeacher, a test double that replaces only the generate step.
"""
import itertools
import json

from model.golden import BASE_VLM
import numpy as np
import pytest

from ar1_ros.data.label_drafts import DraftRejectedError, Priors
from ar1_ros.data.labelling import label_bag
from ar1_ros.data.meta_actions import MetaAction
from ar1_ros.data.teacher import (
    Teacher,
    TeacherError,
    check_not_after,
    history_frames,
    parse_answer,
)
from ar1_ros.runtime.images import EncodedImage, Frame
from ar1_ros.runtime.types import EgoHistory, Observation, Pose
from data.label_world import demo_world, label_settings, tiny_teacher

MS = 1_000_000
T0 = 5_000 * MS
PRIORS = Priors(12.0, 13.0, 1.5, 0.0, MetaAction('decelerate', 'keep_lane'))
REASONS = {'no_json', 'unknown_decision', 'empty_coc', 'bad_components', 'coc_disagrees'}


def answer(decision, coc, components=('lead vehicle braking',)):
    return json.dumps({'decision': decision, 'critical_components': list(components),
                       'coc': coc})


def test_answers_are_parsed_from_chatter_and_code_fences():
    text = 'Sure! ```json\n' + answer('decelerate', 'Slow down for the braking lead.') + '\n```'
    draft = parse_answer(text)
    assert (draft.decision, draft.coc) == ('decelerate', 'Slow down for the braking lead.')
    assert draft.critical_components == ('lead vehicle braking',)


@pytest.mark.parametrize(('text', 'reason'), [
    ('I would slow down.', 'no_json'),
    ('{"decision": "stop", "coc": ', 'no_json'),
    ('[1, 2]', 'no_json'),
    (answer('brake_hard', 'Brake hard.'), 'unknown_decision'),
    (answer('stop', '  '), 'empty_coc'),
    ('{"decision": "stop", "coc": "Stop now.", "critical_components": "light"}',
     'bad_components'),
    (answer('stop', 'Turn left to avoid the cones.'), 'coc_disagrees'),
    (answer('stop', 'The road is empty.'), 'coc_disagrees'),
])
def test_unusable_answers_are_rejected_with_a_reason(text, reason):
    with pytest.raises(DraftRejectedError) as error:
        parse_answer(text)
    assert error.value.reason == reason


def _frame(stamp_ms, shade=100):
    return Frame.from_array(stamp_ms * MS, np.full((32, 64, 3), shade, dtype=np.uint8))


def observation() -> Observation:
    """Two cameras; the second's newest selected frame lies 40 ms after t0, one slot is black."""
    front = tuple(_frame(t) for t in (4700, 4800, 4900, 5000))
    side = (_frame(4750), Frame.from_array(-1, np.zeros((32, 64, 3), np.uint8)),
            _frame(4950), _frame(5040))
    history = EgoHistory(np.zeros((16, 3)), np.tile(np.eye(3), (16, 1, 1)),
                         T0 - np.arange(15, -1, -1) * 100 * MS, 12.0,
                         Pose(np.zeros(3), np.eye(3)), 'odom')
    return Observation(T0, ('front', 'side'), (front, side), history)


def test_only_frames_at_or_before_t0_are_shown():
    kept = history_frames(observation())
    assert [(cam, [s // MS for s, _ in frames]) for cam, frames in kept] == [
        ('front', [4700, 4800, 4900, 5000]), ('side', [4750, 4950])]
    check_not_after([T0 - 1, T0], T0)
    with pytest.raises(ValueError, match='after t0'):
        check_not_after([T0, T0 + 1], T0)


@pytest.fixture(scope='module')
def teacher(tmp_path_factory):
    return Teacher(tiny_teacher(tmp_path_factory), 'cpu', max_new_tokens=12)


def test_prompt_holds_the_history_frames_and_the_priors(teacher):
    inputs = teacher.inputs(observation(), PRIORS)
    grids = inputs['image_grid_thw']
    assert grids.shape == (6, 3)  # 4 front + 2 side frames, none after t0
    image_id = teacher.tokenizer.convert_tokens_to_ids(teacher.image_token)
    ids = inputs['input_ids'][0]
    assert int((ids == image_id).sum()) == int(grids.prod(dim=1).sum()) // 4
    assert inputs['pixel_values'].shape[0] == int(grids.prod(dim=1).sum())
    text = teacher.tokenizer.decode(ids.tolist())
    assert 'Camera side, frames at t0 -0.2 s, -0.1 s:' in text
    assert 'speed 12.0 m/s, down from 13.0 m/s 1.5 s ago' in text
    assert 'longitudinal decelerate, lateral keep_lane' in text


def test_random_weights_answer_noise_that_is_rejected(teacher):
    text = teacher.generate(teacher.inputs(observation(), PRIORS))
    assert isinstance(text, str)
    with pytest.raises(DraftRejectedError) as error:
        parse_answer(text)
    assert error.value.reason in REASONS


def test_a_frame_that_does_not_decode_rejects_the_draft(teacher):
    broken = Frame(T0, EncodedImage(b'\xff\xd8 not a jpeg', 'jpeg', True), (32, 64))
    obs = observation()
    obs = Observation(T0, obs.camera_names, (obs.frames[0][:3] + (broken,), obs.frames[1]),
                      obs.history)
    with pytest.raises(DraftRejectedError) as error:
        teacher.draft(obs, PRIORS)
    assert error.value.reason == 'bad_image'


class FixedAnswerTeacher(Teacher):
    """Test double: the real prompt is built, the model is not asked; answers cycle."""

    def __init__(self, folder, answers):
        super().__init__(folder, 'cpu', max_new_tokens=4)
        self._answers = itertools.cycle(answers)
        self.seen = []  # (t0_ns, stamps of the frames shown)

    def inputs(self, observation, priors):
        self.seen.append((observation.t0_ns, [s for _, kept in history_frames(observation)
                                              for s, _ in kept]))
        return super().inputs(observation, priors)

    def generate(self, inputs):
        return next(self._answers)


def test_accepted_rejected_and_inconsistent_teacher_drafts(tmp_path_factory):
    world = demo_world(tmp_path_factory, ['lead_brake'], [0])
    double = FixedAnswerTeacher(tiny_teacher(tmp_path_factory), [
        answer('keep_lane', 'Keep the lane behind the lead vehicle.'),
        answer('turn_left', 'Turn left at the junction.'),  # the recorded path does not
        answer('stop', 'Accelerate past the truck.')])
    result = label_bag(world / 'lead_brake_000', label_settings(uniform_s=2.0), double)
    labels = result.labels
    assert len(labels) >= 3
    assert len(double.seen) == len(labels)
    assert all(len(stamps) == 16 and max(stamps) <= t0 for t0, stamps in double.seen)
    by_decision = {lb.decision: lb for lb in labels}
    keep, turn = by_decision['keep_lane'], by_decision['turn_left']
    assert (keep.provenance, keep.consistent, keep.coc) == (
        'teacher', True, 'Keep the lane behind the lead vehicle.')
    assert (turn.provenance, turn.consistent) == ('teacher', False), 'flagged, not dropped'
    rejected = [lb for lb in labels if lb.provenance == 'rule']
    assert rejected
    assert all('teacher draft rejected: coc_disagrees' in lb.notes
                            for lb in rejected)
    assert result.teacher_accepted + sum(result.teacher_rejected.values()) == len(labels)
    assert result.inconsistent == sum(lb.decision == 'turn_left' for lb in labels)


def test_folders_that_are_no_teacher_are_refused(tmp_path):
    with pytest.raises(TeacherError, match='no \\*.safetensors'):
        Teacher(BASE_VLM)
    (tmp_path / 'config.json').write_text('{"model_type": "llama"}')
    with pytest.raises(TeacherError, match='not one of qwen2_5_vl, qwen3_vl'):
        Teacher(tmp_path)
    with pytest.raises(TeacherError, match='no readable config.json'):
        Teacher(tmp_path / 'missing')
