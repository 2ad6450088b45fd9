"""What a plan looks like to its consumers: a decision keyword, wrapped text, per-point states.

Decision parsing. AR1's chain-of-causation text usually opens with the action and then gives
the reason ("Nudge to the left to increase clearance from the construction cones"), so the
decision is the rule that matches *earliest* in the text; when two rules match at the same
position, the one listed first in `_RULES` wins (specific before generic: a lane change before
a turn). Matching is case-insensitive on whole words. The rules, by decision:

- lane_change_left/right: 'change lanes to the left', 'lane change to the right', 'left lane
  change', 'merge/move/shift/change (over) into the left lane'.
- nudge_left/right: 'nudge (slightly) (to the) left', 'left nudge'.
- turn_left/right: 'turn (to the) left', 'left turn', 'make a left'.
- pull_over: 'pull over', 'pull onto/into the shoulder/curb'.
- overtake: 'overtake', 'overtaking', 'go around'.
- yield: 'yield', 'give way'.
- stop: 'stop' (not 'stop sign/line/bar/light'), 'remain/stay stopped', 'halt', 'wait'.
- start: 'start moving/driving/to move', 'resume driving/moving', 'pull away', 'move off'.
- accelerate: 'accelerate', 'speed up', 'increase speed', 'pick up speed'.
- decelerate: 'decelerate', 'slow down', 'slow for/to', 'reduce speed', 'brake'.
- follow_lead: 'follow the lead/leading/preceding vehicle', 'keep/maintain a (safe) distance'.
- keep_lane: 'keep/stay/remain in (the/current) lane', 'lane keeping', 'go/continue/drive
  straight', 'maintain/keep speed', 'cruise'.

Negation is not understood ("do not change lanes" reads as a lane change): the decision is a
coarse label for dashboards and logs, the text itself is always published next to it.
"""
import re
import textwrap
from typing import Dict, List, Tuple

import numpy as np

from ar1_ros.runtime.kinematics import point_speeds
from ar1_ros.runtime.rotations import yaw_of
from ar1_ros.runtime.types import Pose


def _sided(name: str, patterns: Tuple[str, ...]) -> List[Tuple[str, str]]:
    """Return the left and right rules of a template whose `{d}` is the direction."""
    return [(f'{name}_{d}', '|'.join(p.format(d=d) for p in patterns)) for d in ('left', 'right')]


_RULES: List[Tuple[str, str]] = [
    *_sided('lane_change', (
        r'(?:change|changes|changing|switch|switching)\s+lanes?\s+(?:to|towards)\s+the\s+{d}',
        r'lane\s+change\s+(?:to\s+the\s+)?{d}',
        r'{d}(?:ward)?\s+lane\s+change',
        r'(?:merge|merging|move|moving|shift|shifting|change|changing)\s+(?:over\s+)?'
        r'(?:in)?to\s+the\s+{d}(?:-hand)?\s+lane')),
    *_sided('nudge', (r'nudg(?:e|es|ing)\s+(?:slightly\s+)?(?:(?:to|towards)\s+the\s+)?{d}',
                      r'{d}\s+nudge')),
    *_sided('turn', (r'(?:turn|turns|turning)\s+(?:to\s+the\s+)?{d}', r'{d}\s+turn',
                     r'(?:make|making)\s+a\s+{d}')),
    ('pull_over', r'pull(?:s|ing)?\s+over|pull(?:s|ing)?\s+(?:on|in)to\s+the\s+(?:shoulder|curb)'),
    ('overtake', r'overtak(?:e|es|ing)|go(?:ing)?\s+around'),
    ('yield', r'yield(?:s|ing)?|give\s+way'),
    ('stop', r'stop(?:s|ping)?(?!\s+(?:sign|line|bar|light)s?\b)|(?:remain|stay|keep)s?\s+stopped'
             r'|halt(?:s|ing)?|wait(?:s|ing)?'),
    ('start', r'start(?:s|ing)?\s+(?:moving|driving|to\s+move|to\s+drive)'
              r'|resum(?:e|es|ing)\s+(?:driving|moving|motion)|pull(?:s|ing)?\s+away|move\s+off'),
    ('accelerate', r'accelerat(?:e|es|ing)|speed(?:s|ing)?\s+up|increas(?:e|es|ing)\s+(?:the\s+)?'
                   r'speed|pick(?:s|ing)?\s+up\s+speed'),
    ('decelerate', r'decelerat(?:e|es|ing)|slow(?:s|ing)?\s+(?:down|for|to)'
                   r'|reduc(?:e|es|ing)\s+(?:the\s+)?speed|brak(?:e|es|ing)'),
    ('follow_lead', r'follow(?:s|ing)?\s+(?:the\s+)?(?:lead|leading|preceding|front)'
                    r'|(?:keep|keeping|maintain|maintaining)\s+(?:a\s+)?(?:safe\s+)?distance'),
    ('keep_lane', r'(?:keep|keeps|keeping|stay|stays|staying|remain|remains|remaining)\s+'
                  r'(?:in\s+)?(?:(?:the|its|our|current|same|ego)\s+)*lane|lane[-\s]keeping'
                  r'|(?:go|goes|going|continue|continues|continuing|drive|driving)\s+straight'
                  r'|(?:maintain|maintaining|keep|keeping)\s+(?:the\s+)?(?:current\s+)?speed'
                  r'|cruis(?:e|es|ing)'),
]

DECISIONS: Tuple[str, ...] = tuple(name for name, _ in _RULES)

# One alternation: the regex engine scans positions left to right and tries the alternatives
# in order at each one, which is exactly "earliest match wins, ties by rule order".
_DECISION_RE = re.compile('|'.join(rf'(?P<r{i}>\b(?:{pattern})\b)'
                                   for i, (_, pattern) in enumerate(_RULES)), re.IGNORECASE)


def parse_decision(text: str) -> str:
    """Return the driving decision (one of DECISIONS) stated in `text`, '' when none is."""
    match = _DECISION_RE.search(text or '')
    if match is None:
        return ''
    return _RULES[int(match.lastgroup[1:])][0]


def wrap_text(text: str, width: int = 56, max_lines: int = 8) -> List[str]:
    """Return `text` wrapped into at most `max_lines` lines of at most `width` characters.

    Whitespace (newlines included) is collapsed; a cut text ends with '...'. Empty text gives [].
    """
    if width < 4 or max_lines < 1:
        raise ValueError(f'wrap_text needs width >= 4 and max_lines >= 1, got {width}, '
                         f'{max_lines}')
    lines = textwrap.wrap(' '.join((text or '').split()), width=width)
    if len(lines) <= max_lines:
        return lines
    # Cut: the last kept line ends with ' ...' (ASCII: cv2.putText draws no Unicode).
    last = lines[max_lines - 1]
    while last and len(last) + 4 > width:
        last = last.rsplit(' ', 1)[0] if ' ' in last else last[:width - 4]
    return lines[:max_lines - 1] + [f'{last} ...'.strip()]


def point_states(xyz: np.ndarray, rot: np.ndarray, actions: np.ndarray, speed: float,
                 dt: float) -> Dict[str, np.ndarray]:
    """Return per-point states of one planned trajectory of N points (N = 64 for AR1).

    xyz (N, 3), rot (N, 3, 3), actions (N, 2) as (acceleration m/s², curvature 1/m); speed is
    the speed at t0 [m/s], dt the step [s]. Point k lies at time (k + 1) dt. Returns float64
    (N,) arrays: 'yaw' [rad] from rot, 'velocity' v_{k+1} [m/s] from the same unicycle speeds
    the plan was integrated with (runtime.kinematics), 'acceleration' and 'curvature' (the
    controls over the step that ends at the point) and 'time_from_start' [s].
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    rot = np.asarray(rot, dtype=np.float64)
    actions = np.asarray(actions, dtype=np.float64)
    n = len(xyz)
    if xyz.shape != (n, 3) or rot.shape != (n, 3, 3) or actions.shape != (n, 2):
        raise ValueError(f'point_states needs xyz (N, 3), rot (N, 3, 3), actions (N, 2); got '
                         f'{xyz.shape}, {rot.shape}, {actions.shape}')
    return {
        'yaw': np.asarray(yaw_of(rot), dtype=np.float64),
        'velocity': point_speeds(actions[None], speed, dt)[0, 1:],
        'acceleration': actions[:, 0].copy(),
        'curvature': actions[:, 1].copy(),
        'time_from_start': np.arange(1, n + 1, dtype=np.float64) * dt,
    }


def to_parent_frame(xyz: np.ndarray, rot: np.ndarray, pose: Pose) -> Tuple[np.ndarray,
                                                                           np.ndarray]:
    """Re-express points given in the ego frame at t0 in the frame that `pose` lives in.

    xyz (N, 3) and rot (N, 3, 3) in the ego frame; pose: the ego pose at t0 (position (3,),
    rotation (3, 3) body -> parent). Returns float64 (xyz (N, 3), rot (N, 3, 3)) in the
    parent frame (e.g. odom): p' = R p + t, R' = R rot.
    """
    rotation = np.asarray(pose.rotation, dtype=np.float64)
    position = np.asarray(pose.position, dtype=np.float64)
    xyz = np.asarray(xyz, dtype=np.float64)
    return xyz @ rotation.T + position, np.einsum('ij,njk->nik', rotation,
                                                  np.asarray(rot, dtype=np.float64))
