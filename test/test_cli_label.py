"""`ar1 label`: labels of demo-world bags into `ar1 dataset build`, bag faults, usage errors."""
import shutil

from bags.drive_bag import corrupt_last_chunk
from data.label_world import demo_world
from model.golden import BASE_VLM
import pytest

from ar1_ros.cli import label as label_cli
from ar1_ros.cli.main import main
from ar1_ros.data.dataset_shards import read_index
from ar1_ros.data.labels import read_labels


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    world = demo_world(tmp_path_factory, ['lead_brake', 'overtake'], [0])
    return world / 'lead_brake_000', world / 'overtake_000'


def test_labels_feed_the_dataset_builder_unchanged(tmp_path, bags, capsys):
    out = tmp_path / 'labels.jsonl'
    assert main(['label', *map(str, bags), '--out', str(out), '--no-progress']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('lead_brake_000: ')
    assert '0 inconsistent' in lines[0]
    assert lines[-1].startswith(f'{len(read_labels(out))} labels (rule ')
    labels = read_labels(out)
    assert not labels.problems
    assert len(labels) >= 3
    assert all(lb.provenance == 'rule' and lb.consistent for lb in labels.labels)
    assert main(['dataset', 'build', *map(str, bags), '--out', str(tmp_path / 'ds'),
                 '--labels', str(out), '--no-progress']) == 0
    index = read_index(tmp_path / 'ds')
    assert index['label_problems'] == []
    for bag in bags:
        entry = index['bags'][bag.name]
        assert entry['labelled'] == len(labels.for_bag(bag.name)) >= 1
        assert entry['unmatched_labels'] == []


def test_missing_topic_lists_the_bag_topics(tmp_path, bags, capsys):
    out = tmp_path / 'labels.jsonl'
    code = main(['label', str(bags[0]), '--out', str(out), '--no-progress',
                 '--ros-args', '-p', 'ego_topic:=/none'])
    assert code == 1
    err = capsys.readouterr().err
    assert 'no topic /none; the bag has: ' in err
    assert '/localization/kinematic_state (nav_msgs/msg/Odometry)' in err
    assert out.read_text() == ''


def test_corrupt_chunk_keeps_earlier_labels_and_labels_the_next_bag(tmp_path, bags, capsys):
    broken = corrupt_last_chunk(shutil.copytree(bags[0], tmp_path / 'copy' / bags[0].name))
    intact, out = tmp_path / 'intact.jsonl', tmp_path / 'labels.jsonl'
    assert main(['label', str(bags[0]), '--out', str(intact), '--uniform', '1',
                 '--no-progress']) == 0
    assert main(['label', str(broken), str(bags[1]), '--out', str(out), '--uniform', '1',
                 '--no-progress']) == 1
    captured = capsys.readouterr()
    assert 'corrupt or truncated' in captured.err
    assert f'{broken.name}: ' in captured.out
    assert 'FAILED' in captured.out
    labels = read_labels(out)
    kept = [lb.t0_ns for lb in labels.for_bag(broken.name)]
    before = [lb.t0_ns for lb in read_labels(intact).labels]
    assert kept
    assert kept == before[:len(kept)], 'the labels before the fault are kept'
    assert labels.for_bag(bags[1].name), 'the next bag is labelled'


@pytest.mark.parametrize(('argv', 'message'), [
    ([], 'the following arguments are required: BAG, --out'),
    (['b'], 'the following arguments are required: --out'),
    (['b', '--out', 'x.jsonl', '--uniform', '-1'], '--uniform must be >= 0'),
    (['a/b', 'c/b', '--out', 'x.jsonl'], 'bag folder names must differ'),
    (['b', '--out', 'x.jsonl', '--teacher', 'nowhere'], '--teacher nowhere is not a folder'),
    (['b', '--out', 'x.jsonl', '--teacher', str(BASE_VLM)], 'no *.safetensors weights'),
    (['b', '--out', 'x.jsonl', '--ros-args', '-r', 'a:=b'], 'unsupported ROS argument'),
])
def test_usage_errors_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(['label', *argv]) == 2
    assert message in capsys.readouterr().err


def test_existing_out_needs_overwrite_and_help_exits_0(tmp_path, bags, capsys):
    out = tmp_path / 'labels.jsonl'
    out.write_text('keep me\n')
    assert main(['label', str(bags[0]), '--out', str(out)]) == 2
    assert 'pass --overwrite' in capsys.readouterr().err
    assert out.read_text() == 'keep me\n'
    assert main(['label', str(bags[0]), '--out', str(out), '--overwrite', '--no-progress']) == 0
    assert read_labels(out).labels
    assert main(['label', '--help']) == 0
    assert 'usage: ar1 label' in capsys.readouterr().out


def test_an_action_named_first_is_dispatched(monkeypatch):
    calls = []
    monkeypatch.setitem(label_cli.ACTIONS, 'review', f'{__name__}:_review')
    monkeypatch.setattr(f'{__name__}._review', lambda argv: calls.append(argv) or 7,
                        raising=False)
    assert main(['label', 'review', 'labels.jsonl', '--port', '8080']) == 7
    assert calls == [['labels.jsonl', '--port', '8080']]
