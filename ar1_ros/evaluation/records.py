"""What offline evaluation keeps of each keyframe: inputs summary, prediction, ground truth.

A KeyframeRecord is filled by the evaluation loop (evaluation.offline) and read by the metrics,
the JSON/CSV writer and the report, so those never touch bags or models.
"""
import dataclasses
from typing import Dict, Optional, Tuple

import numpy as np

# Outcomes of a keyframe. 'ok': a plan passed the safety gate; 'rejected': every sample failed
# it; 'failed': the backend raised or returned non-finite values; 'skipped': no observation
# could be assembled (a camera or odometry missing, too little history, ...).
STATUSES = ('ok', 'rejected', 'failed', 'skipped')


@dataclasses.dataclass
class KeyframeRecord:
    """One evaluated keyframe of one bag.

    t0_ns: the observation's t0 (for 'skipped', the keyframe time that was asked for).
    pred_xyz (K, T, 3) / pred_rot (K, T, 3, 3): every sampled trajectory in the t0 ego frame
    (x forward, y left), validated or not; None unless status is 'ok' or 'rejected'.
    valid (K,): which samples passed the safety gate; plan_index: the published sample.
    gt_xyz (T, 3) / gt_rot (T, 3, 3): the recorded ego path at t0 + (i + 1) * dt in the t0
    frame; None when the bag ends (or odometry stops) before the horizon.
    history_xyz (16, 3): the ego history the model saw, in the t0 frame.
    camera_rgb (H, W, 3) uint8: a reduced front camera image at t0 with the plan drawn when the
    camera is calibrated (camera_note says what was drawn), or None.
    metrics: name -> value, filled by evaluation.metrics.keyframe_metrics (empty without GT).
    """

    bag: str
    t0_ns: int
    status: str
    detail: str = ''
    pred_xyz: Optional[np.ndarray] = None
    pred_rot: Optional[np.ndarray] = None
    valid: Tuple[bool, ...] = ()
    plan_index: Optional[int] = None
    reasoning: Tuple[str, ...] = ()
    decision: str = ''
    gt_xyz: Optional[np.ndarray] = None
    gt_rot: Optional[np.ndarray] = None
    history_xyz: Optional[np.ndarray] = None
    speed: float = float('nan')
    dt: float = 0.1
    timings: Dict[str, float] = dataclasses.field(default_factory=dict)
    camera_rgb: Optional[np.ndarray] = None
    camera_note: str = ''
    metrics: Dict[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f'status must be one of {STATUSES}, got {self.status!r}')

    @property
    def t0_s(self) -> float:
        """Return t0 in seconds."""
        return self.t0_ns / 1e9

    @property
    def has_prediction(self) -> bool:
        """Whether trajectories were produced (status 'ok' or 'rejected')."""
        return self.pred_xyz is not None

    @property
    def has_ground_truth(self) -> bool:
        """Whether the recorded future covers the whole horizon."""
        return self.gt_xyz is not None
