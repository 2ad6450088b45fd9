"""Recorded data to samples: rosbag reading, dataset conversion and building.

Reuses ar1_ros.model and ar1_ros.runtime so train-time and run-time preprocessing are one code.
"""
