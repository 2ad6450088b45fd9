"""Drive the policy node over real DDS: a feeder, a listener and (optionally) the node itself.

The harness owns one rclpy context and one SingleThreadedExecutor spinning on a thread. With sim
time the harness is the clock: `drive()` publishes /clock, odometry at 50 Hz and cameras at
10 Hz on a simulated timeline, so cycles happen at known stamps whatever the machine's load.
"""
import collections
import os
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Path
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from ros.synthetic import NS, Feeder, camera_overrides
from std_msgs.msg import String
from visualization_msgs.msg import MarkerArray

from ar1_ros.msg import Reasoning, Trajectory

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, 'config', 'ar1.yaml')
OUTPUTS = {'trajectory': Trajectory, 'trajectory_samples': Trajectory,
           'rejected_trajectory': Trajectory, 'path': Path, 'reasoning': Reasoning,
           'reasoning_text': String, 'markers': MarkerArray, 'trajectory_odom': Trajectory,
           'path_odom': Path, 'diagnostics_markers': MarkerArray}


def stamp_ns(msg) -> int:
    """Return a message's header stamp in ns, with the node's own conversion."""
    from ar1_ros.runtime.messages import stamp_to_ns
    return stamp_to_ns(msg.header.stamp)


def fake_overrides(**extra) -> dict:
    values = camera_overrides()
    values.update({'backend.kind': 'fake', 'backend.device': 'cpu', 'backend.dtype': 'float32',
                   'diagnostics_rate_hz': 5.0})
    values.update(extra)
    return values


class Harness:
    """Feeder + listener (+ the node in-process when `overrides` is given)."""

    def __init__(self, overrides=None, sim_time=True, compressed=True, size=(72, 128),
                 node_name='ar1_policy', backend_factory=None, feed=True, listen=True):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, args=['--ros-args', '--params-file', CONFIG])
        self.node = None
        if overrides is not None:
            from ar1_ros.nodes.policy_node import PolicyNode
            overrides = dict(overrides, use_sim_time=sim_time)
            self.node = PolicyNode(
                node_name, context=self.context, backend_factory=backend_factory,
                parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
        self.io = rclpy.create_node('ar1_test_feeder' if feed else 'ar1_test_listener',
                                    context=self.context)
        self.feeder = None
        if feed:
            self.feeder = Feeder(self.io, compressed=compressed, size=size,
                                 publish_clock=sim_time)
        self.received = collections.defaultdict(list)
        self._lock = threading.Lock()
        if listen:
            self._listen(node_name)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.io)
        if self.node is not None:
            self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()
        self.sim_ns = 1000 * NS
        self.frame = 0

    def _listen(self, node_name):
        for name, msg_type in OUTPUTS.items():
            self.io.create_subscription(msg_type, f'/{node_name}/{name}',
                                        lambda m, n=name: self._store(n, m), 50)
        self.io.create_subscription(DiagnosticArray, '/diagnostics',
                                    lambda m: self._store('diagnostics', m), 50)

    def _store(self, name, msg):
        with self._lock:
            self.received[name].append(msg)

    def take(self, name):
        with self._lock:
            return list(self.received[name])

    def clear(self):
        with self._lock:
            self.received.clear()

    def drive(self, seconds, speedup=2.0, cameras=True):
        """Advance sim time by `seconds` in 10 ms steps, publishing clock, odometry, cameras."""
        steps = int(round(seconds * 100))
        for _ in range(steps):
            self.sim_ns += 10_000_000
            step = self.sim_ns // 10_000_000
            if self.feeder.clock is not None:
                self.feeder.publish_clock(self.sim_ns)
            if step % 2 == 0:
                self.feeder.publish_odometry(self.sim_ns)
            if cameras and step % 10 == 0:
                self.frame += 1
                self.feeder.publish_cameras(self.sim_ns, self.frame)
            time.sleep(0.01 / speedup)

    def wait_for(self, predicate, timeout=10.0):
        """Poll `predicate()` until true or `timeout` s pass; return its last value."""
        end = time.monotonic() + timeout
        value = predicate()
        while not value and time.monotonic() < end:
            time.sleep(0.05)
            value = predicate()
        return value

    def settle(self, quiet=0.5, timeout=15.0):
        """Wait until no plan output has arrived for `quiet` s (results still in flight land)."""
        def count():
            with self._lock:
                return sum(len(v) for k, v in self.received.items() if k != 'diagnostics')
        end = time.monotonic() + timeout
        last = count()
        while time.monotonic() < end:
            time.sleep(quiet)
            now = count()
            if now == last:
                return True
            last = now
        return False

    def diagnostics(self, name_suffix):
        """Return every received DiagnosticStatus whose name ends with `name_suffix`."""
        return [s for array in self.take('diagnostics') for s in array.status
                if s.name.endswith(name_suffix)]

    def close(self):
        # Stop spinning first: releasing the node while a result is being published would
        # destroy a publisher under the executor's feet.
        self.executor.shutdown()
        self._thread.join(timeout=5)
        if self.node is not None:
            self.node.release()
            self.node.destroy_node()
        self.io.destroy_node()
        rclpy.shutdown(context=self.context)
