"""ROS 2 nodes: the only layer that imports rclpy and message types.

Nodes convert messages to runtime types and back; all logic lives in ar1_ros.runtime.
"""
