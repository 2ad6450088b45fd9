"""What the policy knows about its own health, as counters and named statuses.

The node turns `Health.statuses()` into diagnostic_msgs/DiagnosticArray; offline evaluation
writes the same counters into its metrics. Nothing here decides to publish or not: it records.
"""
import collections
import dataclasses
import threading
from typing import Deque, Dict, List, Optional, Tuple

from ar1_ros.runtime.types import NS_PER_S, CycleResult, Skip

OK, WARN, ERROR = 0, 1, 2
# How long a fault keeps its status at WARN after it was seen.
RECENT_NS = 5 * NS_PER_S


@dataclasses.dataclass
class Status:
    """One diagnostic status: level (OK, WARN, ERROR), a message, and key-value pairs."""

    name: str
    level: int
    message: str
    values: Dict[str, str]


@dataclasses.dataclass
class _Input:
    received: int = 0
    rejected: int = 0
    newest_stamp_ns: Optional[int] = None
    last_problem: str = ''


class Health:
    """Counters of inputs, cycles, the safety gate and fault events; thread-safe.

    Methods take `now_ns` from the caller's clock (sim time under replay), so ages and the
    recency of faults follow the same clock as the data.
    """

    def __init__(self, input_names: List[str], max_input_age_s: float):
        self._lock = threading.Lock()
        self._inputs = {name: _Input() for name in input_names}
        self._max_age_ns = int(max_input_age_s * NS_PER_S)
        self.skips: Dict[str, int] = collections.Counter()
        self.events: Dict[str, int] = collections.Counter()
        self._recent: Deque[Tuple[int, str, str]] = collections.deque(maxlen=20)
        self._last_skip: Optional[Skip] = None
        self.cycles = {'submitted': 0, 'completed': 0, 'failed': 0, 'dropped': 0,
                       'published': 0, 'rejected': 0, 'stale_results': 0}
        self._last_timings: Dict[str, float] = {}
        self._last_rejection = ''
        self._last_error = ''
        self._last_failed = False
        self._last_gate_ok = True

    def record_input(self, name: str, stamp_ns: int, problem: Optional[str] = None) -> None:
        """Count a message on input `name`; `problem` marks it rejected with that reason."""
        with self._lock:
            entry = self._inputs.setdefault(name, _Input())
            entry.received += 1
            if problem:
                entry.rejected += 1
                entry.last_problem = problem
            elif entry.newest_stamp_ns is None or stamp_ns > entry.newest_stamp_ns:
                entry.newest_stamp_ns = stamp_ns

    def reset_inputs(self) -> None:
        """Forget the newest stamps (after a clock jump back they would look fresh forever)."""
        with self._lock:
            for entry in self._inputs.values():
                entry.newest_stamp_ns = None

    def record_skip(self, skip: Skip) -> None:
        """Count a cycle that did not run, by reason."""
        with self._lock:
            self.skips[skip.reason] += 1
            self._last_skip = skip

    def record_event(self, kind: str, detail: str, now_ns: int) -> None:
        """Count a fault or notable event (clock jump, decode error, bad odometry...)."""
        with self._lock:
            self.events[kind] += 1
            self._recent.append((now_ns, kind, detail))

    def record_cycle(self, key: str, count: int = 1) -> None:
        """Add `count` to one of the cycle counters (submitted, dropped, published...)."""
        with self._lock:
            self.cycles[key] += count

    def record_result(self, result: CycleResult) -> None:
        """Count a finished cycle: completion or failure, verdicts and stage timings."""
        with self._lock:
            self._last_timings = dict(result.timings)
            self._last_skip = None
            self._last_failed = result.output is None
            if result.output is None:
                self.cycles['failed'] += 1
                self._last_error = result.error or 'unknown error'
                return
            self.cycles['completed'] += 1
            rejected = [v for v in result.verdicts if not v.ok]
            self._last_gate_ok = result.plan_index is not None
            if not self._last_gate_ok:
                self.cycles['rejected'] += 1
            if rejected:
                self._last_rejection = '; '.join(rejected[0].reasons)

    def statuses(self, now_ns: int) -> List[Status]:
        """Return the inputs, cycle, safety-gate and events statuses as of `now_ns`."""
        with self._lock:
            return [self._inputs_status(now_ns), self._cycle_status(),
                    self._gate_status(), self._events_status(now_ns)]

    def _inputs_status(self, now_ns: int) -> Status:
        values, stale = {}, []
        for name, entry in sorted(self._inputs.items()):
            age = 'never' if entry.newest_stamp_ns is None else \
                f'{(now_ns - entry.newest_stamp_ns) / NS_PER_S:.3f}'
            values[f'{name} age_s'] = age
            values[f'{name} received'] = str(entry.received)
            values[f'{name} rejected'] = str(entry.rejected)
            if entry.last_problem:
                values[f'{name} last_problem'] = entry.last_problem
            if age == 'never' or now_ns - entry.newest_stamp_ns > self._max_age_ns:
                stale.append(name)
        message = f'stale or missing: {", ".join(stale)}' if stale else 'all inputs fresh'
        return Status('inputs', WARN if stale else OK, message, values)

    def _cycle_status(self) -> Status:
        values = {k: str(v) for k, v in self.cycles.items()}
        values.update({f'skipped {k}': str(v) for k, v in sorted(self.skips.items())})
        values.update({f'latency_s {k}': f'{v:.4f}' for k, v in self._last_timings.items()})
        if self._last_skip is not None:
            values['last_skip'] = f'{self._last_skip.reason}: {self._last_skip.detail}'
            return Status('cycle', WARN, f'skipping: {values["last_skip"]}', values)
        if self._last_error:
            values['last_error'] = self._last_error
        if self._last_failed:
            return Status('cycle', ERROR, f'last cycle failed: {self._last_error}', values)
        total = self._last_timings.get('total')
        message = f'last cycle {total:.3f} s' if total is not None else 'no cycle yet'
        return Status('cycle', OK, message, values)

    def _gate_status(self) -> Status:
        values = {'accepted': str(self.cycles['published']),
                  'rejected': str(self.cycles['rejected'])}
        if self._last_rejection:
            values['last_rejection'] = self._last_rejection
        if not self._last_gate_ok:
            return Status('safety gate', ERROR, f'plan rejected: {self._last_rejection}', values)
        return Status('safety gate', OK, 'plans within bounds', values)

    def _events_status(self, now_ns: int) -> Status:
        values = {f'count {k}': str(v) for k, v in sorted(self.events.items())}
        recent = [(t, k, d) for t, k, d in self._recent if 0 <= now_ns - t <= RECENT_NS]
        for index, (_, kind, detail) in enumerate(recent[-5:]):
            values[f'recent {index}'] = f'{kind}: {detail}'
        if recent:
            return Status('events', WARN, f'{recent[-1][1]}: {recent[-1][2]}', values)
        return Status('events', OK, 'no recent faults', values)
