"""ar1_ros Trajectory and Reasoning cross DDS between two processes with every field intact."""
import json
import math
import os
from pathlib import Path
import subprocess
import sys

import pytest

PEER = Path(__file__).resolve().parent / 'ros' / 'dds_peer.py'


def duration(nanoseconds: int) -> dict:
    return {'sec': nanoseconds // 10**9, 'nanosec': nanoseconds % 10**9}


def trajectory_spec() -> dict:
    """64 points at 0.1 s of a gentle left curve, with values that need float64 to survive."""
    points = []
    for i in range(64):
        t = (i + 1) * 0.1
        points.append({
            'time_from_start': duration((i + 1) * 100_000_000),
            'x': 8.3 * t + 1e-9 * i, 'y': 0.01 * t * t / 3.0, 'z': -0.25,
            'yaw': math.atan2(0.02 * t, 8.3), 'velocity': 8.3 + 0.05 * t,
            'acceleration': -0.5 + i / 127.0, 'curvature': 1.0 / (250.0 + i),
        })
    return {
        'header': {'stamp': {'sec': 1_700_000_123, 'nanosec': 456_789_012},
                   'frame_id': 'base_link'},
        'horizon': duration(6_400_000_000), 'time_step': duration(100_000_000),
        'points': points, 'sample_index': 2, 'num_samples': 3,
        'model_id': 'nvidia/Alpamayo-R1-10B@test',
    }


def reasoning_spec() -> dict:
    stages = ('preprocess', 'vision', 'prefill', 'decode', 'flow_matching', 'total')
    return {
        'header': {'stamp': {'sec': 1_700_000_123, 'nanosec': 456_789_012},
                   'frame_id': 'base_link'},
        'text': 'Nudge left to keep clear of the cyclist ahead — 1.5 m gap.\nThen keep lane.',
        'decision': 'in_lane_nudge_left', 'token_count': 37,
        'latency': [{'stage': s, 'seconds': 0.0125 * (k + 1)} for k, s in enumerate(stages)],
        'sample_index': 2, 'num_samples': 3, 'model_id': 'nvidia/Alpamayo-R1-10B@test',
    }


@pytest.mark.ros
@pytest.mark.timeout(120)
def test_trajectory_and_reasoning_cross_processes(tmp_path):
    spec = {'trajectory': trajectory_spec(), 'reasoning': reasoning_spec()}
    spec_path, out_path = tmp_path / 'spec.json', tmp_path / 'received.json'
    spec_path.write_text(json.dumps(spec))
    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'

    def peer(mode, path):
        return subprocess.Popen([sys.executable, str(PEER), mode, str(path), '--timeout', '60'],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    listener = peer('listen', out_path)
    talker = peer('talk', spec_path)
    try:
        listener_output, _ = listener.communicate(timeout=90)
    finally:
        talker.terminate()
        talker_output, _ = talker.communicate(timeout=30)
    assert listener.returncode == 0, f'listener:\n{listener_output}\ntalker:\n{talker_output}'
    assert talker.returncode == 0, talker_output
    received = json.loads(out_path.read_text())
    assert received['trajectory'] == spec['trajectory']
    assert received['reasoning'] == spec['reasoning']
    assert len(received['trajectory']['points']) == 64
