"""The AR1 network: checkpoint loading, backbone, expert, action space, tokens, sampling.

Imports torch, transformers and the numeric stack only; never ROS, never another ar1_ros layer.
"""
