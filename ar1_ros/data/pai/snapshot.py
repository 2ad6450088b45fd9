"""A local copy of the PhysicalAI-AV dataset repository, read with the devkit's decoders.

The folder is the dataset repository's tree: `features.csv`, `clip_index.parquet` and per
feature `<directory>/<feature>/<feature>.chunk_NNNN.{zip,parquet}` (what `hf download
--local-dir` writes, or a Hugging Face cache `snapshots/<revision>/` folder). The devkit's
`PhysicalAIAVDatasetInterface` insists on the hub cache and a network or an offline revision;
reading the tree directly works with both layouts and never touches the network. File names
come from features.csv exactly as the devkit resolves them (`Features`).
"""
import io
import json
from pathlib import Path
from typing import List, Tuple
import zipfile

import numpy as np


class PaiError(RuntimeError):
    """The snapshot, a clip or one of its features is missing or unreadable."""


class PaiSnapshot:
    """The dataset tree at `root` (a folder with features.csv and clip_index.parquet)."""

    def __init__(self, root):
        import pandas as pd
        from physical_ai_av.dataset import Features
        self.root = Path(root)
        for name in ('features.csv', 'clip_index.parquet'):
            if not (self.root / name).is_file():
                raise PaiError(f'{self.root} is not a PhysicalAI-AV snapshot: no {name}')
        try:
            features = pd.read_csv(self.root / 'features.csv', index_col='feature')
            features['clip_files_in_zip'] = features['clip_files_in_zip'].map(
                json.loads, na_action='ignore')
            self.features = Features(features)
            self.clip_index = pd.read_parquet(self.root / 'clip_index.parquet')
        except Exception as exc:  # noqa: BLE001 - pandas/pyarrow/json faults alike
            raise PaiError(f'{self.root}: cannot read the dataset index ({exc})') from exc

    @property
    def clip_ids(self) -> List[str]:
        """Return every clip id of the index."""
        return [str(c) for c in self.clip_index.index]

    def _file(self, clip_id: str, feature: str) -> Path:
        if clip_id not in self.clip_index.index:
            raise PaiError(f'unknown clip {clip_id!r} (not in clip_index.parquet)')
        if feature not in self.features.ALL:
            raise PaiError(f'feature {feature!r} is not in features.csv')
        chunk = int(self.clip_index.at[clip_id, 'chunk'])
        path = self.root / self.features.get_chunk_feature_filename(chunk, feature)
        if not path.is_file():
            raise PaiError(f'clip {clip_id}: {feature} is not downloaded ({path} missing)')
        return path

    def _members(self, clip_id: str, feature: str, aliases) -> List[bytes]:
        path = self._file(clip_id, feature)
        names = self.features.get_clip_files_in_zip(clip_id, feature)
        try:
            with zipfile.ZipFile(path) as archive:
                return [archive.read(names[alias]) for alias in aliases]
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            raise PaiError(f'clip {clip_id}: cannot read {feature} from {path} ({exc})') from exc

    def _table(self, clip_id: str, feature: str):
        import pandas as pd
        path = self._file(clip_id, feature)
        try:
            return pd.read_parquet(path).loc[clip_id]
        except KeyError:
            raise PaiError(f'clip {clip_id}: no rows in {path}') from None
        except Exception as exc:  # noqa: BLE001
            raise PaiError(f'clip {clip_id}: cannot read {path} ({exc})') from exc

    def egomotion(self, clip_id: str):
        """Return the egomotion DataFrame (timestamp µs, x..z, qx..qw, vx..vz, ...)."""
        import pandas as pd
        (data,) = self._members(clip_id, 'egomotion', ('egomotion',))
        return pd.read_parquet(io.BytesIO(data)).sort_values('timestamp')

    def camera(self, clip_id: str, camera: str) -> Tuple[bytes, np.ndarray]:
        """Return (mp4 bytes, frame timestamps (N,) µs) of one camera."""
        import pandas as pd
        video, stamps = self._members(clip_id, camera, ('video', 'frame_timestamps'))
        try:
            timestamps = pd.read_parquet(io.BytesIO(stamps))['timestamp'].to_numpy(np.int64)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises its own types
            raise PaiError(f'clip {clip_id}: {camera} frame timestamps unreadable ({exc})') \
                from exc
        return video, timestamps

    def intrinsics(self, clip_id: str):
        """Return the devkit's CameraIntrinsics (f-theta models per camera)."""
        from physical_ai_av.calibration import CameraIntrinsics
        return CameraIntrinsics.from_intrinsics_df(self._table(clip_id, 'camera_intrinsics'))

    def extrinsics(self, clip_id: str):
        """Return the devkit's SensorExtrinsics (scipy RigidTransform per sensor)."""
        from physical_ai_av.calibration import SensorExtrinsics
        return SensorExtrinsics.from_extrinsics_df(self._table(clip_id, 'sensor_extrinsics'))
