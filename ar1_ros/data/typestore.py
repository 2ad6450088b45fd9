"""The `rosbags` type store of ar1_ros: ROS 2 Kilted's standard types plus ar1_ros/msg/*.

The .msg files are read from the package's share folder of a colcon or pip-world install
(found through AMENT_PREFIX_PATH, without importing ROS) or from the source checkout, so bags we
write carry the same definitions (and RIHS01 hashes) as the generated rclpy types.
"""
import functools
import os
from pathlib import Path
from typing import List

from rosbags.typesys import Stores, get_types_from_msg, get_typestore

PACKAGE = 'ar1_ros'
# Nested types first: registering a type needs the types it uses.
MESSAGES = ('StageLatency', 'TrajectoryPoint', 'Trajectory', 'Reasoning')


def msg_dirs() -> List[Path]:
    """Return the candidate folders holding ar1_ros's .msg files, most specific first."""
    dirs = [Path(prefix) / 'share' / PACKAGE / 'msg'
            for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if prefix]
    dirs.append(Path(__file__).resolve().parents[2] / 'msg')  # the source checkout
    return dirs


def _msg_dir() -> Path:
    for folder in msg_dirs():
        if all((folder / f'{name}.msg').is_file() for name in MESSAGES):
            return folder
    raise FileNotFoundError(f'ar1_ros .msg files not found in any of '
                            f'{[str(d) for d in msg_dirs()]}')


@functools.lru_cache(maxsize=1)
def _ar1_types() -> dict:
    folder = _msg_dir()
    types = {}
    for name in MESSAGES:
        text = (folder / f'{name}.msg').read_text()
        types.update(get_types_from_msg(text, f'{PACKAGE}/msg/{name}'))
    return types


def ar1_typestore():
    """Return a new Typestore with the ROS 2 Kilted types and ar1_ros's messages."""
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(_ar1_types())
    return store
