"""How far one set of labels agrees with a reference set (e.g. the demo world's privileged ones).

Each label of ours is paired with the reference label of its bag nearest in time, within a
tolerance (data.labels.match). A pair agrees strictly when both state the same decision, and
leniently also when the reference states a decision the odometry cannot tell from ours:

=================  =======================================  ====================================
reference          ours                                     why
=================  =======================================  ====================================
follow_lead        keep_lane                                the lead vehicle is not in the
                                                            odometry; both need lateral keep_lane
yield              decelerate, stop                         the road user given way to is not
                                                            in the odometry; yield needs
                                                            longitudinal decelerate or stop
overtake           lane_change_left/right, accelerate       the vehicle overtaken is not in the
                                                            odometry; overtake needs a lane
                                                            change or longitudinal accelerate
start, accelerate  accelerate, start                        both need longitudinal accelerate;
                                                            they differ by the speed at t0 only
=================  =======================================  ====================================

In each row our decision's meta-action requirement (data.meta_actions.compatible) implies the
reference decision's, so a lenient agreement never pairs motions that contradict each other.
"""
import collections
import dataclasses
from typing import Dict, FrozenSet, List, Sequence, Tuple

from ar1_ros.data.labels import CocLabel, match

LENIENT: Dict[str, FrozenSet[str]] = {
    'follow_lead': frozenset({'keep_lane'}),
    'yield': frozenset({'decelerate', 'stop'}),
    'overtake': frozenset({'lane_change_left', 'lane_change_right', 'accelerate'}),
    'start': frozenset({'accelerate'}),
    'accelerate': frozenset({'start'}),
}


def lenient_equal(reference: str, ours: str) -> bool:
    """Return whether decision `ours` agrees with `reference` under the module's table."""
    return ours == reference or ours in LENIENT.get(reference, frozenset())


@dataclasses.dataclass
class Agreement:
    """Pairs (reference decision, our decision) and the labels of ours left without a pair."""

    pairs: List[Tuple[str, str]] = dataclasses.field(default_factory=list)
    unpaired: int = 0

    @property
    def strict(self) -> float:
        """Return the fraction of pairs with the same decision (0 without pairs)."""
        return sum(r == o for r, o in self.pairs) / max(len(self.pairs), 1)

    @property
    def lenient(self) -> float:
        """Return the fraction of pairs that agree under LENIENT (0 without pairs)."""
        return sum(lenient_equal(r, o) for r, o in self.pairs) / max(len(self.pairs), 1)

    def confusion(self) -> Dict[Tuple[str, str], int]:
        """Return {(reference, ours): count} of the pairs."""
        return dict(collections.Counter(self.pairs))


def agreement(ours: Sequence[CocLabel], reference: Sequence[CocLabel],
              tolerance_ns: int) -> Agreement:
    """Pair every label of ours with the nearest reference label of its bag and count.

    Args:
        ours: labels to judge (any bags).
        reference: the reference labels (their bags may hold more labels than ours).
        tolerance_ns: the largest |t0 difference| of a pair [ns].
    """
    result = Agreement()
    for bag in sorted({lb.bag for lb in ours}):
        mine = {lb.t0_ns: lb for lb in ours if lb.bag == bag}
        attached, _ = match([lb for lb in reference if lb.bag == bag], list(mine), tolerance_ns)
        result.pairs += [(attached[t].decision, mine[t].decision)
                         for t in sorted(mine) if t in attached]
        result.unpaired += sum(t not in attached for t in mine)
    return result
