import random
import threading

import pytest

from ar1_ros.runtime.buffers import StampedRing

MS = 1_000_000


def _ring(stamps_ms, window_ms=1000):
    ring = StampedRing(window_ms * MS)
    for s in stamps_ms:
        ring.insert(s * MS, f'item{s}')
    return ring


def test_rejects_non_positive_window():
    with pytest.raises(ValueError, match='window_ns'):
        StampedRing(0)


def test_empty_ring():
    ring = StampedRing(MS)
    assert len(ring) == 0
    assert ring.newest() is None
    assert ring.oldest() is None
    assert ring.newest_stamp() is None
    assert ring.nearest(0) is None
    assert ring.bracket(0) == (None, None)
    assert ring.snapshot() == []


def test_out_of_order_inserts_are_sorted():
    stamps = list(range(0, 500, 10))
    shuffled = stamps[:]
    random.Random(1).shuffle(shuffled)
    ring = _ring(shuffled)
    assert [s for s, _ in ring.snapshot()] == [s * MS for s in stamps]
    assert ring.newest() == (490 * MS, 'item490')
    assert ring.oldest() == (0, 'item0')
    assert len(ring) == len(stamps)


def test_duplicate_stamp_replaces():
    ring = _ring([10, 20])
    assert ring.insert(10 * MS, 'new') is False
    assert ring.snapshot() == [(10 * MS, 'new'), (20 * MS, 'item20')]
    assert ring.insert(30 * MS, 'x') is True


def test_window_drops_old_entries():
    ring = _ring([0, 100, 200], window_ms=150)
    assert [s for s, _ in ring.snapshot()] == [100 * MS, 200 * MS]
    # Exactly at newest - window is kept.
    ring.insert(250 * MS, 'a')
    assert ring.oldest()[0] == 100 * MS
    # A late arrival older than the window is dropped right away.
    assert ring.insert(50 * MS, 'late') is False
    assert ring.oldest()[0] == 100 * MS
    # An out-of-order arrival inside the window is kept.
    assert ring.insert(150 * MS, 'late but ok') is True
    assert [s for s, _ in ring.snapshot()] == [100 * MS, 150 * MS, 200 * MS, 250 * MS]


def test_nearest_with_ties_and_tolerance():
    ring = _ring([100, 200, 300])
    assert ring.nearest(140 * MS) == (100 * MS, 'item100')
    assert ring.nearest(160 * MS) == (200 * MS, 'item200')
    assert ring.nearest(150 * MS) == (100 * MS, 'item100')  # tie -> older
    assert ring.nearest(0) == (100 * MS, 'item100')
    assert ring.nearest(10_000 * MS) == (300 * MS, 'item300')
    assert ring.nearest(340 * MS, tolerance_ns=40 * MS) == (300 * MS, 'item300')
    assert ring.nearest(341 * MS, tolerance_ns=40 * MS) is None
    assert ring.nearest(200 * MS, tolerance_ns=0) == (200 * MS, 'item200')


def test_bracket():
    ring = _ring([100, 200, 300])
    assert ring.bracket(150 * MS) == ((100 * MS, 'item100'), (200 * MS, 'item200'))
    assert ring.bracket(200 * MS) == ((200 * MS, 'item200'), (200 * MS, 'item200'))
    assert ring.bracket(50 * MS) == (None, (100 * MS, 'item100'))
    assert ring.bracket(301 * MS) == ((300 * MS, 'item300'), None)


def test_clear_and_remove_if():
    ring = _ring([1, 2, 3, 4])
    assert ring.remove_if(lambda stamp, item: stamp % (2 * MS) == 0) == 2
    assert [s for s, _ in ring.snapshot()] == [1 * MS, 3 * MS]
    assert ring.nearest(2 * MS) == (1 * MS, 'item1')
    ring.clear()
    assert len(ring) == 0
    assert ring.insert(0, 'after clear') is True


def test_snapshot_is_a_copy():
    ring = _ring([1, 2])
    snap = ring.snapshot()
    ring.insert(3 * MS, 'c')
    assert len(snap) == 2


def test_concurrent_inserts_stay_sorted_and_complete():
    ring = StampedRing(10**12)
    per_thread = 2000

    def writer(offset):
        for i in range(per_thread):
            ring.insert((i * 4 + offset) * MS, offset)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps = [s for s, _ in ring.snapshot()]
    assert stamps == sorted(stamps)
    assert len(stamps) == 4 * per_thread
