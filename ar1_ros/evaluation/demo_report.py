"""What `make demo` shows: the node's recorded outputs turned into a video, a plot and metrics.

Inputs: the bag the node was replayed from (the expert's drive: cameras, odometry), the bag
of the node's outputs recorded over DDS (nodes.demo_session), the world's labels and road.
Outputs in one folder: overlay.mp4 (the node's ~/overlay images: the front camera with the
planned path and the reasoning drawn by the node itself), frames/*.png (a few of them),
bev.png (the road from above, the driven path and the node's plans), metrics.json.

Metrics, per node plan at t0 (in the t0 ego frame, against the path the expert drove):
ADE and FDE at 3 s and 6.4 s; the same for the constant-velocity baseline (straight ahead
at the odometry speed at t0); the decision parsed from the node's reasoning against the
world's label at the same t0.
"""
import dataclasses
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ar1_ros.data.bags import BagReader
from ar1_ros.data.ego_track import EgoTrack
from ar1_ros.data.labels import CocLabel, match
from ar1_ros.evaluation.closed_loop import straight_path
from ar1_ros.evaluation.closed_loop_plots import bev_axes
from ar1_ros.evaluation.metrics import horizon_steps, xy_errors
from ar1_ros.evaluation.plots import png
from ar1_ros.runtime.messages import stamp_to_ns
from ar1_ros.sim.scene import RoadGeometry

DT_S = 0.1


@dataclasses.dataclass
class NodeOutputs:
    """The node's recorded outputs.

    plans {t0_ns: (64, 3) ego-frame xyz}, reasoning {t0_ns: (text, decision)}, overlay frames
    [(t0_ns, (H, W, 3) uint8 RGB)], diagnostics: how many /diagnostics messages arrived.
    """

    plans: Dict[int, np.ndarray]
    reasoning: Dict[int, Tuple[str, str]]
    overlays: List[Tuple[int, np.ndarray]]
    diagnostics: int = 0


def _overlay_rgb(msg) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an rgb8 sensor_msgs/Image (rows may be padded to msg.step)."""
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    return rows[:, :msg.width * 3].reshape(msg.height, msg.width, 3).copy()


def read_outputs(path: Path, node: str = 'ar1_policy') -> NodeOutputs:
    """Read the trajectory, reasoning, overlay and diagnostics topics of an output bag."""
    out = NodeOutputs({}, {}, [])
    with BagReader(path) as reader:
        for message in reader.messages():
            msg = reader.deserialize(message)
            if message.topic == f'/{node}/trajectory':
                out.plans[stamp_to_ns(msg.header.stamp)] = np.array(
                    [[p.x, p.y, p.z] for p in msg.points], np.float64)
            elif message.topic == f'/{node}/reasoning':
                out.reasoning[stamp_to_ns(msg.header.stamp)] = (msg.text, msg.decision)
            elif message.topic == f'/{node}/overlay' and msg.encoding == 'rgb8':
                out.overlays.append((stamp_to_ns(msg.header.stamp), _overlay_rgb(msg)))
            elif message.topic == '/diagnostics':
                out.diagnostics += 1
    return out


def write_video(frames: Sequence[Tuple[int, np.ndarray]], path: Path, fps: float) -> bool:
    """Encode RGB frames into an H.264 mp4 (PyAV); return False when there is no frame."""
    if not frames:
        return False
    import av
    height, width = frames[0][1].shape[:2]
    with av.open(str(path), 'w') as container:
        stream = container.add_stream('libx264', rate=max(1, int(round(fps))))
        stream.width, stream.height, stream.pix_fmt = width - width % 2, height - height % 2, \
            'yuv420p'
        for _, rgb in frames:
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(rgb[:stream.height, :stream.width]), format='rgb24')
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return True


def _errors(plan: np.ndarray, future: np.ndarray) -> Dict[str, float]:
    errors = xy_errors(plan[None], future)[0]
    n3 = horizon_steps(3.0, DT_S)
    return {'ade_3s': float(errors[:n3].mean()), 'fde_3s': float(errors[n3 - 1]),
            'ade_6_4s': float(errors.mean()), 'fde_6_4s': float(errors[-1])}


def plan_rows(outputs: NodeOutputs, track: EgoTrack,
              labels: Sequence[CocLabel]) -> List[dict]:
    """One row per node plan with a recorded future: errors of the plan and of cv, decisions."""
    attached, _ = match(labels, sorted(outputs.plans))
    rows = []
    for t0, plan in sorted(outputs.plans.items()):
        future, pose = track.future(t0), track.pose(t0)
        if future is None or not isinstance(pose, tuple):
            continue
        speed = float(np.linalg.norm(pose[2][:2]))
        label = attached.get(t0)
        text, decision = outputs.reasoning.get(t0, ('', ''))
        rows.append({'t0_ns': t0, 'speed_mps': speed,
                     'model': _errors(plan, future[0]),
                     'cv': _errors(straight_path(speed), future[0]),
                     'decision': decision, 'reasoning': text,
                     'label_decision': label.decision if label else None,
                     'label_coc': label.coc if label else None})
    return rows


def summarize(rows: Sequence[dict]) -> Dict[str, Optional[float]]:
    """Means over the plans (model and cv errors) and the decision accuracy on labelled t0s."""
    summary: Dict[str, Optional[float]] = {'plans': len(rows)}
    for who in ('model', 'cv'):
        for key in ('ade_3s', 'fde_3s', 'ade_6_4s', 'fde_6_4s'):
            values = [row[who][key] for row in rows]
            summary[f'{who}_{key}'] = float(np.mean(values)) if values else None
    labelled = [row for row in rows if row['label_decision']]
    summary['labelled_plans'] = len(labelled)
    summary['decision_accuracy'] = (float(np.mean([r['decision'] == r['label_decision']
                                                   for r in labelled])) if labelled else None)
    return summary


def bev_png(geometry: RoadGeometry, track: EgoTrack, outputs: NodeOutputs,
            every_s: float = 1.0) -> bytes:
    """Return a PNG of the road from above, the driven path and the node's plans every_s."""
    poses = [track.pose(t) for t in sorted(outputs.plans)]
    driven = np.array([p[0][:2] for p in poses if isinstance(p, tuple)]).reshape(-1, 2)
    if not len(driven):
        raise ValueError('no node plan falls on the recorded drive: nothing to draw')
    fig, ax = bev_axes(driven, geometry)
    ax.plot(driven[:, 0], driven[:, 1], color='tab:green', lw=3, label='driven (expert)')
    last = None
    for t0, plan in sorted(outputs.plans.items()):
        pose = track.pose(t0)
        if not isinstance(pose, tuple) or (last is not None and t0 - last < every_s * 1e9):
            continue
        world = plan @ pose[1].T + pose[0]  # ego frame at t0 -> odom
        ax.plot(world[:, 0], world[:, 1], color='tab:blue', lw=1.2, alpha=0.8,
                label='node plan' if last is None else None)
        last = t0
    ax.legend(loc='upper left', fontsize=8)
    return png(fig, dpi=90)


def write_report(folder: Path, outputs: NodeOutputs, track: EgoTrack,
                 labels: Sequence[CocLabel], geometry: RoadGeometry, fps: float,
                 extra: Optional[dict] = None) -> dict:
    """Write overlay.mp4, frames/, bev.png and metrics.json into `folder`; return the metrics."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = plan_rows(outputs, track, labels)
    metrics = {'summary': summarize(rows), 'plans': rows, **(extra or {})}
    video = write_video(outputs.overlays, folder / 'overlay.mp4', fps)
    frames = folder / 'frames'
    frames.mkdir(exist_ok=True)
    picks = outputs.overlays[::max(1, len(outputs.overlays) // 6)][:6]
    for t0, rgb in picks:
        _save_png(frames / f'overlay_{t0}.png', rgb)
    (folder / 'bev.png').write_bytes(bev_png(geometry, track, outputs))
    metrics['files'] = {'video': 'overlay.mp4' if video else None, 'bev': 'bev.png',
                        'frames': sorted(p.name for p in frames.glob('*.png'))}
    (folder / 'metrics.json').write_text(json.dumps(metrics, indent=1) + '\n')
    return metrics


def _save_png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image
    Image.fromarray(rgb).save(path)
