"""The demo world: highway-env scenarios, an expert with privileged CoC labels, camera renders.

No ROS here: bags are written through ar1_ros.data, the closed loop lives in evaluation.
"""
