"""Training from recorded bags: SFT (cross-entropy + flow matching), GRPO, distributed runs.

Reuses ar1_ros.model, ar1_ros.runtime and ar1_ros.data; never ROS.
"""
