"""Open-loop scores on the expert's own drive: minADE and decision accuracy at its keyframes.

The closed loop shows where a policy ends up; this shows what it plans from the same inputs the
expert had. On the expert's drive of a scenario and seed (sim.record.drive_expert: poses every
world step, rendered JPEG frames at the camera rate, privileged labels), each policy plans at:

- the decision moments of the drive's kinematics (data.keyframes.detect_keyframes: braking,
  accelerating, stopping, starting, turning, lane changes), where planning is hard, and
- a uniform keyframe every UNIFORM_S = 1 s in between, so cruising is measured too,

with min_gap_s lowered to 1 s (the bag default of 2 s would thin the uniform ones to one every
2 s on short episodes). Every keyframe has 1.6 s of history and 6.4 s of recorded future.

The model plans through a fresh RuntimeFeeder fed the drive's frames and poses up to t0; the
constant-velocity baseline plans a straight line at the expert's speed. Errors against the
future actually driven (sim.record.future_in_ego_frame) use evaluation.metrics: minADE over
the first 3 s (k* chosen on the full horizon, as the official code does) and over 6.4 s.
The model's decision (presentation.parse_decision of the plan's reasoning) is compared with
the world's privileged label nearest in time.
"""
import dataclasses
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ar1_ros.data.ego_track import EgoTrack
from ar1_ros.data.keyframes import KeyframeRules, detect_keyframes
from ar1_ros.evaluation.closed_loop import PolicyError, straight_path
from ar1_ros.evaluation.closed_loop_inputs import RuntimeFeeder, ego_state
from ar1_ros.evaluation.metrics import keyframe_metrics
from ar1_ros.runtime.presentation import parse_decision
from ar1_ros.runtime.rotations import rot_z
from ar1_ros.runtime.types import NS_PER_S
from ar1_ros.sim.record import FUTURE_DT_S, HORIZON_S, Drive, future_in_ego_frame, stamp_ns
from ar1_ros.sim.scene import Box

UNIFORM_S = 1.0
KEYFRAME_RULES = KeyframeRules(min_gap_s=1.0)
SHORT_HORIZON_S = 3.0


@dataclasses.dataclass
class KeyframeScore:
    """One open-loop plan at a keyframe.

    t_s [s] and kind: when and why (data.keyframes kinds); min_ade_3s, min_ade_6_4s [m]: None
    without a prediction; for the model the parsed decision, the label's decision and skip
    ('' when planned, else why not: an assembly skip reason or 'rejected').
    """

    t_s: float
    kind: str
    min_ade_3s: Optional[float] = None
    min_ade_6_4s: Optional[float] = None
    decision: str = ''
    label: str = ''
    skip: str = ''

    @property
    def decision_correct(self) -> Optional[bool]:
        """Whether the decision matches the label (None: no decision or no label to compare)."""
        if self.min_ade_6_4s is None or not self.label:
            return None
        return self.decision == self.label


def keyframe_steps(drive: Drive, dt_s: float, epoch_s: float) -> List[Tuple[int, str]]:
    """Return (world step, kind) of the drive's keyframes (module docstring), in time order."""
    track = EgoTrack([ego_state(stamp_ns(epoch_s, t), x, y, yaw, v)
                      for (t, x, y, yaw), v in zip(drive.poses, drive.speeds, strict=True)])
    origin = stamp_ns(epoch_s, 0.0)
    keyframes = detect_keyframes(track.kinematics(FUTURE_DT_S), KEYFRAME_RULES, UNIFORM_S)
    return [(int(round((k.t_ns - origin) / NS_PER_S / dt_s)), k.kind) for k in keyframes]


def ground_truth(drive: Drive, step: int, dt_s: float) -> Tuple[np.ndarray, np.ndarray]:
    """Return the future driven after `step`: xyz (64, 3) and rot (64, 3, 3), ego frame at t0."""
    xyz = future_in_ego_frame(drive.poses, step, dt_s)
    stride = int(round(FUTURE_DT_S / dt_s))
    idx = step + stride * np.arange(1, len(xyz) + 1)
    rot = np.stack([rot_z(a) for a in drive.poses[idx, 3] - drive.poses[step, 3]])
    return xyz, rot


def _scores(pred_xyz: np.ndarray, pred_rot: np.ndarray, truth) -> Tuple[float, float]:
    """Return (minADE over 3 s, over 6.4 s) [m] of K samples (K, 64, 3) against the truth."""
    metrics = keyframe_metrics(pred_xyz, pred_rot, truth[0], truth[1], FUTURE_DT_S)
    return metrics[f'min_ade/by_t={SHORT_HORIZON_S}'], metrics['min_ade']


def open_loop_cv(drive: Drive, keyframes: Sequence[Tuple[int, str]],
                 dt_s: float) -> List[KeyframeScore]:
    """Score the constant-velocity plan (straight on at the expert's speed) at each keyframe."""
    rot = np.broadcast_to(np.eye(3), (1, int(round(HORIZON_S / FUTURE_DT_S)), 3, 3))
    out = []
    for step, kind in keyframes:
        pred = straight_path(float(drive.speeds[step]))[None]
        short, full = _scores(pred, rot, ground_truth(drive, step, dt_s))
        out.append(KeyframeScore(round(step * dt_s, 6), kind, short, full))
    return out


def nearest_label(drive: Drive, step: int) -> str:
    """Return the decision of the drive's label nearest in time to `step` ('' without labels)."""
    if not drive.labels:
        return ''
    return min(drive.labels, key=lambda item: abs(item[0] - step))[1].decision


def _feed_until(feeder: RuntimeFeeder, drive: Drive, start: int, stop: int,
                frames: dict) -> None:
    """Feed the drive's odometry and frames of steps [start, stop] to the feeder."""
    for step in range(start, stop + 1):
        t, x, y, yaw = drive.poses[step]
        feeder.add_ego(t, Box(0, x, y, yaw, speed=float(drive.speeds[step]), kind='ego'))
        if step in frames:
            feeder.add_frames(t, frames[step])


def open_loop_model(drive: Drive, keyframes: Sequence[Tuple[int, str]], dt_s: float,
                    feeder: RuntimeFeeder) -> List[KeyframeScore]:
    """Plan with the model at each keyframe from the drive's inputs up to it; score the samples.

    Every sample is scored (minADE picks the best), also when the safety gate rejected them
    all, as `ar1 eval` does. A failed cycle raises PolicyError.
    """
    frames, fed, out = dict(drive.frames), -1, []
    for step, kind in keyframes:
        _feed_until(feeder, drive, fed + 1, step, frames)
        fed = max(fed, step)
        t = round(step * dt_s, 6)
        outcome = feeder.plan(t, not_before_s=t)
        if outcome.skip == 'error':
            raise PolicyError(outcome.detail)
        score = KeyframeScore(t, kind, label=nearest_label(drive, step), skip=outcome.skip)
        result = outcome.result
        if result is not None and result.output is not None:
            output = result.output
            score.min_ade_3s, score.min_ade_6_4s = _scores(
                output.trajectory_xyz, output.trajectory_rot, ground_truth(drive, step, dt_s))
            shown = result.plan_index if result.plan_index is not None else 0
            score.decision = parse_decision(output.reasoning[shown])
        out.append(score)
    return out
