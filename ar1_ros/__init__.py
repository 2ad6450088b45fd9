"""ar1_ros: NVIDIA Alpamayo-R1 (AR1) as ROS 2 nodes, rosbag tools and a training entry point.

Importing this package imports nothing heavy (no torch, no rclpy): each layer is imported on
its own. Layers and what they may import (enforced by test/test_layering.py):

    model     torch / transformers only            - the AR1 network, checkpoints, tokens
    runtime   model, no rclpy                      - buffers, synchronisation, backends, worker
    nodes     runtime, model, rclpy, message types - the only ROS layer
    data      model, runtime                       - bags and datasets to samples
    training  model, runtime, data                 - SFT, GRPO, distributed training
    sim       model, runtime, data                 - the demo world: scenarios, renders, bags
    cli       everything, lazily                   - the `ar1` command
"""
from pkgutil import extend_path

# The generated messages (ar1_ros.msg) may live in another folder named ar1_ros on sys.path:
# in the pip world they are installed into the virtual environment while this package is an
# editable checkout (scripts/build_msgs.sh). Extending __path__ makes both one package.
__path__ = extend_path(__path__, __name__)

__version__ = '0.1.0'
