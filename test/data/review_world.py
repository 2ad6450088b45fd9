"""Shared inputs of the label review tests: labelled demo-world bags and parameter files.

The bags are label_world's (lead_brake and overtake, seed 0, the tiny 64x32 rig), labelled once
per test session with `ar1 label --uniform 2` (14 labels: enough to edit, accept and reject
different ones and leave the rest pending). The parameter file carries the rig's calibration of
front_wide, so the review draws the recorded future on that camera; `calibrated=False` gives
one where front_wide has none.
"""
import dataclasses
from pathlib import Path
from typing import Tuple

from ar1_ros.cli.eval import default_params
from ar1_ros.cli.main import main
from ar1_ros.nodes.params_file import write_with_overrides
from data.label_world import WORLD_RIG, demo_world


@dataclasses.dataclass(frozen=True)
class ReviewInputs:
    """Bags (lead_brake_000, overtake_000), their labels file and a calibrated params file."""

    bags: Tuple[Path, Path]
    labels: Path
    params: Path


def params_file(folder: Path, calibrated: bool = True) -> Path:
    """Write the package's parameters with front_wide calibrated for WORLD_RIG (or not)."""
    front = next(camera for camera in WORLD_RIG if camera.camera_id == 'front_wide')
    intrinsics = [front.fx, front.fy, front.cx, front.cy] if calibrated else []
    extrinsics = [float(v) for v in front.extrinsics] if calibrated else []
    name = 'calibrated.yaml' if calibrated else 'uncalibrated.yaml'
    return write_with_overrides(default_params(), folder / name, {
        'camera.front_wide.intrinsics': intrinsics, 'camera.front_wide.extrinsics': extrinsics})


def review_inputs(tmp_path_factory) -> ReviewInputs:
    """Return the shared ReviewInputs, labelling the bags on first use."""
    world = demo_world(tmp_path_factory, ['lead_brake', 'overtake'], [0])
    bags = (world / 'lead_brake_000', world / 'overtake_000')
    folder = tmp_path_factory.getbasetemp() / 'label_review_inputs'
    labels = folder / 'labels.jsonl'
    if not labels.is_file():
        folder.mkdir(exist_ok=True)
        code = main(['label', *map(str, bags), '--out', str(labels), '--uniform', '2',
                     '--no-progress'])
        assert code == 0, f'ar1 label exited {code}'
    return ReviewInputs(bags, labels, params_file(folder))
