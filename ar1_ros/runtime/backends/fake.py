"""A deterministic TEST DOUBLE of the AR1 backend: no model, no weights, no learning.

It exists so the node, the worker and the safety gate can be exercised without a GPU or a
checkpoint. Its plans are arithmetic (constant speed, a gentle constant curvature), never a
prediction, and everything it publishes says so: name 'fake (test double)', model_id
'fake-test-double', reasoning starting with 'FAKE BACKEND (test double)'.
"""
import time

import numpy as np

from ar1_ros.runtime.backends.base import BackendSettings, check_images
from ar1_ros.runtime.kinematics import integrate_unicycle
from ar1_ros.runtime.types import BackendOutput, Observation

DT_S = 0.1
N_POINTS = 64
NOMINAL_CURVATURE = 0.002
CURVATURE_STEP = 0.001
SWERVE_CURVATURE = 1.0


class FakeBackend:
    """A deterministic TEST DOUBLE standing in for AR1 (see the module docstring).

    Modes (settings.fake_mode): 'nominal' keeps the current speed (acceleration 0) on
    curvature 0.002 + 0.001 * s 1/m for sample s; 'swerve' uses curvature 1.0 1/m (the
    validator must reject it); 'nan' returns NaN trajectories; 'raise' raises RuntimeError.
    settings.fake_delay_s is slept in every call, to make inference slow on purpose.
    """

    name = 'fake (test double)'
    model_id = 'fake-test-double'

    def __init__(self, settings: BackendSettings):
        self.settings = settings
        self._closed = False

    def infer(self, images: np.ndarray, observation: Observation) -> BackendOutput:
        """Return S = settings.num_samples fake plans for images uint8 (C, F, H, W, 3).

        Trajectories (S, 64, 3) and rotations (S, 64, 3, 3) integrate the actions (S, 64, 2)
        with the unicycle equations from observation.history.speed.
        """
        start = time.monotonic()
        if self._closed:
            raise RuntimeError('fake backend (test double) used after close()')
        check_images(images, observation)
        if self.settings.fake_delay_s > 0:
            time.sleep(self.settings.fake_delay_s)
        mode = self.settings.fake_mode
        if mode == 'raise':
            raise RuntimeError('fake backend fault (test double)')
        speed = float(observation.history.speed)
        actions = self._actions(mode)
        xyz, rot, _ = integrate_unicycle(actions, speed, DT_S)
        if mode == 'nan':
            xyz[:] = np.nan
        text = f'FAKE BACKEND (test double): keep lane at {speed:.1f} m/s'
        samples = actions.shape[0]
        return BackendOutput(
            trajectory_xyz=xyz, trajectory_rot=rot, actions=actions,
            reasoning=[text] * samples, token_counts=[len(text.split())] * samples,
            timings={'fake_inference': time.monotonic() - start}, dt=DT_S)

    def _actions(self, mode: str) -> np.ndarray:
        """Return (S, 64, 2) float64 controls: acceleration 0, the mode's curvature per sample."""
        samples = self.settings.num_samples
        if mode == 'swerve':
            curvature = np.full(samples, SWERVE_CURVATURE)
        else:
            curvature = NOMINAL_CURVATURE + CURVATURE_STEP * np.arange(samples)
        actions = np.zeros((samples, N_POINTS, 2))
        actions[..., 1] = curvature[:, None]
        return actions

    def close(self) -> None:
        """Mark the double closed: later infer() calls raise, as with a released model."""
        self._closed = True
