"""NVIDIA PhysicalAI-AV clips (the `physical-ai-av` devkit's layout) to rosbag2 MCAP bags."""
