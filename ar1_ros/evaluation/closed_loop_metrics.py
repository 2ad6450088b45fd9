"""Numbers of closed-loop episodes, per episode and aggregated per policy.

Per episode (episode_metrics):
- collision, off_road: whether it happened at all (and when); off_road_s: time off the road.
- progress_m: distance along the route; progress_rel: that over the expert's progress on the
  same scenario and seed (None when the expert moved less than MIN_REFERENCE_M).
- comfort on the path driven after the warm-up (and before any collision), resampled at
  0.1 s: comfort_rate is the fraction of 6.4 s windows (one starting every second, plus the
  last 6.4 s; the whole path when it is shorter) that pass every runtime.comfort check, the
  bounds AR1's plans are judged by; max_abs_jerk [m/s³] and max_abs_lat_accel [m/s²] are the
  worst values over that path.
- open loop (closed_loop_openloop): mean minADE over 3 s and 6.4 s at the keyframes, and for
  the model the decision accuracy against the world's labels.

Aggregates (aggregate): over the episodes that ran without error (failed ones are counted
apart): rates of collision and off-road, means of the rest; minADE and decision accuracy are
pooled over all keyframes of all episodes, not averaged per episode.
"""
import math
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from ar1_ros.evaluation.closed_loop import EpisodeResult
from ar1_ros.evaluation.closed_loop_openloop import KeyframeScore
from ar1_ros.runtime.comfort import comfort_checks, comfort_terms
from ar1_ros.runtime.rotations import rot_z

COMFORT_DT_S = 0.1
WINDOW_STEPS = 64
WINDOW_EVERY_STEPS = 10
MIN_REFERENCE_M = 1.0
# The aggregated numbers, in the order tables show them.
SUMMARY_KEYS = ('episodes', 'failed', 'collision_rate', 'off_road_rate', 'progress_m',
                'progress_rel', 'comfort_rate', 'max_abs_jerk', 'max_abs_lat_accel',
                'min_ade_3s', 'min_ade_6_4s', 'keyframes', 'decision_accuracy', 'plans',
                'skips')


def resampled_path(result: EpisodeResult, from_s: float) -> np.ndarray:
    """Return the (M, 4) poses t, x, y, yaw at COMFORT_DT_S steps from from_s [s] on.

    A collision ends the path before it: the crash is counted as a collision, not as a jerk.
    """
    poses = result.poses
    if len(poses) < 2:
        return poses
    dt = float(poses[1, 0] - poses[0, 0])
    stride = max(int(round(COMFORT_DT_S / dt)), 1)
    end = np.inf if result.collision_time_s is None else result.collision_time_s - dt / 2
    return poses[(poses[:, 0] >= from_s - 1e-9) & (poses[:, 0] < end)][::stride]


def comfort_summary(result: EpisodeResult, from_s: float) -> Dict[str, Optional[float]]:
    """Return comfort_rate, max_abs_jerk and max_abs_lat_accel (module docstring).

    None for all three when fewer than 3 resampled poses exist after from_s.
    """
    path = resampled_path(result, from_s)
    if len(path) < 3:
        return {'comfort_rate': None, 'max_abs_jerk': None, 'max_abs_lat_accel': None}
    xyz = np.column_stack([path[:, 1], path[:, 2], np.zeros(len(path))])
    rot = np.stack([rot_z(yaw) for yaw in path[:, 3]])
    terms = comfort_terms(xyz, rot, COMFORT_DT_S)
    last = max(len(path) - WINDOW_STEPS, 0)
    starts = sorted({*range(0, last + 1, WINDOW_EVERY_STEPS), last})  # the end is covered too
    passed = [comfort_checks(xyz[i:i + WINDOW_STEPS], rot[i:i + WINDOW_STEPS],
                             COMFORT_DT_S)['all'] for i in starts]
    return {'comfort_rate': float(np.mean(passed)),
            'max_abs_jerk': float(np.max(np.abs(terms['jerk']))),
            'max_abs_lat_accel': float(np.max(np.abs(terms['lat_accel'])))}


def _mean(values: Iterable[Optional[float]]) -> Optional[float]:
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(values)) if values else None


def open_loop_summary(scores: Sequence[KeyframeScore]) -> Dict[str, Optional[float]]:
    """Return the mean minADE over 3 s and 6.4 s [m], keyframes planned, decision accuracy."""
    verdicts = [s.decision_correct for s in scores if s.decision_correct is not None]
    return {'min_ade_3s': _mean(s.min_ade_3s for s in scores),
            'min_ade_6_4s': _mean(s.min_ade_6_4s for s in scores),
            'keyframes': sum(s.min_ade_6_4s is not None for s in scores),
            'decision_accuracy': float(np.mean(verdicts)) if verdicts else None}


def episode_metrics(result: EpisodeResult, expert: Optional[EpisodeResult], warmup_s: float,
                    scores: Sequence[KeyframeScore] = ()) -> Dict:
    """Return every number of one episode (module docstring); JSON-ready values only."""
    reference = expert.progress_m if expert is not None and not expert.error else None
    relative = (result.progress_m / reference
                if reference is not None and reference >= MIN_REFERENCE_M else None)
    metrics = {
        'scenario': result.scenario, 'seed': result.seed, 'policy': result.policy,
        'collision': result.collided, 'collision_time_s': result.collision_time_s,
        'off_road': result.off_road, 'off_road_time_s': result.off_road_time_s,
        'off_road_s': result.off_road_s, 'progress_m': result.progress_m,
        'progress_rel': relative, 'duration_s': result.duration_s, 'plans': result.plans,
        'skips': dict(result.skips), 'wall_s': result.wall_s, 'error': result.error}
    metrics.update(comfort_summary(result, warmup_s))
    metrics.update(open_loop_summary(scores) if scores else
                   {'min_ade_3s': None, 'min_ade_6_4s': None, 'keyframes': 0,
                    'decision_accuracy': None})
    return metrics


def _rate(flags: List[bool]) -> Optional[float]:
    return float(np.mean(flags)) if flags else None


def _skips(rows: Sequence[Dict]) -> Dict[str, int]:
    total: Dict[str, int] = {}
    for row in rows:
        for reason, count in row['skips'].items():
            total[reason] = total.get(reason, 0) + int(count)
    return total


def summarize(rows: Sequence[Dict], scores: Sequence[KeyframeScore]) -> Dict:
    """Return the aggregate of one policy's episode metrics and its pooled keyframe scores."""
    ran = [r for r in rows if not r['error']]
    pooled = open_loop_summary(scores)
    summary = {
        'episodes': len(rows), 'failed': len(rows) - len(ran),
        'collision_rate': _rate([r['collision'] for r in ran]),
        'off_road_rate': _rate([r['off_road'] for r in ran]),
        'plans': sum(r['plans'] for r in ran), 'skips': _skips(ran), **pooled}
    for key in ('progress_m', 'progress_rel', 'comfort_rate', 'max_abs_jerk',
                'max_abs_lat_accel'):
        summary[key] = _mean(r[key] for r in ran)
    return {key: summary[key] for key in SUMMARY_KEYS}


def aggregate(rows: Sequence[Dict], scores: Dict[tuple, Sequence[KeyframeScore]],
              policies: Sequence[str]) -> Dict[str, Dict]:
    """Return {policy: summarize(...)} for `policies` (in that order).

    rows: episode_metrics() of every episode; scores: {(scenario, seed, policy): keyframe
    scores} of the episodes that ran (failed ones are left out of the pooled scores).
    """
    out = {}
    for policy in policies:
        mine = [r for r in rows if r['policy'] == policy]
        pooled = [s for r in mine if not r['error']
                  for s in scores.get((r['scenario'], r['seed'], policy), ())]
        out[policy] = summarize(mine, pooled)
    return out


def aggregate_by_scenario(rows: Sequence[Dict], scores: Dict[tuple, Sequence[KeyframeScore]],
                          policies: Sequence[str]) -> Dict[str, Dict[str, Dict]]:
    """Return {scenario: {policy: summary}}, scenarios in order of first appearance."""
    scenarios = list(dict.fromkeys(r['scenario'] for r in rows))
    return {name: aggregate([r for r in rows if r['scenario'] == name], scores, policies)
            for name in scenarios}
