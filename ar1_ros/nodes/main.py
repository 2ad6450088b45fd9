"""Run the `ar1_policy` node in this process: rclpy init, autostart, spin, orderly shutdown.

This is what `ar1 run` (pip world) and the launch files (`ros2 launch`, through the same `ar1`
executable) start, so both paths run the same node with the same parameter file.
"""
from typing import Optional, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn

from ar1_ros.nodes.policy_node import NODE_NAME, PolicyNode


def autostart(node: PolicyNode) -> bool:
    """Configure then activate `node`; return whether it ended up active.

    A failed configure leaves the node running unconfigured with the reason on /diagnostics,
    so the operator can fix a parameter (`ros2 param set`) and configure it again.
    """
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        return False
    return node.trigger_activate() == TransitionCallbackReturn.SUCCESS


def run_node(params_file: Optional[str], *, start: bool = True,
             ros_args: Sequence[str] = ()) -> int:
    """Run the node until shutdown (Ctrl-C, SIGTERM); return the process exit code.

    ros_args: extra ROS arguments starting with '--ros-args' (remaps, -p overrides, the node
    name from launch_ros); the parameter file is applied before them.
    """
    args = ['ar1', '--ros-args']
    if params_file:
        args += ['--params-file', str(params_file)]
    args += [a for a in ros_args if a != '--ros-args']
    rclpy.init(args=args)
    node = PolicyNode(NODE_NAME)
    # One SingleThreadedExecutor per process: the multi-threaded one stalled on our machines,
    # and inference has its own thread anyway.
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        # Ctrl-C may arrive while configure still loads the model (tens of seconds for AR1).
        if start and not autostart(node):
            node.get_logger().error('not active: see /diagnostics; fix and configure again')
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.release()
        executor.shutdown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
