"""Describe the ROS 2 side of this environment for `ar1 doctor` (rclpy, RMW, our messages)."""
from typing import List, Tuple


def describe_ros() -> List[Tuple[str, bool, str]]:
    """Return (name, ok, detail) for rclpy, the RMW implementation and ar1_ros.msg.

    Every import happens here, inside a function, so a missing or broken ROS install becomes a
    failed check with the reason instead of an exception.
    """
    results: List[Tuple[str, bool, str]] = []
    try:
        import rclpy
        from rclpy.utilities import get_rmw_implementation_identifier
    except ImportError as exc:
        return [('rclpy', False, f'cannot import: {exc}')]
    results.append(('rclpy', True, rclpy.__file__))
    try:
        results.append(('rmw', True, get_rmw_implementation_identifier()))
    except Exception as exc:  # noqa: BLE001 - any failure here is what the report is for
        results.append(('rmw', False, f'no RMW implementation: {exc}'))
    try:
        from ar1_ros.msg import Trajectory
        results.append(('ar1_ros.msg', True, Trajectory.__module__))
    except ImportError as exc:
        results.append(('ar1_ros.msg', False, f'messages not built ({exc}); run make msgs'))
    return results
