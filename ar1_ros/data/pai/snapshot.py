"""A local copy of the PhysicalAI-AV dataset repository, read with the devkit's decoders.

Two layouts are accepted, both offline:
- a dataset tree: `features.csv`, `clip_index.parquet`, `metadata/`, and per feature
  `<directory>/<feature>/<feature>.chunk_NNNN.{zip,parquet}` (what `hf download --local-dir`
  writes, or one `snapshots/<commit>/` folder of the hub cache);
- a Hugging Face hub cache (`HF_HUB_CACHE`, or its `datasets--nvidia--PhysicalAI-Autonomous-
  Vehicles` folder): the snapshot of `revision` (a commit, or a ref such as `main` resolved
  through `refs/`), by default `refs/main` or the only snapshot there is.

Why not `PhysicalAIAVDatasetInterface` itself (devkit 0.2.3): it finds files only in the hub
cache (`local_dir` is just a download target, so a `--local-dir` tree fails offline on
features.csv), it calls the hub unless HF_HUB_OFFLINE=1 was set before huggingface_hub was
imported, and its video reader returns every requested frame in one array (a 20 s 1080p camera
is 3.7 GB). So the tree is read directly, with the devkit's own pieces: `Features` resolves the
chunk and zip member names from features.csv exactly as the interface does, and
`CameraIntrinsics` / `SensorExtrinsics` decode the calibration. The tests check that the
interface and this reader see the same data in a synthetic snapshot.
"""
import io
import json
from pathlib import Path
import re
from typing import List, Optional, Tuple
import zipfile

import numpy as np

REPO_FOLDER = 'datasets--nvidia--PhysicalAI-Autonomous-Vehicles'
EGOMOTION_COLUMNS = ('timestamp', 'x', 'y', 'z', 'qx', 'qy', 'qz', 'qw', 'vx', 'vy', 'vz')
PRESENCE_FILES = ('metadata/feature_presence.parquet', 'metadata/sensor_presence.parquet')


class PaiError(RuntimeError):
    """The snapshot, a clip or one of its features is missing or unreadable."""


def _snapshot_of_cache(repo: Path, revision: Optional[str]) -> Path:
    """Return `repo/snapshots/<commit>` for a revision (commit or ref), or the default one."""
    snapshots = repo / 'snapshots'
    available = sorted(p.name for p in snapshots.iterdir()) if snapshots.is_dir() else []
    wanted = revision or ('main' if (repo / 'refs' / 'main').is_file() else None)
    if wanted is None:
        if len(available) != 1:
            raise PaiError(f'{repo} holds {len(available)} snapshots {available}: choose one '
                           f'with --revision')
        wanted = available[0]
    ref = repo / 'refs' / wanted
    commit = ref.read_text().strip() if ref.is_file() else wanted
    if not re.fullmatch(r'[0-9a-f]{40}', commit) or commit not in available:
        raise PaiError(f'{repo}: no snapshot for revision {wanted!r} (snapshots: '
                       f'{available or "none"}; refs: '
                       f'{sorted(p.name for p in (repo / "refs").glob("*")) or "none"})')
    return snapshots / commit


def resolve_root(path, revision: Optional[str] = None) -> Path:
    """Return the dataset tree (the folder with features.csv) that `path` designates."""
    path = Path(path)
    if not path.is_dir():
        raise PaiError(f'dataset folder {path} does not exist')
    for repo in (path, path / REPO_FOLDER):
        if (repo / 'snapshots').is_dir():
            return _snapshot_of_cache(repo, revision)
    if (path / 'features.csv').is_file():
        if revision is not None:
            raise PaiError(f'{path} is a dataset tree, not a hub cache: --revision does not '
                           f'apply (its revision is the one it was downloaded at)')
        return path
    raise PaiError(f'{path} is not a PhysicalAI-AV snapshot: no features.csv and no hub cache '
                   f'({REPO_FOLDER}/snapshots)')


class PaiSnapshot:
    """The dataset at `path` (a tree or a hub cache; see the module docstring)."""

    def __init__(self, path, revision: Optional[str] = None):
        import pandas as pd
        from physical_ai_av.dataset import Features
        self.root = resolve_root(path, revision)
        if not (self.root / 'clip_index.parquet').is_file():
            raise PaiError(f'{self.root} is not a PhysicalAI-AV snapshot: no clip_index.parquet')
        try:
            features = pd.read_csv(self.root / 'features.csv', index_col='feature')
            features['clip_files_in_zip'] = features['clip_files_in_zip'].map(
                json.loads, na_action='ignore')
            self.features = Features(features)
            self.clip_index = pd.read_parquet(self.root / 'clip_index.parquet')
            self.presence = next((pd.read_parquet(self.root / name) for name in PRESENCE_FILES
                                  if (self.root / name).is_file()), None)
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
        presence = self.presence
        if (presence is not None and feature in presence.columns
                and clip_id in presence.index and not bool(presence.at[clip_id, feature])):
            raise PaiError(f'clip {clip_id} has no {feature} (metadata feature presence)')
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
        """Return the egomotion DataFrame sorted by time (timestamp µs, x..z, qx..qw, vx..vz)."""
        import pandas as pd
        (data,) = self._members(clip_id, 'egomotion', ('egomotion',))
        try:
            df = pd.read_parquet(io.BytesIO(data))
        except Exception as exc:  # noqa: BLE001 - pyarrow raises its own types
            raise PaiError(f'clip {clip_id}: egomotion unreadable ({exc})') from exc
        missing = [c for c in EGOMOTION_COLUMNS if c not in df.columns]
        if missing or len(df) < 2:
            raise PaiError(f'clip {clip_id}: egomotion needs >= 2 samples with columns '
                           f'{list(EGOMOTION_COLUMNS)}; missing {missing}, {len(df)} rows')
        df = df.sort_values('timestamp')
        values = df[list(EGOMOTION_COLUMNS)].to_numpy(np.float64)
        if not np.all(np.isfinite(values)) or np.any(np.diff(df['timestamp']) <= 0):
            raise PaiError(f'clip {clip_id}: egomotion has non-finite values or repeated '
                           f'timestamps')
        return df

    def camera(self, clip_id: str, camera: str) -> Tuple[bytes, np.ndarray]:
        """Return (mp4 bytes, frame timestamps (N,) µs, strictly increasing) of one camera."""
        import pandas as pd
        video, stamps = self._members(clip_id, camera, ('video', 'frame_timestamps'))
        try:
            timestamps = pd.read_parquet(io.BytesIO(stamps))['timestamp'].to_numpy(np.int64)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises its own types
            raise PaiError(f'clip {clip_id}: {camera} frame timestamps unreadable ({exc})') \
                from exc
        if len(timestamps) == 0 or np.any(np.diff(timestamps) <= 0):
            raise PaiError(f'clip {clip_id}: {camera} frame timestamps are empty or not '
                           f'strictly increasing')
        return video, timestamps

    def intrinsics(self, clip_id: str):
        """Return the devkit's CameraIntrinsics (f-theta models per camera)."""
        from physical_ai_av.calibration import CameraIntrinsics
        return CameraIntrinsics.from_intrinsics_df(self._table(clip_id, 'camera_intrinsics'))

    def extrinsics(self, clip_id: str):
        """Return the devkit's SensorExtrinsics (scipy RigidTransform per sensor)."""
        from physical_ai_av.calibration import SensorExtrinsics
        return SensorExtrinsics.from_extrinsics_df(self._table(clip_id, 'sensor_extrinsics'))
