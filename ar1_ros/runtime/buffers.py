"""A thread-safe, time-windowed buffer of stamped items, kept sorted by stamp.

Subscription callbacks insert while the cycle timer reads, possibly on different executor
threads, so every method takes the one lock. Messages can arrive out of order (several
publishers, best-effort transport), hence sorted insertion instead of appending.
"""
import bisect
import threading
from typing import Callable, Generic, List, Optional, Tuple, TypeVar

T = TypeVar('T')
Entry = Tuple[int, T]


class StampedRing(Generic[T]):
    """Items keyed by integer nanosecond stamps, at most `window_ns` older than the newest.

    Stamps are unique: inserting a stamp that is already present replaces its item.
    """

    def __init__(self, window_ns: int):
        if window_ns <= 0:
            raise ValueError(f'window_ns must be > 0, got {window_ns}')
        self._window_ns = int(window_ns)
        self._stamps: List[int] = []
        self._items: List[T] = []
        self._lock = threading.Lock()

    @property
    def window_ns(self) -> int:
        """Return how far behind the newest stamp entries are kept [ns]."""
        return self._window_ns

    def insert(self, stamp_ns: int, item: T) -> bool:
        """Insert `item` at `stamp_ns` in stamp order.

        Returns True when a new entry was stored, False when it replaced the item of an equal
        stamp or was older than the window behind the newest entry (then it is dropped).
        Entries that fall out of the window after the insert are dropped.
        """
        stamp_ns = int(stamp_ns)
        with self._lock:
            index = bisect.bisect_left(self._stamps, stamp_ns)
            if index < len(self._stamps) and self._stamps[index] == stamp_ns:
                self._items[index] = item
                return False
            if self._stamps and stamp_ns < self._stamps[-1] - self._window_ns:
                return False
            self._stamps.insert(index, stamp_ns)
            self._items.insert(index, item)
            cut = bisect.bisect_left(self._stamps, self._stamps[-1] - self._window_ns)
            if cut:
                del self._stamps[:cut]
                del self._items[:cut]
            return True

    def _entry(self, index: int) -> Entry:
        return self._stamps[index], self._items[index]

    def newest(self) -> Optional[Entry]:
        """Return the (stamp_ns, item) with the largest stamp, or None when empty."""
        with self._lock:
            return self._entry(-1) if self._stamps else None

    def oldest(self) -> Optional[Entry]:
        """Return the (stamp_ns, item) with the smallest stamp, or None when empty."""
        with self._lock:
            return self._entry(0) if self._stamps else None

    def newest_stamp(self) -> Optional[int]:
        """Return the largest stamp [ns], or None when empty."""
        with self._lock:
            return self._stamps[-1] if self._stamps else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._stamps)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._stamps.clear()
            self._items.clear()

    def nearest(self, t_ns: int, tolerance_ns: Optional[int] = None) -> Optional[Entry]:
        """Return the (stamp_ns, item) closest to `t_ns` (a tie goes to the older one).

        None when empty, or when the closest entry is more than `tolerance_ns` away.
        """
        with self._lock:
            if not self._stamps:
                return None
            index = bisect.bisect_left(self._stamps, t_ns)
            candidates = [i for i in (index - 1, index) if 0 <= i < len(self._stamps)]
            # min() keeps the first of equal keys, and candidates are in stamp order.
            best = min(candidates, key=lambda i: abs(self._stamps[i] - t_ns))
            if tolerance_ns is not None and abs(self._stamps[best] - t_ns) > tolerance_ns:
                return None
            return self._entry(best)

    def bracket(self, t_ns: int) -> Tuple[Optional[Entry], Optional[Entry]]:
        """Return (last entry with stamp <= t_ns, first entry with stamp >= t_ns).

        Either side is None when no entry lies on that side; on an exact hit both are the
        same entry.
        """
        with self._lock:
            right = bisect.bisect_left(self._stamps, t_ns)
            left = bisect.bisect_right(self._stamps, t_ns) - 1
            before = self._entry(left) if left >= 0 else None
            after = self._entry(right) if right < len(self._stamps) else None
            return before, after

    def snapshot(self) -> List[Entry]:
        """Return a copy of all (stamp_ns, item) entries, oldest first."""
        with self._lock:
            return list(zip(self._stamps, self._items, strict=True))

    def remove_if(self, predicate: Callable[[int, T], bool]) -> int:
        """Drop the entries for which predicate(stamp_ns, item) is true; return how many."""
        with self._lock:
            keep = [i for i, (s, item) in enumerate(zip(self._stamps, self._items, strict=True))
                    if not predicate(s, item)]
            removed = len(self._stamps) - len(keep)
            self._stamps = [self._stamps[i] for i in keep]
            self._items = [self._items[i] for i in keep]
            return removed
