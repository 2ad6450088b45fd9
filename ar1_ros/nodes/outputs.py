"""The policy node's publishers and how a validated cycle result becomes messages.

Every output is stamped with t0, the time of the newest input the plan was computed from, never
with the publish time: consumers see how stale a plan is. Only a sample that passed the safety
gate is published as the plan; a cycle whose samples were all rejected goes to the
`~/rejected_trajectory` debug topic and to diagnostics, never to `~/trajectory` or `~/path`.
"""
from typing import Optional, Set, Tuple

from nav_msgs.msg import Path
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String
from visualization_msgs.msg import MarkerArray

from ar1_ros.msg import Reasoning, Trajectory
from ar1_ros.nodes import conversions, markers
from ar1_ros.runtime.overlay import draw_overlay
from ar1_ros.runtime.presentation import parse_decision, point_states, to_parent_frame, wrap_text
from ar1_ros.runtime.types import CycleResult

OUTPUT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class Outputs:
    """Publishers of one active period of the node (created on activate, destroyed after)."""

    def __init__(self, node, config):
        self._node, self._config = node, config
        self._marker_keys: Set[Tuple[str, int]] = set()
        create = node.create_publisher
        self.trajectory = create(Trajectory, '~/trajectory', OUTPUT_QOS)
        self.samples = create(Trajectory, '~/trajectory_samples', OUTPUT_QOS)
        self.rejected = create(Trajectory, '~/rejected_trajectory', OUTPUT_QOS)
        self.path = create(Path, '~/path', OUTPUT_QOS)
        self.reasoning = create(Reasoning, '~/reasoning', OUTPUT_QOS)
        self.reasoning_text = create(String, '~/reasoning_text', OUTPUT_QOS)
        self.markers = create(MarkerArray, '~/markers', OUTPUT_QOS)
        self.status_markers = create(MarkerArray, '~/diagnostics_markers', OUTPUT_QOS)
        self.overlay = create(Image, '~/overlay', OUTPUT_QOS) if config['output.overlay'] else None
        self.odom_trajectory = self.odom_path = None
        if config['output.odom_copy']:
            self.odom_trajectory = create(Trajectory, '~/trajectory_odom', OUTPUT_QOS)
            self.odom_path = create(Path, '~/path_odom', OUTPUT_QOS)

    def destroy(self) -> None:
        """Destroy every publisher (deactivate)."""
        for publisher in (self.trajectory, self.samples, self.rejected, self.path,
                          self.reasoning, self.reasoning_text, self.markers,
                          self.status_markers, self.overlay,
                          self.odom_trajectory, self.odom_path):
            if publisher is not None:
                self._node.destroy_publisher(publisher)

    def _header(self, t0_ns: int, frame_id: Optional[str] = None) -> Header:
        return Header(stamp=conversions.ns_to_stamp(t0_ns),
                      frame_id=frame_id or self._config['output.frame_id'])

    def _trajectory(self, result: CycleResult, sample: int, header: Header,
                    xyz=None, rot=None) -> Trajectory:
        """Return sample `sample` as a Trajectory; xyz/rot replace its points (another frame)."""
        out, history = result.output, result.observation.history
        if xyz is None:
            xyz, rot = out.trajectory_xyz[sample], out.trajectory_rot[sample]
        # Speeds, accelerations and curvatures do not depend on the frame; yaw comes from rot.
        states = point_states(xyz, rot, out.actions[sample], history.speed, out.dt)
        return conversions.trajectory_msg(header, xyz, states, sample, len(out.reasoning),
                                          self._node.model_id, out.dt)

    def publish_status(self, statuses, stamp_ns: int) -> None:
        """Publish the diagnostic statuses as a text marker next to the plan."""
        lines = [f'{s.name}: {s.message}' for s in statuses]
        level = max((s.level for s in statuses), default=0)
        self.status_markers.publish(markers.status_markers(self._header(stamp_ns), lines, level))

    def publish_rejected(self, result: CycleResult) -> None:
        """Publish every rejected sample on the debug topic (not a plan)."""
        header = self._header(result.observation.t0_ns)
        for sample in range(len(result.verdicts)):
            self.rejected.publish(self._trajectory(result, sample, header))

    def publish_plan(self, result: CycleResult) -> None:
        """Publish the plan (result.plan_index) and everything derived from it."""
        out, obs, plan = result.output, result.observation, result.plan_index
        header = self._header(obs.t0_ns)
        trajectory = self._trajectory(result, plan, header)
        self.trajectory.publish(trajectory)
        self.path.publish(conversions.path_msg(header, out.trajectory_xyz[plan],
                                               out.trajectory_rot[plan]))
        for sample, verdict in enumerate(result.verdicts):
            if verdict.ok:
                self.samples.publish(trajectory if sample == plan else
                                     self._trajectory(result, sample, header))
        text = out.reasoning[plan]
        self.reasoning.publish(conversions.reasoning_msg(
            header, text, parse_decision(text), int(out.token_counts[plan]), result.timings,
            plan, len(out.reasoning), self._node.model_id))
        self.reasoning_text.publish(String(data=text))
        self._publish_markers(result, header, text)
        if self.odom_trajectory is not None:
            self._publish_odom(result)
        if self.overlay is not None:
            self._publish_overlay(result, text)

    def _publish_markers(self, result: CycleResult, header: Header, text: str) -> None:
        config = self._config
        valid = [i for i, v in enumerate(result.verdicts) if v.ok]
        xyz = result.output.trajectory_xyz[valid]
        lifetime = conversions.seconds_to_duration(config['output.max_result_age_s'])
        array = markers.plan_markers(
            header, xyz, valid.index(result.plan_index),
            wrap_text(text, config['output.text_width'], config['output.text_lines']),
            config['output.marker_line_width'], config['output.marker_z_offset'], lifetime,
            self._marker_keys)
        self._marker_keys = markers.marker_keys(array)
        self.markers.publish(array)

    def _publish_odom(self, result: CycleResult) -> None:
        history, plan = result.observation.history, result.plan_index
        header = self._header(result.observation.t0_ns, history.frame_id)
        xyz, rot = to_parent_frame(result.output.trajectory_xyz[plan],
                                   result.output.trajectory_rot[plan], history.pose_t0)
        self.odom_trajectory.publish(self._trajectory(result, plan, header, xyz, rot))
        self.odom_path.publish(conversions.path_msg(header, xyz, rot))

    def _publish_overlay(self, result: CycleResult, text: str) -> None:
        name = self._config['output.overlay_camera']
        obs = result.observation
        frame = obs.frames[obs.camera_names.index(name)][-1]
        spec = self._config.runtime.camera(name)
        lines = wrap_text(text, self._config['output.text_width'],
                          self._config['output.text_lines'])
        rgb = draw_overlay(frame.rgb(), result.output.trajectory_xyz[result.plan_index], spec,
                           lines)
        self.overlay.publish(conversions.rgb_to_image(rgb, self._header(obs.t0_ns)))

