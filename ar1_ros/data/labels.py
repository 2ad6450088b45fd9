"""Chain-of-Causation labels: a JSONL sidecar of the bags, read and checked line by line.

One JSON object per line; blank lines and lines starting with '#' are skipped:

    {"bag": "drive_0412", "t0_ns": 1700000012300000000, "decision": "decelerate",
     "coc": "The light ahead turns yellow, so decelerate to stop before the line."}

required:
- bag (str): the bag folder's name (`Path(bag).name`)
- t0_ns (int): the decision moment in the bag's header-stamp time base [ns]
- decision (str): one of runtime.presentation.DECISIONS
- coc (str, non-empty): the Chain-of-Causation text

optional:
- critical_components (list of str, default []): what the decision hinges on
- provenance ('rule' | 'teacher' | 'human', default 'human'): who wrote the label
- meta_action (object, default null): kept as is
- consistent (bool or null, default null): whether the CoC agrees with the driven path
- notes (str, default '')

A line that is not valid JSON, misses a required key, has a value of the wrong type, an unknown
key (most likely a typo) or repeats the (bag, t0_ns) of an earlier line is reported as
'FILE:LINE: reason' in LabelSet.problems and skipped: never used half-understood, never lost
silently.
"""
import bisect
import dataclasses
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ar1_ros.runtime.presentation import DECISIONS

PROVENANCES = ('rule', 'teacher', 'human')
REQUIRED = ('bag', 't0_ns', 'decision', 'coc')
OPTIONAL = ('critical_components', 'provenance', 'meta_action', 'consistent', 'notes')
DEFAULT_TOLERANCE_NS = 50_000_000


class LabelError(ValueError):
    """A label (or a labels file) that cannot be used; the message says why."""


@dataclasses.dataclass(frozen=True)
class CocLabel:
    """One checked label (module docstring); critical_components is a tuple of str."""

    bag: str
    t0_ns: int
    decision: str
    coc: str
    critical_components: Tuple[str, ...] = ()
    provenance: str = 'human'
    meta_action: Optional[dict] = None
    consistent: Optional[bool] = None
    notes: str = ''

    def to_json(self) -> dict:
        """Return the label as a JSON object (every key, defaults included)."""
        obj = dataclasses.asdict(self)
        obj['critical_components'] = list(self.critical_components)
        return obj


def _check_str(obj: dict, key: str, allowed: Sequence[str] = ()) -> None:
    value = obj[key]
    if not isinstance(value, str) or not value.strip():
        raise LabelError(f'{key} must be a non-empty string, got {value!r}')
    if allowed and value not in allowed:
        raise LabelError(f'{key} {value!r} is not one of {", ".join(allowed)}')


def _check_optional(obj: dict) -> None:
    components = obj.get('critical_components', [])
    if not isinstance(components, list) or not all(isinstance(c, str) for c in components):
        raise LabelError(f'critical_components must be a list of strings, got {components!r}')
    if 'provenance' in obj:
        _check_str(obj, 'provenance', PROVENANCES)
    if not isinstance(obj.get('meta_action', {}), (dict, type(None))):
        raise LabelError(f'meta_action must be an object or null, got {obj["meta_action"]!r}')
    if not isinstance(obj.get('consistent', False), (bool, type(None))):
        raise LabelError(f'consistent must be true, false or null, got {obj["consistent"]!r}')
    if not isinstance(obj.get('notes', ''), str):
        raise LabelError(f'notes must be a string, got {obj["notes"]!r}')


def parse_label(obj) -> CocLabel:
    """Return the CocLabel of one decoded JSON object; raise LabelError naming the fault."""
    if not isinstance(obj, dict):
        raise LabelError(f'expected a JSON object, got {type(obj).__name__}')
    unknown = sorted(set(obj) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise LabelError(f'unknown key(s) {", ".join(unknown)} (known: '
                         f'{", ".join(REQUIRED + OPTIONAL)})')
    missing = [key for key in REQUIRED if key not in obj]
    if missing:
        raise LabelError(f'missing required key(s) {", ".join(missing)}')
    _check_str(obj, 'bag')
    t0 = obj['t0_ns']
    if isinstance(t0, bool) or not isinstance(t0, int) or t0 <= 0:
        raise LabelError(f't0_ns must be a positive integer (ns), got {t0!r}')
    _check_str(obj, 'decision', DECISIONS)
    _check_str(obj, 'coc')
    _check_optional(obj)
    return CocLabel(bag=obj['bag'], t0_ns=t0, decision=obj['decision'], coc=obj['coc'],
                    critical_components=tuple(obj.get('critical_components', [])),
                    provenance=obj.get('provenance', 'human'),
                    meta_action=obj.get('meta_action'), consistent=obj.get('consistent'),
                    notes=obj.get('notes', ''))


@dataclasses.dataclass
class LabelSet:
    """The valid labels of a file, in file order, and the problems of the lines skipped."""

    labels: List[CocLabel] = dataclasses.field(default_factory=list)
    problems: List[str] = dataclasses.field(default_factory=list)
    path: str = ''

    def __len__(self) -> int:
        return len(self.labels)

    def for_bag(self, name: str) -> List[CocLabel]:
        """Return the labels of the bag called `name`, in t0 order."""
        return sorted((lb for lb in self.labels if lb.bag == name), key=lambda lb: lb.t0_ns)

    @property
    def bags(self) -> List[str]:
        """Return the names of the bags that have labels, sorted."""
        return sorted({lb.bag for lb in self.labels})


def read_labels(path) -> LabelSet:
    """Read a labels JSONL file; bad lines go to `problems` ('FILE:LINE: reason').

    Raises LabelError when the file itself cannot be read (missing, not UTF-8 text).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding='utf-8').splitlines()
    except OSError as exc:
        raise LabelError(f'cannot read labels file {path}: {exc.strerror or exc}') from exc
    except UnicodeDecodeError as exc:
        raise LabelError(f'labels file {path} is not UTF-8 text ({exc.reason} at byte '
                         f'{exc.start})') from exc
    result, seen = LabelSet(path=str(path)), {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        try:
            label = parse_label(json.loads(line))
        except json.JSONDecodeError as exc:
            result.problems.append(f'{path.name}:{number}: not valid JSON ({exc.msg}, column '
                                   f'{exc.colno})')
            continue
        except LabelError as exc:
            result.problems.append(f'{path.name}:{number}: {exc}')
            continue
        key = (label.bag, label.t0_ns)
        if key in seen:
            result.problems.append(f'{path.name}:{number}: duplicate of line {seen[key]} '
                                   f'(bag {label.bag}, t0_ns {label.t0_ns})')
            continue
        seen[key] = number
        result.labels.append(label)
    return result


def _nearest(times: List[int], t_ns: int) -> Optional[int]:
    """Return the element of sorted `times` nearest to t_ns (the earlier on a tie), or None."""
    index = bisect.bisect_left(times, t_ns)
    near = times[max(index - 1, 0):index + 1]
    return min(near, key=lambda t: abs(t - t_ns), default=None)


def match(labels: Sequence[CocLabel], t0s: Sequence[int],
          tolerance_ns: int = DEFAULT_TOLERANCE_NS
          ) -> Tuple[Dict[int, CocLabel], List[CocLabel]]:
    """Attach each label to the nearest sample t0 within `tolerance_ns`.

    Args:
        labels: the labels of one bag.
        t0s: the sample times of that bag [ns].
        tolerance_ns: the largest |label t0 - sample t0| that still attaches.

    Returns:
        ({sample t0: label}, [labels attached to no sample]). When two labels come nearest to
        the same sample, the nearer one is attached (the earlier on a tie), the other is not.
    """
    times = sorted(int(t) for t in t0s)
    attached: Dict[int, CocLabel] = {}
    unmatched: List[CocLabel] = []
    for label in sorted(labels, key=lambda lb: lb.t0_ns):
        best = _nearest(times, label.t0_ns)
        if best is None or abs(best - label.t0_ns) > tolerance_ns:
            unmatched.append(label)
            continue
        held = attached.get(best)
        if held is not None and abs(held.t0_ns - best) <= abs(label.t0_ns - best):
            unmatched.append(label)
            continue
        if held is not None:
            unmatched.append(held)
        attached[best] = label
    return attached, sorted(unmatched, key=lambda lb: lb.t0_ns)
