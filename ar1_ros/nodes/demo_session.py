"""A bag replayed through the policy node over real DDS, with the node's outputs recorded.

Three processes, as on a vehicle replaying a recording: `ar1 run` (the lifecycle policy node,
sim time), `ar1 replay` (the bag with /clock) and this one, which records the node's outputs
into a bag (nodes.recorder). Nothing is called in-process: what is recorded is what the node
published on DDS.
"""
import dataclasses
import os
from pathlib import Path
import signal
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

from diagnostic_msgs.msg import DiagnosticArray
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from ar1_ros.data.bags import BagWriter
from ar1_ros.msg import Reasoning, Trajectory
from ar1_ros.nodes.policy_node import NODE_NAME
from ar1_ros.nodes.recorder import TopicRecorder

OUTPUT_TOPICS = {f'/{NODE_NAME}/trajectory': Trajectory, f'/{NODE_NAME}/reasoning': Reasoning,
                 f'/{NODE_NAME}/overlay': Image, '/diagnostics': DiagnosticArray}


class SessionError(RuntimeError):
    """The node or the replay failed; the message says which and quotes its log."""


@dataclasses.dataclass(frozen=True)
class SessionSettings:
    """Timeouts [s]: node activation (model load), replay, quiet time after the replay."""

    rate: float = 1.0
    activate_timeout_s: float = 180.0
    replay_timeout_s: float = 600.0
    settle_s: float = 2.0


def ar1_command(*args: str) -> List[str]:
    """Return the command line of `ar1 ARGS` (no PATH lookup).

    The `ar1` script of this interpreter's environment, else this interpreter running the
    package's entry point.
    """
    script = Path(sys.executable).parent / 'ar1'
    if script.is_file():
        return [str(script), *args]
    return [sys.executable, '-c', 'import sys; from ar1_ros.cli import main; sys.exit(main())',
            *args]


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors='replace')[-chars:] if path.is_file() else '(no log)'


class _Session:
    """The recorder node, its executor and the child processes of one session."""

    def __init__(self, out_bag: Path, logs: Path, watch_topic: str):
        self.logs, self.watch_topic = logs, watch_topic
        self.recorder = TopicRecorder(BagWriter(out_bag, overwrite=True), OUTPUT_TOPICS)
        self.recorder.set_parameters([Parameter('use_sim_time', value=True)])
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.recorder)
        self.children: Dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: List[str]) -> subprocess.Popen:
        log = open(self.logs / f'{name}.log', 'w')  # noqa: SIM115 - lives as long as the child
        self.children[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        return self.children[name]

    def spin_until(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            node = self.children.get('node')
            if node is not None and node.poll() is not None:
                raise SessionError(f'the node exited ({node.returncode}) while {what}:\n'
                                   + _tail(self.logs / 'node.log'))
            if time.monotonic() > deadline:
                raise SessionError(f'timed out after {timeout_s:.0f} s {what}')
            self.executor.spin_once(timeout_sec=0.05)

    def settle(self, quiet_s: float) -> None:
        """Spin until no message has arrived for quiet_s (the node's last cycles land)."""
        last, seen = time.monotonic(), sum(self.recorder.counts.values())
        while time.monotonic() - last < quiet_s:
            self.executor.spin_once(timeout_sec=0.05)
            total = sum(self.recorder.counts.values())
            if total != seen:
                last, seen = time.monotonic(), total

    def close(self) -> None:
        for child in reversed(list(self.children.values())):
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        self.recorder.close()
        self.executor.shutdown()
        self.recorder.destroy_node()


def replay_through_node(bag: Path, params: Path, out_bag: Path, logs: Path,
                        watch_topic: str, settings: SessionSettings = SessionSettings()
                        ) -> Dict[str, int]:
    """Run the node on `params`, replay `bag` to it, record its outputs into `out_bag`.

    watch_topic: an input topic of the node; its subscription appearing means the node is
    active (model loaded). Returns the messages recorded per topic. Raises SessionError.
    """
    logs.mkdir(parents=True, exist_ok=True)
    rclpy.init(args=['ar1_demo'])
    session = None
    try:
        session = _Session(out_bag, logs, watch_topic)
        session.start('node', ar1_command('run', '--params', str(params), '--ros-args', '-p',
                                          'use_sim_time:=true'))
        session.spin_until(lambda: session.recorder.count_subscribers(watch_topic) > 0,
                           settings.activate_timeout_s, 'waiting for the node to activate')
        replay = session.start('replay', ar1_command('replay', str(bag), '--rate',
                                                     str(settings.rate), '--wait-for', watch_topic,
                                                     '--delay', '1.0'))
        session.spin_until(lambda: replay.poll() is not None, settings.replay_timeout_s,
                           'replaying the bag')
        if replay.returncode != 0:
            raise SessionError(f'ar1 replay exited {replay.returncode}:\n'
                               + _tail(logs / 'replay.log'))
        session.settle(settings.settle_s)
        return dict(session.recorder.counts)
    finally:
        if session is not None:
            session.close()
        if rclpy.ok():
            rclpy.shutdown()


def isolated_environment() -> Optional[str]:
    """Keep the demo's DDS traffic on this machine, in a domain of its own unless one is set.

    Returns the ROS_DOMAIN_ID in use (children inherit the environment).
    """
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    # 1..100: inside the range every DDS vendor maps to valid ports (0 is everyone's default).
    os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))
    return os.environ['ROS_DOMAIN_ID']
