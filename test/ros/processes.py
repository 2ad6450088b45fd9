"""Processes of the DDS tests: the node as users start it (`ar1 run`) and its parameter file."""
import os
import signal
import subprocess
import sys

from ros.harness import CONFIG, REPO

from ar1_ros.nodes.params_file import write_with_overrides

TINY = os.path.join(REPO, 'test', 'fixtures', 'ar1_tiny')
# The tiny random checkpoint plans nonsense: a safety gate that lets every finite plan through,
# so tests see its plans (the gate itself is tested with the fake backend).
LOOSE_VALIDATOR = {f'validator.{k}': v for k, v in (
    ('min_accel', -1e6), ('max_accel', 1e6), ('max_curvature', 1e6), ('max_jerk', 1e9),
    ('max_lateral_accel', 1e9), ('first_point_tolerance_m', 1e6), ('min_speed', -1e6))}
TINY_BACKEND = {'backend.kind': 'torch', 'backend.checkpoint': os.path.join(TINY, 'checkpoint'),
                'backend.vlm_path': os.path.join(TINY, 'base_vlm'), 'backend.device': 'cpu',
                'backend.dtype': 'float32', 'backend.max_reasoning_tokens': 8}


def write_params(path, overrides):
    return write_with_overrides(CONFIG, path, overrides)


class NodeProcess:
    """`ar1 run` with sim time, unconfigured (lifecycle services drive it) unless autostart."""

    def __init__(self, params_file, log_path, autostart=False):
        self.log = open(log_path, 'w')  # noqa: SIM115 - closed in stop(), outlives __init__
        ar1 = os.path.join(os.path.dirname(sys.executable), 'ar1')
        start = [] if autostart else ['--no-autostart']
        self.proc = subprocess.Popen(
            [ar1, 'run', '--params', str(params_file), *start, '--ros-args',
             '-p', 'use_sim_time:=true'], stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode
