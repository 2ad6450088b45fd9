"""The `ar1_policy` lifecycle node: buffers in, observations to a worker, validated plans out.

configure declares and validates the parameters and loads the model; activate creates the
subscriptions, publishers, the inference worker and the cycle timer; deactivate and cleanup
release them and the model. /diagnostics is published in every state (a failed configure is a
diagnostic too), so an operator can see why the node is not planning.

Threads: one SingleThreadedExecutor runs every callback; inference runs on the worker's thread,
which hands results back through a guard condition so that publishing happens on the executor.
"""
import collections
from typing import Callable, Optional

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from ar1_ros.nodes import conversions
from ar1_ros.nodes.inputs import Inputs
from ar1_ros.nodes.outputs import Outputs
from ar1_ros.nodes.params import ConfigError, NodeConfig, build_config, declare_parameters
from ar1_ros.runtime.assembly import ClockWatch, InputBuffers
from ar1_ros.runtime.backends.base import create_backend
from ar1_ros.runtime.health import ERROR, OK, WARN, Health, Status
from ar1_ros.runtime.types import NS_PER_S, CycleResult, Skip, seconds_to_ns
from ar1_ros.runtime.worker import InferenceWorker

NODE_NAME = 'ar1_policy'


class PolicyNode(LifecycleNode):
    """Lifecycle node running AR1 (or a named test double) on camera and odometry topics."""

    def __init__(self, node_name: str = NODE_NAME, *,
                 backend_factory: Optional[Callable] = None, **kwargs):
        super().__init__(node_name, **kwargs)
        self._backend_factory = backend_factory or create_backend
        self.model_id = ''
        self._config: Optional[NodeConfig] = None
        self._backend = self._buffers = self._clock_watch = None
        self._inputs = self._outputs = self._worker = self._cycle_timer = None
        self._health = Health([], 1.0)
        self._problem = ''
        self._state_label = 'unconfigured'
        self._last_t0: Optional[int] = None
        self._min_step_ns = 0
        # deque append/popleft are atomic: the worker thread appends, the executor pops.
        self._results = collections.deque(maxlen=8)
        self._guard = self.create_guard_condition(self._drain_results)
        self._diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diagnostics_timer = self.create_timer(1.0, self.publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        # Parameters are read once, on configure: a change while configured would be silently
        # ignored, so it is refused with the way to apply it.
        changed = [p.name for p in parameters if p.name != 'use_sim_time']
        if self._config is not None and changed:
            return SetParametersResult(successful=False, reason=(
                f'{", ".join(changed)}: parameters are read on configure; deactivate and '
                'clean up the node, set them, then configure again'))
        return SetParametersResult(successful=True)

    def report(self, kind: str, detail: str) -> None:
        """Record a fault or notable event for /diagnostics and log it (throttled)."""
        self._health.record_event(kind, detail, self._now_ns())
        self.get_logger().warning(f'{kind}: {detail}', throttle_duration_sec=2.0)

    # ---- lifecycle -------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Declare and validate parameters, then load the backend (the model)."""
        try:
            config = build_config(declare_parameters(self))
        except ConfigError as exc:
            return self._configure_failed(f'parameter error: {exc}')
        try:
            backend = self._backend_factory(config.backend)
        except Exception as exc:  # noqa: BLE001 - any load failure must leave the node up
            return self._configure_failed(f'model load failed: {type(exc).__name__}: {exc}')
        self._config, self._backend, self.model_id = config, backend, backend.model_id
        selection = config.runtime.selection
        topics = [c.topic for c in config.inputs] + [config['ego_topic']]
        self._health = Health(topics, selection.max_input_age_s)
        self._buffers = InputBuffers(config.runtime)
        self._clock_watch = ClockWatch(seconds_to_ns(selection.clock_jump_back_s))
        self.destroy_timer(self._diagnostics_timer)
        self._diagnostics_timer = self.create_timer(
            1.0 / config['diagnostics_rate_hz'], self.publish_diagnostics)
        self._problem, self._state_label = '', 'inactive'
        self.get_logger().info(f'configured: backend {backend.name}, model {self.model_id}, '
                               f'cameras {list(config.runtime.camera_names)}')
        return TransitionCallbackReturn.SUCCESS

    def _configure_failed(self, problem: str) -> TransitionCallbackReturn:
        self._problem = problem
        self.get_logger().error(problem)
        self.publish_diagnostics()
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Create subscriptions, publishers, the worker and the cycle timer."""
        config = self._config
        self._outputs = Outputs(self, config)
        self._worker = InferenceWorker(self._backend, config.runtime.validator,
                                       self._on_worker_result,
                                       decode_threads=config['decode_threads'])
        self._worker.start()
        self._buffers.clear()
        self._last_t0 = None
        on_input = self._on_cycle if config['cycle_trigger'] == 'inputs' else None
        self._inputs = Inputs(self, config, self._buffers, self._health, self.report, on_input)
        self._min_step_ns = int(0.9 * NS_PER_S / config['cycle_rate_hz'])
        # With cycle_trigger 'inputs' the timer still runs: it reports stale or missing inputs
        # when no message arrives to trigger a cycle.
        self._cycle_timer = self.create_timer(1.0 / config['cycle_rate_hz'], self._on_timer)
        self._state_label = 'active'
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the timer, the worker, the subscriptions and the publishers."""
        self._stop_activity()
        # Inputs of before the pause must not mix with those after it (and hold memory).
        self._buffers.clear()
        self._state_label = 'inactive'
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the model and the buffers."""
        self._release_model()
        self._state_label = 'unconfigured'
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything, whatever the state."""
        self.release()
        self._state_label = 'finalized'
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything and go back to unconfigured."""
        self.release()
        self._state_label = 'unconfigured'
        return TransitionCallbackReturn.SUCCESS

    def release(self) -> None:
        """Stop all activity and drop the model (used on shutdown and process exit)."""
        self._stop_activity()
        self._release_model()

    def _stop_activity(self) -> None:
        if self._cycle_timer is not None:
            self.destroy_timer(self._cycle_timer)
            self._cycle_timer = None
        if self._worker is not None and not self._worker.stop(timeout=30.0):
            # The running inference outlived the timeout; its result will not be delivered.
            self.get_logger().warning('inference worker still busy after 30 s; detached')
        self._worker = None
        for part in (self._inputs, self._outputs):
            if part is not None:
                part.destroy()
        self._inputs = self._outputs = None
        self._results.clear()

    def _release_model(self) -> None:
        if self._backend is not None:
            self._backend.close()
        self._backend = self._config = self._buffers = None
        self.model_id = ''

    # ---- cycle -----------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_timer(self) -> None:
        # Skips are counted on timer ticks only: with inputs triggering cycles as well, every
        # message would otherwise count the same skip again.
        self._on_cycle(count_skips=True)

    def _on_cycle(self, count_skips: bool = False) -> None:
        now = self._now_ns()
        jump = self._clock_watch.update(now)
        if jump:
            # A bag restarted (or sim time was reset): old inputs would mix two timelines.
            self._buffers.clear()
            self._health.reset_inputs()
            self.report('clock_jump', f'{jump}; buffers cleared')
            self._last_t0 = None
        self._drop_future_inputs(now)
        # t0 must advance by the minimum step (cameras faster than cycle_rate_hz are thinned).
        floor = None if self._last_t0 is None else self._last_t0 + self._min_step_ns - 1
        observation = self._buffers.assemble(now, floor)
        if isinstance(observation, Skip):
            if count_skips and observation.reason != 'no_new_input':
                self._health.record_skip(observation)
            return
        self._last_t0 = observation.t0_ns
        if observation.filled:
            self.report('camera_filled', '; '.join(observation.filled))
        if self._worker.submit(observation):
            self._health.record_cycle('dropped')
        self._health.record_cycle('submitted')

    def _drop_future_inputs(self, now: int) -> None:
        # Messages of the old timeline still in flight after a bag restart are stamped ahead of
        # the clock; kept, they would make every new message look too old for the buffers.
        horizon = now + seconds_to_ns(self._config.runtime.selection.max_input_age_s)
        ahead = [k for k, v in self._buffers.newest_stamps().items()
                 if v is not None and v > horizon]
        if ahead and now > 0:
            self._buffers.clear()
            self.report('future_stamps', f'inputs stamped ahead of the clock: '
                        f'{", ".join(ahead)}; buffers cleared')

    def _on_worker_result(self, result: CycleResult) -> None:
        # Worker thread: hand over to the executor, which owns the publishers.
        self._results.append(result)
        self._guard.trigger()

    def _drain_results(self) -> None:
        while self._results:
            result = self._results.popleft()
            try:
                self._handle_result(result)
            except Exception as exc:  # noqa: BLE001 - a publish fault must not stop the node
                self.report('publish_failed', f'{type(exc).__name__}: {exc}')

    def _release_decoded(self, observation) -> None:
        # Later observations have later t0s: frames before this one's grid are context only.
        stamps = observation.frame_stamps_ns()
        stamps = stamps[stamps >= 0]  # -1 marks slots the fill policy filled
        if stamps.size:
            self._buffers.release_decoded(int(stamps.min()))

    def _handle_result(self, result: CycleResult) -> None:
        if self._outputs is None:
            return
        now, t0 = self._now_ns(), result.observation.t0_ns
        if result.observation.epoch != self._buffers.epoch:
            self.report('stale_result', 'clock jumped during inference')
            return
        age_s = (now - t0) / NS_PER_S
        if age_s > self._config['output.max_result_age_s']:
            self._health.record_cycle('stale_results')
            self.report('stale_result', f't0 is {age_s:.2f} s old when inference ended')
            return
        self._health.record_result(result)
        self._release_decoded(result.observation)
        if result.output is None:
            self.report('cycle_failed', result.error or 'unknown')
            return
        if result.plan_index is None:
            reasons = '; '.join(r for v in result.verdicts for r in v.reasons[:1])
            self.report('plan_rejected', reasons)
            self._outputs.publish_rejected(result)
            return
        self._outputs.publish_plan(result)
        self._health.record_cycle('published')

    # ---- diagnostics -----------------------------------------------------------------------

    def publish_diagnostics(self) -> None:
        """Publish the node's statuses on /diagnostics."""
        now = self._now_ns()
        statuses = [self._node_status()]
        if self._config is not None:
            statuses += self._health.statuses(now)
        self._diagnostics.publish(conversions.diagnostic_array(
            statuses, conversions.ns_to_stamp(now), self.get_name(), self.model_id or 'none'))
        if self._outputs is not None:
            self._outputs.publish_status(statuses, now)

    def _node_status(self) -> Status:
        values = {'state': self._state_label, 'model_id': self.model_id}
        if self._problem:
            return Status('node', ERROR, self._problem, values)
        if self._backend is not None and 'test double' in self._backend.name:
            return Status('node', WARN, f'{self._state_label}; FAKE BACKEND (test double), '
                          'not a driving policy', values)
        return Status('node', OK, self._state_label, values)
