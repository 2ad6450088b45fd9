"""`ar1 label review`: the page it writes, bags that fail, usage errors (no browser needed)."""
import dataclasses
import shutil

from bags.drive_bag import corrupt_last_chunk
from data.review_world import review_inputs
import pytest

from ar1_ros.cli.main import main
from ar1_ros.data.labelling import write_labels
from ar1_ros.data.labels import read_labels


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    return review_inputs(tmp_path_factory)


def review(inputs, out, *extra):
    return main(['label', 'review', str(inputs.labels), '--bags', *map(str, inputs.bags),
                 '--out', str(out), '--params', str(inputs.params), *extra])


def test_writes_one_card_per_label(inputs, tmp_path, capsys):
    out = tmp_path / 'page.html'
    assert review(inputs, out) == 0
    lines = capsys.readouterr().out.splitlines()
    labels = read_labels(inputs.labels).labels
    count, first = len(labels), sum(lb.bag == inputs.bags[0].name for lb in labels)
    assert lines[0] == f'lead_brake_000: {first} labels, {first} with frames; no frames: none'
    assert lines[-1].startswith(f'{count} labels ({count} with frames, 0 of bags not given) in ')
    page = out.read_text()
    assert page.count('<section class="card"') == count
    assert page.count('class="frame"') == count * 16
    assert page.count('<svg class="bev"') == count
    assert not list(tmp_path.glob('.*.tmp')), 'written atomically, nothing left over'


def test_a_failing_bag_exits_1_and_still_writes_the_page(inputs, tmp_path, capsys):
    name = inputs.bags[0].name
    damaged = corrupt_last_chunk(shutil.copytree(inputs.bags[0], tmp_path / 'copy' / name))
    broken = damaged.rename(tmp_path / name)  # labels name their bag by its folder
    labels = read_labels(inputs.labels).labels
    last = max(lb.t0_ns for lb in labels if lb.bag == name)
    late = dataclasses.replace(labels[0], t0_ns=last + 100 * 10**9)  # not reached
    labels_file = tmp_path / 'labels.jsonl'
    write_labels(labels_file, [*labels, late])
    out = tmp_path / 'page.html'
    code = main(['label', 'review', str(labels_file), '--bags', str(broken),
                 '--out', str(out), '--params', str(inputs.params)])
    assert code == 1
    captured = capsys.readouterr()
    assert 'corrupt or truncated' in captured.err
    assert 'FAILED' in captured.out
    page = out.read_text()
    assert page.count('<section class="card"') == len(labels) + 1, 'no label is lost'
    assert page.count('no frames: bag_not_given: bag overtake_000 is not among --bags') == sum(
        lb.bag == 'overtake_000' for lb in labels)
    assert page.count('no frames: read_fault: ') == 1
    assert page.count('data-frames="yes"') == sum(lb.bag == name for lb in labels), (
        'the labels before the fault have their frames')


@pytest.mark.parametrize(('argv', 'message'), [
    (['--bags', 'b', '--out', 'p.html'], 'the following arguments are required: LABELS.jsonl'),
    (['missing.jsonl', '--bags', 'b', '--out', 'p.html'],
     'cannot read labels file missing.jsonl: No such file or directory'),
    (['binary.jsonl', '--bags', 'b', '--out', 'p.html'], 'is not UTF-8 text'),
    (['labels.jsonl', '--bags', 'a/b', 'c/b', '--out', 'p.html'], 'bag folder names must differ'),
    (['labels.jsonl', '--bags', 'b', '--out', 'p.html', '--width', '8'], '--width must be'),
    (['labels.jsonl', '--bags', 'b', '--out', 'nowhere/p.html'], 'does not exist'),
    (['labels.jsonl', '--bags', 'b', '--out', '.'], 'is a folder'),
    (['labels.jsonl', '--bags', 'b', '--out', 'p.html', '--params', 'bad.yaml'], 'parameters: '),
])
def test_usage_errors_exit_2_and_write_nothing(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'labels.jsonl').write_text('')
    (tmp_path / 'binary.jsonl').write_bytes(b'\xff\xfe\x00')
    (tmp_path / 'bad.yaml').write_text('/**:\n  ros__parameters:\n    no_such_parameter: 1\n')
    assert main(['label', 'review', *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    if 'labels file' in message or 'UTF-8' in message:
        assert len(err.strip().splitlines()) == 1, 'one clear line'
    assert not (tmp_path / 'p.html').exists()


def test_existing_out_needs_overwrite_help_and_bare_call(inputs, tmp_path, capsys):
    out = tmp_path / 'page.html'
    out.write_text('keep me\n')
    assert review(inputs, out) == 2
    assert 'pass --overwrite' in capsys.readouterr().err
    assert out.read_text() == 'keep me\n'
    assert review(inputs, out, '--overwrite') == 0
    assert out.read_text().startswith('<!DOCTYPE html>')
    assert main(['label', 'review', '--help']) == 0
    assert 'usage: ar1 label review' in capsys.readouterr().out
    assert main(['label', 'review']) == 2
    assert 'usage: ar1 label review' in capsys.readouterr().err


def test_skipped_lines_are_reported_and_shown(inputs, tmp_path, capsys):
    labels = tmp_path / 'labels.jsonl'
    labels.write_text(inputs.labels.read_text() + '{"bag": "x"}\n')
    out = tmp_path / 'page.html'
    assert main(['label', 'review', str(labels), '--bags', *map(str, inputs.bags),
                 '--out', str(out), '--params', str(inputs.params)]) == 0
    bad = len(inputs.labels.read_text().splitlines()) + 1
    assert f'labels.jsonl:{bad}: missing required key(s)' in capsys.readouterr().err
    assert f'labels.jsonl:{bad}: missing required key(s) t0_ns, decision, coc (skipped' in (
        out.read_text())
