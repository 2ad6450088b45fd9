"""The demo world as the node would have seen it: rendered cameras and odometry into the runtime.

RuntimeFeeder is the closed loop's stand-in for the node's subscriptions. It takes the rig's
camera images as JPEG (sim.record.encode_frames, as the bags carry them) and the ego state at
every world step (odometry: pose in the world frame, velocity in the body frame), stamps both
on the bags' time base (sim.record.stamp_ns), and adds them to the node's own InputBuffers.
plan() then asks the buffers for an Observation with the node's t0 rule and runs the worker's
cycle on it (decode, backend, safety gate), synchronously: the world waits for the model, so
inference latency does not show in the closed loop (a real car would drive on meanwhile).

The same feeder serves the open-loop evaluation: fed with an expert drive's recorded frames
and poses (sim.record.Drive), it plans at the drive's keyframes from exactly those inputs.
"""
import dataclasses
import time
from typing import Dict, Optional, Sequence

import numpy as np

from ar1_ros.runtime.assembly import InputBuffers
from ar1_ros.runtime.config import RuntimeConfig
from ar1_ros.runtime.images import EncodedImage, Frame, probe_size
from ar1_ros.runtime.rotations import rot_z, yaw_of
from ar1_ros.runtime.types import NS_PER_S, CycleResult, EgoState, Skip
from ar1_ros.runtime.worker import InferenceWorker
from ar1_ros.sim.controller import Plan
from ar1_ros.sim.record import (
    RecordSettings,
    encode_frames,
    renderers_for,
    stamp_ns,
    steps_per,
)
from ar1_ros.sim.rig import RigCamera
from ar1_ros.sim.scene import Box, Scene, World


@dataclasses.dataclass
class PlanOutcome:
    """The answer to one replanning request.

    plan: the world-anchored Plan of the sample the safety gate passed first (plan_index), or
    None. result: the worker's CycleResult (None when no cycle ran). skip: '' with a plan,
    else why there is none: an assembly Skip reason ('no_input', 'camera_missing', ...),
    'rejected' (the gate rejected every sample) or 'error' (the cycle failed: result.error).
    detail: human-readable text for skip.
    """

    plan: Optional[Plan]
    result: Optional[CycleResult] = None
    skip: str = ''
    detail: str = ''


def ego_state(stamp: int, x: float, y: float, yaw: float, speed: float) -> EgoState:
    """Return the odometry sample of a planar pose [m, rad] moving forward at speed [m/s]."""
    return EgoState(stamp, np.array([x, y, 0.0]), rot_z(yaw), np.array([speed, 0.0, 0.0]))


class RuntimeFeeder:
    """One episode's runtime inputs: the node's InputBuffers fed from the world or a drive.

    runtime: the node's RuntimeConfig; its cameras must be the rig's (AR1 names). worker:
    runs the cycles (its backend and safety gate). settings: camera rate, JPEG quality and
    the time base (epoch_s), as sim.record writes bags.
    """

    def __init__(self, runtime: RuntimeConfig, worker: InferenceWorker,
                 rig: Sequence[RigCamera], settings: Optional[RecordSettings] = None):
        names = {camera.camera_id: camera.ar1_name for camera in rig}
        if sorted(names.values()) != sorted(runtime.camera_names):
            raise ValueError(f'rig cameras {sorted(names.values())} differ from the runtime '
                             f'cameras {sorted(runtime.camera_names)}')
        self.buffers = InputBuffers(runtime)
        self._worker, self._rig, self._names = worker, tuple(rig), names
        self.settings = settings or RecordSettings()
        self._renderers: Dict = {}
        self._camera_every = 1
        self._last_t0: Optional[int] = None
        self.notes = []

    def attach(self, world: World) -> None:
        """Prepare rendering for `world` (its road and the rig's cameras)."""
        self._renderers = renderers_for(world, self._rig)
        self._camera_every = steps_per(1.0 / self.settings.camera_hz, world.dt_s, 'camera')

    def stamp(self, t_s: float) -> int:
        """Return the ROS stamp [ns] of episode time t_s."""
        return stamp_ns(self.settings.epoch_s, t_s)

    def observe(self, scene: Scene, step: int) -> None:
        """Feed one world step: odometry always, camera images on the camera grid."""
        self.add_ego(scene.time_s, scene.ego)
        if step % self._camera_every == 0:
            frames = encode_frames(self._renderers, scene, self.settings.jpeg_quality)
            self.add_frames(scene.time_s, frames)

    def add_ego(self, t_s: float, ego: Box) -> None:
        """Store the ego's odometry at t_s (a rejected sample is noted, as the node logs it)."""
        problem = self.buffers.add_ego(ego_state(self.stamp(t_s), ego.x, ego.y, ego.yaw,
                                                 ego.speed))
        if problem:
            self.notes.append(f't={t_s:.2f} s: {problem}')

    def add_frames(self, t_s: float, frames: Dict[str, bytes]) -> None:
        """Store JPEG images {camera_id: bytes} taken at t_s, as CompressedImage payloads."""
        stamp = self.stamp(t_s)
        for camera_id, jpeg in frames.items():
            encoded = EncodedImage(jpeg, 'jpeg', True)
            note = self.buffers.add_frame(self._names[camera_id],
                                          Frame(stamp, encoded, probe_size(encoded)))
            if note:
                self.notes.append(note)

    def plan(self, now_s: float, not_before_s: Optional[float] = None) -> PlanOutcome:
        """Run one cycle on the newest observation at world time now_s [s].

        t0 must be later than the previous cycle's t0, or at least not_before_s when given
        (the open-loop keyframes). See PlanOutcome for what comes back.
        """
        floor = self._last_t0 if not_before_s is None else self.stamp(not_before_s) - 1
        observation = self.buffers.assemble(self.stamp(now_s), floor)
        if isinstance(observation, Skip):
            return PlanOutcome(None, skip=observation.reason, detail=observation.detail)
        result = self._worker.run_cycle(observation, time.monotonic())
        self._last_t0 = observation.t0_ns
        stamps = observation.frame_stamps_ns()
        if (stamps >= 0).any():  # -1 marks filled slots
            self.buffers.release_decoded(int(stamps[stamps >= 0].min()))
        if result.error is not None:
            return PlanOutcome(None, result, 'error', result.error)
        if result.plan_index is None:
            reasons = sorted({r for v in result.verdicts for r in v.reasons})
            return PlanOutcome(None, result, 'rejected', '; '.join(reasons))
        return PlanOutcome(self._world_plan(result), result)

    def _world_plan(self, result: CycleResult) -> Plan:
        """Return the chosen sample anchored at the ego's odometry pose at t0."""
        observation, output = result.observation, result.output
        pose = observation.history.pose_t0
        t0_s = (observation.t0_ns - self.stamp(0.0)) / NS_PER_S
        return Plan(t0_s, float(pose.position[0]), float(pose.position[1]),
                    float(yaw_of(pose.rotation)), output.trajectory_xyz[result.plan_index],
                    float(output.dt))
