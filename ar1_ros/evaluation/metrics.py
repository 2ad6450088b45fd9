"""Trajectory metrics as the official AR1 code defines them (spec §8), per keyframe and overall.

Per keyframe, K sampled trajectories against the recorded path, both in the ego frame at t0,
point i at t = (i + 1) * dt; errors are XY Euclidean distances in metres:
- min_ade: the sample k* with the smallest mean error over the FULL horizon, its mean error;
  min_ade/by_t=S: the mean over the first round(S / dt) steps of the SAME sample k*
  (left out when the horizon is shorter, as the official code skips it).
- ade, ade/by_t=3.0: the same for sample 0 (the official "logprob" choice is always sample 0).
- corner_distance: the 8 corners of a 4.0 x 3.0 x 2.0 m box centred at each pose (with its
  rotation), 3-D distance predicted vs recorded corner, the minimum over samples taken per
  corner and step, then the mean over steps and corners.
- ours: fde (sample 0, last step), min_fde (best sample at the last step, any sample),
  displacement@Ss (the error of k* at step round(S / dt), i.e. at t = S), min_ade_sample (k*).
Comfort (runtime.comfort) needs no ground truth: comfort/<check> is 1.0 or 0.0 for the plan
(sample 0 when every sample was rejected); comfort_samples/<check> is the fraction of the K
samples that pass, which is what the official code reports as comfort/<check>. valid_samples
and rejected_samples count the samples the safety gate passed and rejected.
"""
import math
from typing import Dict, Iterable, List, Optional

import numpy as np

from ar1_ros.evaluation.records import STATUSES, KeyframeRecord
from ar1_ros.runtime.comfort import CHECKS, comfort_checks

BY_T = (0.5, 1.0, 3.0, 5.0)
ADE_BY_T = (3.0,)
EGO_BOX_LWH = (4.0, 3.0, 2.0)
DISTANCE_METRICS = ('min_ade', *(f'min_ade/by_t={t}' for t in BY_T), 'ade',
                    *(f'ade/by_t={t}' for t in ADE_BY_T), 'fde', 'min_fde',
                    *(f'displacement@{t}s' for t in BY_T), 'corner_distance', 'min_ade_sample')
COMFORT_METRICS = (*(f'comfort/{name}' for name in CHECKS),
                   *(f'comfort_samples/{name}' for name in CHECKS))
SAMPLE_METRICS = ('valid_samples', 'rejected_samples')
# Every metric record_metrics() can return, in the order tables and CSV columns use.
METRIC_NAMES = DISTANCE_METRICS + COMFORT_METRICS + SAMPLE_METRICS
# Indices, not quantities: not averaged by aggregate().
NOT_AVERAGED = frozenset({'min_ade_sample'})


def xy_errors(pred_xyz: np.ndarray, gt_xyz: np.ndarray) -> np.ndarray:
    """Return the XY distance (K, T) in metres of pred_xyz (K, T, 3) to gt_xyz (T, 3)."""
    pred_xyz, gt_xyz = np.asarray(pred_xyz, np.float64), np.asarray(gt_xyz, np.float64)
    if pred_xyz.ndim != 3 or pred_xyz.shape[0] < 1 or pred_xyz.shape[1:] != gt_xyz.shape:
        raise ValueError(f'need pred_xyz (K>=1, T, 3) and gt_xyz (T, 3), got {pred_xyz.shape} '
                         f'and {gt_xyz.shape}')
    return np.linalg.norm(pred_xyz[..., :2] - gt_xyz[None, :, :2], axis=-1)


def best_sample(errors: np.ndarray) -> int:
    """Return k*, the sample with the smallest mean error over the full horizon (errors (K, T))."""
    return int(np.argmin(np.asarray(errors).mean(axis=1)))


def horizon_steps(t: float, dt: float) -> int:
    """Return how many steps the first t seconds hold: round(t / dt)."""
    return int(round(t / dt))


def _box_corners(xyz: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Return the ego box corners (..., 8, 3) at poses xyz (..., 3) with rotations (..., 3, 3)."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    local = signs * np.asarray(EGO_BOX_LWH) / 2  # (8, 3)
    return np.einsum('...ij,cj->...ci', rot, local) + xyz[..., None, :]


def corner_distance(pred_xyz: np.ndarray, pred_rot: np.ndarray, gt_xyz: np.ndarray,
                    gt_rot: np.ndarray) -> float:
    """Return the official corner distance in metres.

    pred_xyz (K, T, 3), pred_rot (K, T, 3, 3), gt_xyz (T, 3), gt_rot (T, 3, 3): the minimum over
    K is taken separately for each corner and step, then the mean over T and the 8 corners.
    """
    pred_xyz, pred_rot = np.asarray(pred_xyz, np.float64), np.asarray(pred_rot, np.float64)
    gt_xyz, gt_rot = np.asarray(gt_xyz, np.float64), np.asarray(gt_rot, np.float64)
    if pred_rot.shape != pred_xyz.shape + (3,) or gt_rot.shape != gt_xyz.shape + (3,):
        raise ValueError(f'rotations {pred_rot.shape}, {gt_rot.shape} do not match positions '
                         f'{pred_xyz.shape}, {gt_xyz.shape}')
    pred, gt = _box_corners(pred_xyz, pred_rot), _box_corners(gt_xyz, gt_rot)
    distance = np.linalg.norm(pred - gt[None], axis=-1)  # (K, T, 8)
    return float(distance.min(axis=0).mean())


def keyframe_metrics(pred_xyz: np.ndarray, pred_rot: np.ndarray, gt_xyz: np.ndarray,
                     gt_rot: np.ndarray, dt: float = 0.1) -> Dict[str, float]:
    """Return the distance metrics (module docstring) of K samples against the recorded path.

    pred_xyz (K, T, 3), pred_rot (K, T, 3, 3), gt_xyz (T, 3), gt_rot (T, 3, 3), dt in seconds.
    Values in metres (min_ade_sample: an index). A by_t or displacement metric whose time lies
    beyond the horizon (or before its first step) is left out. ValueError on bad shapes.
    """
    error = xy_errors(pred_xyz, gt_xyz)
    horizon = error.shape[1]
    best = best_sample(error)
    metrics = {'min_ade': float(error[best].mean()), 'ade': float(error[0].mean()),
               'fde': float(error[0, -1]), 'min_fde': float(error[:, -1].min()),
               'min_ade_sample': float(best),
               'corner_distance': corner_distance(pred_xyz, pred_rot, gt_xyz, gt_rot)}
    for t in BY_T:
        n = horizon_steps(t, dt)
        if 1 <= n <= horizon:
            metrics[f'min_ade/by_t={t}'] = float(error[best, :n].mean())
            metrics[f'displacement@{t}s'] = float(error[best, n - 1])
    for t in ADE_BY_T:
        n = horizon_steps(t, dt)
        if 1 <= n <= horizon:
            metrics[f'ade/by_t={t}'] = float(error[0, :n].mean())
    return {name: metrics[name] for name in DISTANCE_METRICS if name in metrics}


def plan_sample(record: KeyframeRecord) -> Optional[int]:
    """Return the sample shown and scored for comfort: the plan, else sample 0, else None."""
    if not record.has_prediction:
        return None
    return record.plan_index if record.plan_index is not None else 0


def _comfort_metrics(record: KeyframeRecord, plan: int) -> Dict[str, float]:
    checks = [comfort_checks(xyz, rot, record.dt)
              for xyz, rot in zip(record.pred_xyz, record.pred_rot, strict=True)]
    metrics = {f'comfort/{name}': float(ok) for name, ok in checks[plan].items()}
    metrics.update({f'comfort_samples/{name}': float(np.mean([c[name] for c in checks]))
                    for name in CHECKS})
    return metrics


def record_metrics(record: KeyframeRecord) -> Dict[str, float]:
    """Return every metric of one keyframe, in METRIC_NAMES order.

    Without a prediction (failed, skipped): {}. With one: comfort/<check> (1.0 pass, 0.0 fail)
    of the plan sample, comfort_samples/<check> (pass rate over the samples), valid_samples and
    rejected_samples (counts), and with ground truth also the metrics of keyframe_metrics().
    """
    plan = plan_sample(record)
    if plan is None:
        return {}
    metrics = {'valid_samples': float(sum(bool(v) for v in record.valid)),
               'rejected_samples': float(sum(not v for v in record.valid))}
    if record.pred_rot is not None:
        metrics.update(_comfort_metrics(record, plan))
    if record.has_ground_truth and record.pred_rot is not None:
        metrics.update(keyframe_metrics(record.pred_xyz, record.pred_rot, record.gt_xyz,
                                        record.gt_rot, record.dt))
    return {name: metrics[name] for name in METRIC_NAMES if name in metrics}


def _stats(values: List[float]) -> Dict[str, float]:
    """Return mean, std (population, as the official _std), min, max and count of values."""
    array = np.asarray(values, dtype=np.float64)
    return {'mean': float(array.mean()), 'std': float(array.std()),
            'min': float(array.min()), 'max': float(array.max()), 'count': int(array.size)}


def _metric_order(names: Iterable[str]) -> List[str]:
    """Return names with the known metrics first, in METRIC_NAMES order, then the rest sorted."""
    names = set(names)
    return [n for n in METRIC_NAMES if n in names] + sorted(names - set(METRIC_NAMES))


def _rate(part: float, whole: float) -> Optional[float]:
    return part / whole if whole else None


def aggregate(records: Iterable[KeyframeRecord]) -> Dict:
    """Return the summary of keyframe records (their .metrics filled by record_metrics()).

    keyframes, status (count per status), with_prediction, with_ground_truth;
    plan_rejection_rate: rejected / (ok + rejected), None without predictions;
    sample_rejection_rate: rejected samples / samples, None without samples;
    metrics: name -> {mean, std, min, max, count} over the keyframes that have a finite value
    (as the official val/metric/* averages over the dataset). Zero records give zero counts.
    """
    records = list(records)
    counts = {status: sum(r.status == status for r in records) for status in STATUSES}
    names = _metric_order(n for r in records for n in r.metrics if n not in NOT_AVERAGED)
    metrics = {}
    for name in names:
        values = [float(r.metrics[name]) for r in records if name in r.metrics]
        values = [v for v in values if math.isfinite(v)]
        if values:
            metrics[name] = _stats(values)
    rejected = sum(r.metrics.get('rejected_samples', 0.0) for r in records)
    samples = rejected + sum(r.metrics.get('valid_samples', 0.0) for r in records)
    return {'keyframes': len(records), 'status': counts,
            'with_prediction': sum(r.has_prediction for r in records),
            'with_ground_truth': sum(r.has_prediction and r.has_ground_truth for r in records),
            'plan_rejection_rate': _rate(counts['rejected'], counts['ok'] + counts['rejected']),
            'sample_rejection_rate': _rate(rejected, samples),
            'metrics': metrics}


def aggregate_by_bag(records: Iterable[KeyframeRecord]) -> Dict[str, Dict]:
    """Return {bag: aggregate(its records)}, bags in order of first appearance."""
    by_bag: Dict[str, List[KeyframeRecord]] = {}
    for record in records:
        by_bag.setdefault(record.bag, []).append(record)
    return {bag: aggregate(rows) for bag, rows in by_bag.items()}
