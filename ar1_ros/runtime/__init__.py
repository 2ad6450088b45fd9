"""ROS-free inference runtime: stamped buffers, frame selection, ego history, backends, worker.

May import ar1_ros.model; never rclpy or message types, so it runs the same in a node, in
offline evaluation and in training-time preprocessing.
"""
