"""The AR1 network: checkpoint loading, backbone, expert, action space, tokens, sampling.

Imports torch, transformers and the numeric stack only; never ROS, never another ar1_ros layer.
The public entry point is `AR1Model` (see api.py).
"""
from ar1_ros.model.api import AR1Model
from ar1_ros.model.config import CheckpointError
from ar1_ros.model.prediction import Prediction

__all__ = ['AR1Model', 'CheckpointError', 'Prediction']
