"""`ar1 label review` without a browser: what is gathered per label, the page text, the SVG.

The browser drives the page in test_label_review.py; here the data behind it is checked against
independent computations (the odometry track, meta_actions.compatible, the observation the
builder's sampler assembles at the label's t0).
"""
import base64
import dataclasses
import io
import json
import re
from xml.etree import ElementTree

import numpy as np
from PIL import Image
import pytest

from ar1_ros.data.bags import BagReader
from ar1_ros.data.dataset_targets import BagSampling, plan_targets
from ar1_ros.data.label_review import ReviewSettings, compatibility, gather_review
from ar1_ros.data.labels import DEFAULT_TOLERANCE_NS, read_labels
from ar1_ros.data.meta_actions import MetaAction, compatible
from ar1_ros.data.review_bev import bev_svg
from ar1_ros.data.review_page import render_page
from ar1_ros.nodes.params_file import load_config
from ar1_ros.runtime.presentation import DECISIONS
from ar1_ros.runtime.types import Observation
from data.label_world import label_settings
from data.review_world import params_file, review_inputs

SVG = '{http://www.w3.org/2000/svg}'


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    return review_inputs(tmp_path_factory)


def settings_of(params, width=48) -> ReviewSettings:
    config = load_config(params)
    base = label_settings()
    return ReviewSettings(base.topics, config.runtime, width=width)


def observations(bag, t0s, settings):
    """Return {t0: Observation} the builder's sampler assembles at these label t0s."""
    found = {}
    with BagReader(bag) as reader:
        sampling = BagSampling(reader, settings.topics, settings.runtime)
        sampling.run(plan_targets([], t0s, DEFAULT_TOLERANCE_NS), DEFAULT_TOLERANCE_NS,
                     lambda outcomes: found.update((t.t_ns, o) for t, o in outcomes
                                                   if isinstance(o, Observation)))
    return found, sampling.track


def picture(uri: str) -> Image.Image:
    assert uri.startswith('data:image/jpeg;base64,')
    return Image.open(io.BytesIO(base64.b64decode(uri.split(',', 1)[1])))


def test_each_label_gets_the_frames_and_paths_of_its_t0(inputs):
    labels = read_labels(inputs.labels).labels
    settings = settings_of(inputs.params)
    items, errors = gather_review(labels, inputs.bags, settings)
    assert errors == {}
    assert [item.label for item in items] == labels, 'input order, none dropped'
    bag = inputs.bags[0]
    mine = [item for item in items if item.label.bag == bag.name]
    seen, track = observations(bag, [item.label.t0_ns for item in mine], settings)
    for item in mine:
        obs = seen[item.label.t0_ns]
        assert (item.problem, item.sample_t0_ns) == ('', item.label.t0_ns)
        assert [name for name, _ in item.strips] == list(obs.camera_names)
        for (_, shots), frames in zip(item.strips, obs.frames, strict=True):
            assert [s.caption for s in shots] == [
                f't0{(f.stamp_ns - obs.t0_ns) / 1e6:+.0f} ms' for f in frames]
            assert picture(shots[-1].uri).size == (48, 24), 'scaled down to --width'
        np.testing.assert_allclose(item.history_xy, obs.history.xyz[:, :2])
        assert np.allclose(item.history_xy[-1], 0.0)
        np.testing.assert_allclose(item.future_xy, track.future(obs.t0_ns)[0][:, :2])
        assert picture(item.overlay.uri).size == (48, 24)
        meta = MetaAction(**item.label.meta_action)
        assert item.compatible == {d: compatible(d, meta) for d in DECISIONS}
        assert item.compatible[item.label.decision] is item.label.consistent


def test_a_calibration_for_another_resolution_draws_nothing_and_says_so(inputs):
    from ar1_ros.cli.eval import default_params  # 1920x1080 front camera; the bags are smaller
    label = read_labels(inputs.labels).labels[0]
    item = gather_review([label], inputs.bags, settings_of(default_params(), 64))[0][0]
    assert item.strips, 'the frames are shown'
    assert item.overlay is None, 'no misplaced path'
    assert any('principal point (960, 540) outside the' in n and 'another resolution' in n
               and '--params' in n for n in item.notes), item.notes


def test_overlay_draws_the_recorded_future_only_on_a_calibrated_front_camera(inputs, tmp_path):
    label = read_labels(inputs.labels).labels[0]
    drawn = gather_review([label], inputs.bags, settings_of(inputs.params, 64))[0][0]
    plain = gather_review([label], inputs.bags,
                          settings_of(params_file(tmp_path, calibrated=False), 64))[0][0]
    assert plain.overlay is None
    assert any('camera_front_wide_120fov is not calibrated' in n for n in plain.notes)
    front = dict(plain.strips)['camera_front_wide_120fov'][-1]
    changed = np.abs(np.asarray(picture(drawn.overlay.uri), float)
                     - np.asarray(picture(front.uri), float)).max(axis=2) > 60
    assert changed[changed.shape[0] // 2:].sum() > 20, 'the path is drawn on the road'
    assert not changed[:changed.shape[0] // 4].any(), 'nothing in the sky'


def test_labels_without_frames_keep_their_place_with_a_diagnostic(inputs, tmp_path):
    first = read_labels(inputs.labels).labels[0]
    ms = 1_000_000
    labels = [dataclasses.replace(first, bag='ghost_bag'),
              dataclasses.replace(first, t0_ns=first.t0_ns - 1000 * ms, meta_action=None),
              first,
              dataclasses.replace(first, t0_ns=first.t0_ns + 20 * ms),  # the same sample
              dataclasses.replace(first, t0_ns=first.t0_ns + 60 * ms)]  # nearest: +100 ms
    items, errors = gather_review(labels, [inputs.bags[0]], settings_of(inputs.params))
    assert errors == {}
    assert [item.label for item in items] == labels
    assert items[0].problem == 'no frames: bag_not_given: bag ghost_bag is not among --bags'
    assert items[1].problem.startswith('no frames: ego_not_covered: ')
    assert items[1].compatible == dict.fromkeys(DECISIONS)
    assert (items[2].problem, items[2].sample_t0_ns) == ('', first.t0_ns)
    assert items[3].problem == ('no frames: shared_sample: its sample went to another label '
                                'within 50 ms')
    assert items[4].sample_t0_ns == first.t0_ns + 100 * ms
    assert 'frames of the sample t0 +40 ms from the label' in items[4].notes[0]
    broken = tmp_path / first.bag
    broken.mkdir()  # a folder that is no bag
    items, errors = gather_review(labels[2:3], [broken], settings_of(inputs.params))
    assert list(errors) == [first.bag]
    assert items[0].problem == f'no frames: bag_error: {errors[first.bag]}'


@pytest.mark.parametrize('meta', [None, {}, {'longitudinal': 'fly', 'lateral': 'keep_lane'}, 3])
def test_unusable_meta_actions_give_an_unknown_table(meta):
    table, note = compatibility(meta)
    assert table == dict.fromkeys(DECISIONS)
    assert 'consistency stays unknown' in note


def test_page_data_survives_script_text_and_keeps_exact_stamps(inputs):
    label = read_labels(inputs.labels).labels[0]
    nasty = dataclasses.replace(label, coc='Stop </script><script>alert(1)</script> & <b>',
                                notes='a "quoted" <note>')
    items, _ = gather_review([nasty], [], settings_of(inputs.params))
    page = render_page(items, 'labels.jsonl', 'ab' * 32, ['x.jsonl:3: not valid JSON'])
    block = re.search(r'<script type="application/json" id="review-data">(.*?)</script>',
                      page, re.S).group(1)
    data = json.loads(block)
    assert data['items'][0]['label']['coc'] == nasty.coc
    assert data['items'][0]['label']['t0_ns'] == str(label.t0_ns)
    assert data['export_name'] == 'labels.reviewed.jsonl'
    assert page.count('<script') == 2, 'the CoC opened no script element'
    assert not re.search(r'<(?:link|img|script)[^>]* (?:src|href)="(?!data:)', page)
    assert 'x.jsonl:3: not valid JSON' in page


def test_bev_svg_puts_forward_up_and_left_left():
    history = np.stack([np.linspace(-15.0, 0.0, 16), np.zeros(16)], axis=1)
    t = np.arange(1, 65) * 0.1
    future = np.stack([10.0 * t, 0.5 * t ** 2], axis=1)  # forward, drifting left
    root = ElementTree.fromstring(bev_svg(history, future, size=200))
    lines = {el.get('class'): el.get('points') for el in root.iter(f'{SVG}polyline')}
    end_u, end_v = map(float, lines['bev-future'].split()[-1].split(','))
    start_u, start_v = map(float, lines['bev-future'].split()[0].split(','))
    assert end_v < start_v, 'forward is up'
    assert end_u < start_u, 'left is left'
    ticks = [el.get('class') for el in root.iter(f'{SVG}circle')]
    assert ticks.count('bev-tick bev-future-tick') == 6  # +1 s ... +6 s
    assert ticks.count('bev-tick bev-history-tick') == 1  # -1 s
    captions = [el.text for el in root.iter(f'{SVG}text') if el.get('class') == 'bev-caption']
    assert captions == ['grid 10 m']
    assert ElementTree.fromstring(bev_svg(None, None)).find(f'{SVG}polygon') is not None
