"""Shared inputs of the labelling tests: demo-world bags and a random-weight tiny teacher VLM.

Both are built once per test session under pytest's base temp folder: sim.generate reuses the
episodes a folder already holds (same settings and rig), so test modules asking for the same
episodes share them. The rig is tiny (64x32 px): labels depend on the odometry only, and the
teacher test needs pictures, not good ones.
"""
from pathlib import Path
import shutil
from typing import Sequence

from model.golden import BASE_VLM
import torch

from ar1_ros.cli.eval import default_params
from ar1_ros.cli.eval_session import topic_map
from ar1_ros.data.labelling import LabelSettings
from ar1_ros.nodes.params_file import load_config
from ar1_ros.sim.generate import generate
from ar1_ros.sim.rig import default_rig

WORLD_RIG = default_rig(width=64, height=32)


def demo_world(tmp_path_factory, scenarios: Sequence[str], seeds: Sequence[int]) -> Path:
    """Return the shared demo-world folder holding (at least) these episodes and labels.jsonl."""
    out = tmp_path_factory.getbasetemp() / 'label_demo_world'
    generate(scenarios, seeds, out, WORLD_RIG)
    return out


def label_settings(uniform_s: float = 0.0) -> LabelSettings:
    """Return the settings `ar1 label` uses with the package's config/ar1.yaml (demo topics)."""
    config = load_config(default_params(), {})
    return LabelSettings(topic_map(config), config.runtime, uniform_s=uniform_s)


def tiny_teacher(tmp_path_factory) -> Path:
    """Return a Qwen3-VL folder: the golden tiny base VLM's files plus seeded random weights."""
    folder = tmp_path_factory.getbasetemp() / 'tiny_teacher'
    if (folder / 'model.safetensors').is_file():
        return folder
    from transformers import AutoConfig, Qwen3VLForConditionalGeneration
    shutil.copytree(BASE_VLM, folder, dirs_exist_ok=True)
    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = Qwen3VLForConditionalGeneration._from_config(config)
    model.save_pretrained(str(folder))  # safetensors: transformers' only format here
    return folder
