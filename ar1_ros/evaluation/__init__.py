"""Offline evaluation of AR1 on recorded bags: the node's runtime without DDS, metrics, reports.

No ROS here: ROS message output is injected by the caller (ar1_ros.nodes.bag_outputs).
"""
