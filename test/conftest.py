"""Test-wide settings: DDS stays on this host, on a domain of its own; no network for models."""
import os
import random

# Set before any test imports rclpy: FastDDS would otherwise multicast discovery on eth0, and
# parallel CI runs on one host would see each other's topics (environment.md §1.3).
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
