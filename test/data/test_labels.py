"""CoC labels: schema checks line by line, matching to sample times, label targets."""
import json

import numpy as np
import pytest

from ar1_ros.data.dataset_targets import Target, plan_targets, uniform_keyframes
from ar1_ros.data.ego_track import Kinematics
from ar1_ros.data.keyframes import Keyframe, KeyframeRules
from ar1_ros.data.labels import CocLabel, LabelError, match, parse_label, read_labels

MS = 1_000_000
GOOD = {'bag': 'drive', 't0_ns': 1_000_000 * MS, 'decision': 'decelerate',
        'coc': 'The lead vehicle brakes, so slow down to keep a safe gap.'}


def write(tmp_path, lines, name='labels.jsonl'):
    path = tmp_path / name
    path.write_text('\n'.join(json.dumps(x) if isinstance(x, dict) else x for x in lines) + '\n')
    return path


def test_full_label_round_trips_with_defaults():
    full = dict(GOOD, critical_components=['lead vehicle'], provenance='teacher',
                meta_action={'longitudinal': 'decelerate'}, consistent=True, notes='n')
    label = parse_label(full)
    assert label.critical_components == ('lead vehicle',)
    assert label.to_json() == full
    minimal = parse_label(GOOD).to_json()
    assert minimal == dict(GOOD, critical_components=[], provenance='human', meta_action=None,
                           consistent=None, notes='')
    assert parse_label(minimal) == parse_label(GOOD)


@pytest.mark.parametrize(('change', 'message'), [
    ({'bag': None}, 'bag must be a non-empty string'),
    ({'bag': ' '}, 'bag must be a non-empty string'),
    ({'t0_ns': '1000'}, 't0_ns must be a positive integer'),
    ({'t0_ns': 1.5e9}, 't0_ns must be a positive integer'),
    ({'t0_ns': True}, 't0_ns must be a positive integer'),
    ({'t0_ns': -5}, 't0_ns must be a positive integer'),
    ({'decision': 'brake_hard'}, "decision 'brake_hard' is not one of"),
    ({'coc': ''}, 'coc must be a non-empty string'),
    ({'coc': 3}, 'coc must be a non-empty string'),
    ({'critical_components': 'lead'}, 'critical_components must be a list of strings'),
    ({'critical_components': [1]}, 'critical_components must be a list of strings'),
    ({'provenance': 'model'}, "provenance 'model' is not one of rule, teacher, human"),
    ({'meta_action': ['stop']}, 'meta_action must be an object or null'),
    ({'consistent': 'yes'}, 'consistent must be true, false or null'),
    ({'notes': 5}, 'notes must be a string'),
    ({'decison': 'stop'}, 'unknown key(s) decison'),
])
def test_each_bad_field_is_reported_with_its_line(tmp_path, change, message):
    path = write(tmp_path, [GOOD, {**GOOD, 't0_ns': GOOD['t0_ns'] + 1, **change}])
    result = read_labels(path)
    assert [lb.t0_ns for lb in result.labels] == [GOOD['t0_ns']]
    assert len(result.problems) == 1
    assert result.problems[0].startswith('labels.jsonl:2: ')
    assert message in result.problems[0]


def test_missing_keys_bad_json_comments_and_duplicates(tmp_path):
    other = dict(GOOD, bag='other', t0_ns=5 * MS)
    path = write(tmp_path, ['# teacher labels, run 3', '', GOOD,
                            {k: v for k, v in GOOD.items() if k not in ('coc', 'decision')},
                            '{"bag": "drive", ', '[1, 2]', dict(GOOD, coc='again'), other,
                            '   # indented comment'])
    result = read_labels(path)
    assert result.labels == [parse_label(GOOD), parse_label(other)]
    assert result.problems == [
        'labels.jsonl:4: missing required key(s) decision, coc',
        'labels.jsonl:5: not valid JSON (Expecting property name enclosed in double quotes, '
        'column 18)',
        'labels.jsonl:6: expected a JSON object, got list',
        f'labels.jsonl:7: duplicate of line 3 (bag drive, t0_ns {GOOD["t0_ns"]})']
    assert result.bags == ['drive', 'other']
    assert result.for_bag('other') == [parse_label(other)]
    assert result.for_bag('nothing') == []


def test_unreadable_files_raise(tmp_path):
    with pytest.raises(LabelError, match='cannot read labels file'):
        read_labels(tmp_path / 'none.jsonl')
    (tmp_path / 'bin.jsonl').write_bytes(b'{"bag": "\xff"}\n')
    with pytest.raises(LabelError, match='not UTF-8'):
        read_labels(tmp_path / 'bin.jsonl')


def label_at(t_ms, bag='drive'):
    return CocLabel(bag=bag, t0_ns=t_ms * MS, decision='stop', coc=f'at {t_ms}')


def test_match_nearest_within_tolerance():
    t0s = [1000 * MS, 1100 * MS, 1200 * MS]
    labels = [label_at(1040), label_at(1150), label_at(1260), label_at(900), label_at(1210)]
    attached, unmatched = match(labels, t0s)
    # 1150 is 50 ms from 1100 and 1200: the tolerance is inclusive, the earlier wins the tie;
    # 1210 takes 1200 over nobody; 1260 and 900 are more than 50 ms from any sample.
    assert attached == {1000 * MS: labels[0], 1100 * MS: labels[1], 1200 * MS: labels[4]}
    assert unmatched == [labels[3], labels[2]]
    assert match(labels, t0s, tolerance_ns=5 * MS) == ({}, sorted(labels, key=lambda x: x.t0_ns))
    assert match(labels, []) == ({}, sorted(labels, key=lambda x: x.t0_ns))


def test_two_labels_on_one_sample_keep_the_nearer():
    attached, unmatched = match([label_at(1030), label_at(1010)], [1000 * MS])
    assert attached == {1000 * MS: label_at(1010)}
    assert unmatched == [label_at(1030)]


def test_labels_move_keyframes_or_become_their_own_targets():
    keyframes = [Keyframe(3000 * MS, 'braking'), Keyframe(7000 * MS, 'turning')]
    targets = plan_targets(keyframes, [2960 * MS, 5530 * MS, 7049 * MS, 7051 * MS], 50 * MS)
    assert targets == [Target(2960 * MS, 'braking', True), Target(5530 * MS, 'label', True),
                       Target(7049 * MS, 'turning', True), Target(7051 * MS, 'label', True)]
    assert plan_targets(keyframes, [], 50 * MS) == [Target(3000 * MS, 'braking'),
                                                   Target(7000 * MS, 'turning')]


def test_uniform_grid_keeps_history_and_horizon_margins():
    stamps = (np.arange(100) * 100 * MS).astype(np.int64)  # 10 s at 10 Hz
    zeros = np.zeros(100)
    k = Kinematics(stamps, zeros, zeros, zeros, zeros, np.zeros((100, 2)))
    grid = [f.t_ns / (1000 * MS) for f in uniform_keyframes(k, KeyframeRules(), 0.5)]
    assert grid == pytest.approx([1.6, 2.1, 2.6, 3.1])  # up to 9.9 - 6.4 s
    assert {f.kind for f in uniform_keyframes(k, KeyframeRules(), 0.5)} == {'uniform'}
    assert uniform_keyframes(k, KeyframeRules(), 0.0) == []
    assert uniform_keyframes(None, KeyframeRules(), 1.0) == []
