"""The `ar1 label review` page driven in headless Chromium (Debian's chromium + chromedriver).

`ar1 label` labels two demo-world bags, two hand-made labels are added (one of a bag not given,
one whose CoC holds script text), `ar1 label review` writes the page, and selenium edits one
label so that its consistency flips, accepts one with the keyboard and one with its button,
rejects one, exports, and checks the JSONL against the input line by line; then it reloads the
page (edits kept in localStorage) and clears the saved review. The browser console must stay
free of errors throughout.
"""
import dataclasses
import json
from pathlib import Path
import time

import pytest

from ar1_ros.cli.main import main
from ar1_ros.data.dataset_shards import read_index
from ar1_ros.data.labelling import write_labels
from ar1_ros.data.labels import read_labels
from data.review_world import review_inputs

CHROMIUM, CHROMEDRIVER = Path('/usr/bin/chromium'), Path('/usr/bin/chromedriver')
# Without the background-networking flags Chromium's own connections are refused on a closed
# network, which slows its start and logs errors.
FLAGS = ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--window-size=1400,1000')
EDITED_COC = 'Turn left at the junction: the lane ahead ends.'


@pytest.fixture(scope='module')
def page(tmp_path_factory):
    """Return (page path, labels in file order) of the review of the shared labels + 2."""
    inputs = review_inputs(tmp_path_factory)
    folder = tmp_path_factory.mktemp('review_page')
    labels = read_labels(inputs.labels).labels
    ghost = dataclasses.replace(labels[0], bag='unlisted_bag', provenance='teacher',
                                meta_action=None, consistent=None, notes='handmade')
    script = dataclasses.replace(labels[-1], coc='Keep </script><script>window.pwned = 1'
                                                 '</script> the lane & wait')
    labels = [*labels[:-1], script, ghost]
    labels_file = folder / 'labels.jsonl'
    write_labels(labels_file, labels)
    labels = read_labels(labels_file).labels  # file order: by (bag, t0)
    out = folder / 'review.html'
    assert main(['label', 'review', str(labels_file), '--bags', *map(str, inputs.bags),
                 '--out', str(out), '--params', str(inputs.params)]) == 0
    return out, labels, inputs


@pytest.fixture(scope='module')
def browser(tmp_path_factory):
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f'{" and ".join(missing)} missing: run make browser')
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    downloads = tmp_path_factory.mktemp('downloads')
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f'--user-data-dir={tmp_path_factory.mktemp("chromium_profile")}'):
        options.add_argument(flag)
    options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                              options=options)
    driver.execute_cdp_cmd('Browser.setDownloadBehavior',
                           {'behavior': 'allow', 'downloadPath': str(downloads)})
    yield driver, downloads
    driver.quit()


def card(driver, index):
    return driver.find_element('id', f'card-{index}')


def role(driver, index, name):
    return card(driver, index).find_element('css selector', f'[data-role="{name}"]')


def statuses(driver):
    return [c.get_attribute('data-status')
            for c in driver.find_elements('css selector', 'section.card')]


def shown(driver):
    return [c.get_attribute('id') for c in driver.find_elements('css selector', 'section.card')
            if c.is_displayed()]


def severe(driver):
    return [e for e in driver.get_log('browser') if e['level'] == 'SEVERE']


def wait_for(path: Path, seconds: float = 20.0) -> Path:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.is_file() and not list(path.parent.glob('*.crdownload')):
            return path
        time.sleep(0.1)
    raise AssertionError(f'{path.name} was not downloaded; the folder has '
                         f'{[p.name for p in path.parent.iterdir()]}')


def check_cards(driver, labels):
    """Every label has its card; those with frames show decoded pictures and the SVG."""
    cards = driver.find_elements('css selector', 'section.card')
    assert [c.get_attribute('data-key') for c in cards] == [f'{lb.bag}@{lb.t0_ns}'
                                                            for lb in labels]
    for index, label in enumerate(labels):
        if label.bag == 'unlisted_bag':
            assert role(driver, index, 'problem').text == (
                'no frames: bag_not_given: bag unlisted_bag is not among --bags')
            continue
        images = card(driver, index).find_elements('css selector', 'figure.frame img')
        assert len(images) == 16
        assert all(driver.execute_script('return arguments[0].naturalWidth', im) == 64
                   for im in images), 'the browser decodes every frame'
        assert card(driver, index).find_elements('css selector', 'figure.overlay img')
        assert card(driver, index).find_elements('css selector', 'svg.bev polyline.bev-future')
    assert driver.execute_script('return window.pwned === undefined')
    assert role(driver, len(labels) - 2, 'coc').get_attribute('value') == labels[-2].coc


def review(driver, labels):
    """Edit card 0 (flipping its consistency), accept 1 and 4, reject 2; return the new text."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.select import Select
    assert role(driver, 0, 'verdict').text == 'consistent with the recorded meta-action'
    Select(role(driver, 0, 'decision')).select_by_value('turn_left')
    coc = role(driver, 0, 'coc')
    coc.send_keys(Keys.CONTROL, 'a')
    coc.send_keys(EDITED_COC)
    role(driver, 0, 'components').send_keys('\nthe lane ahead ends')  # the caret is at the end
    assert role(driver, 0, 'verdict').text == 'INCONSISTENT with the recorded meta-action'
    role(driver, 1, 'accept').click()
    role(driver, 2, 'reject').click()
    card(driver, 3).find_element('css selector', 'h2').click()  # makes card 3 the current one
    ActionChains(driver).send_keys('j', 'j', 'k', 'a').perform()  # 4, 5, 4: accepts 4
    assert statuses(driver)[:6] == ['edited', 'accepted', 'rejected', 'pending', 'accepted',
                                    'pending']
    return [*labels[0].critical_components, 'the lane ahead ends']


def check_filters(driver, count):
    driver.find_element('id', 'filter-inconsistent').click()
    assert shown(driver) == ['card-0']
    driver.find_element('id', 'filter-pending').click()
    assert len(shown(driver)) == count - 4
    driver.find_element('id', 'filter-all').click()
    assert len(shown(driver)) == count
    assert driver.find_element('id', 'counter').text == (
        f'{count} labels: 2 accepted, 1 edited, 1 rejected, {count - 4} pending; '
        f'{count} shown')
    assert driver.find_element('id', 'export-info').text == (
        f'{count - 1} to export, 1 rejected left out')


def check_export(path: Path, labels, components):
    exported = read_labels(path)
    assert not exported.problems
    assert [lb.t0_ns for lb in exported.labels] == [lb.t0_ns for i, lb in enumerate(labels)
                                                    if i != 2], 'input order, rejected left out'
    edited, accepted = exported.labels[0], exported.labels[1]
    assert edited == dataclasses.replace(
        labels[0], decision='turn_left', coc=EDITED_COC, critical_components=tuple(components),
        provenance='human', consistent=False,
        notes=labels[0].notes + '; reviewed: edited from rule draft')
    assert accepted == dataclasses.replace(labels[1], provenance='human', consistent=True,
                                           notes=labels[1].notes + '; reviewed: accepted')
    assert exported.labels[3].notes.endswith('; reviewed: accepted')
    assert exported.labels[2] == labels[3]
    assert exported.labels[4:] == labels[5:], 'pending labels are unchanged'


def check_empty_coc_blocks_export(driver, downloads, key):
    from selenium.webdriver.common.keys import Keys
    coc = role(driver, 0, 'coc')
    coc.send_keys(Keys.CONTROL, 'a')
    coc.send_keys(Keys.DELETE)
    assert role(driver, 0, 'status').text == 'edited: the CoC is empty'
    before = sorted(p.name for p in downloads.iterdir())
    driver.find_element('id', 'export').click()
    assert driver.find_element('id', 'errors').text == (
        f'not exported: the CoC of {key} is empty; write one or reset the label')
    time.sleep(1.0)
    assert sorted(p.name for p in downloads.iterdir()) == before


def test_review_page_in_chromium(browser, page, tmp_path):  # a missing browser skips first
    out, labels, inputs = page
    driver, downloads = browser
    driver.get(out.as_uri())
    check_cards(driver, labels)
    components = review(driver, labels)
    check_filters(driver, len(labels))
    driver.find_element('id', 'export').click()
    exported = wait_for(downloads / 'labels.reviewed.jsonl')
    check_export(exported, labels, components)
    assert main(['dataset', 'build', *map(str, inputs.bags), '--out', str(tmp_path / 'ds'),
                 '--labels', str(exported), '--no-progress']) == 0
    index = read_index(tmp_path / 'ds')
    assert index['label_problems'] == []
    assert sum(e['labelled'] for e in index['bags'].values()) == len(labels) - 2
    driver.refresh()
    assert statuses(driver)[:6] == ['edited', 'accepted', 'rejected', 'pending', 'accepted',
                                    'pending'], 'localStorage keeps the review'
    assert role(driver, 0, 'coc').get_attribute('value') == EDITED_COC
    assert role(driver, 0, 'decision').get_attribute('value') == 'turn_left'
    driver.find_element('id', 'clear-saved').click()
    driver.switch_to.alert.accept()
    driver.refresh()
    assert set(statuses(driver)) == {'pending'}
    assert role(driver, 0, 'coc').get_attribute('value') == labels[0].coc
    check_empty_coc_blocks_export(driver, downloads, f'{labels[0].bag}@{labels[0].t0_ns}')
    assert severe(driver) == []
    assert json.loads(exported.read_text().splitlines()[-1])['t0_ns'] == labels[-1].t0_ns
