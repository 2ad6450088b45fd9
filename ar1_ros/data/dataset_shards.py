"""Training shards: samples written as safetensors + JSON sidecars, and read back lazily.

A dataset folder holds `dataset.json` (the index, written by data.dataset_build) and
`shards/<bag>-<NNNNN>.safetensors` with a `.json` sidecar each. Per sample i of a shard the
tensors are `<iiiii>.history_xyz` (16, 3) f32, `.history_rot` (16, 3, 3) f32, `.future_xyz`
(64, 3) f32, `.future_rot` (64, 3, 3) f32, `.frame_stamps_ns` (C, F) int64 (-1: a slot the
'black' policy filled) and `.image.<c>.<f>` the recorded payload (1-D uint8: the JPEG/PNG bytes
or the raw rows, exactly as in the bag); the sidecar holds t0_ns, bag, kind, camera names, per
frame encoding/compressed/width/height/step/size, fill notes and the label. Images are decoded
at read time by runtime.images, the node's own decoder. No pickle anywhere.
"""
import collections
import dataclasses
import json
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from ar1_ros.data.labels import CocLabel, LabelError, parse_label
from ar1_ros.runtime.images import EncodedImage, Frame, ImageError, stack_frames

FORMAT_VERSION = 1
INDEX_NAME = 'dataset.json'
SHARD_DIR = 'shards'
# Open shard files kept per process; a DataLoader worker opens its own.
_OPEN_SHARDS = 8


class DatasetError(ValueError):
    """A dataset folder that cannot be read: missing, incomplete or corrupt; says which file."""


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) and move tmp onto `path`, so `path` is the old or the new file, whole."""
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: Path, obj) -> None:
    """Write `obj` as indented JSON, atomically."""
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=1) + '\n'))


@dataclasses.dataclass
class SampleRecord:
    """A sample about to be written: an Observation's frames plus history and future.

    frames: per camera (model order) the selected runtime.images.Frame objects, oldest first.
    history_xyz (16, 3), history_rot (16, 3, 3), future_xyz (64, 3), future_rot (64, 3, 3):
    the t0 ego frame. filled: the missing-camera policy's notes.
    """

    bag: str
    t0_ns: int
    kind: str
    camera_names: Tuple[str, ...]
    frames: Tuple[Tuple[Frame, ...], ...]
    history_xyz: np.ndarray
    history_rot: np.ndarray
    future_xyz: np.ndarray
    future_rot: np.ndarray
    filled: Tuple[str, ...] = ()


def _frame_payload(frame: Frame) -> Tuple[np.ndarray, dict]:
    """Return (1-D uint8 payload, sidecar entry) of one selected frame."""
    encoded = frame.encoded
    if encoded is None:
        # Filled by the 'black' policy: no recorded bytes exist, so the pixels are stored as a
        # raw rgb8 image (decoding it is the identity).
        rgb = np.ascontiguousarray(frame.rgb())
        height, width = rgb.shape[:2]
        encoded = EncodedImage(rgb.reshape(-1), 'rgb8', False, width, height, 3 * width)
    # A copy: the message buffer behind the view is not ours to keep.
    payload = np.frombuffer(bytes(memoryview(encoded.data)), dtype=np.uint8)
    meta = {'encoding': encoded.encoding, 'compressed': bool(encoded.compressed),
            'width': int(encoded.width), 'height': int(encoded.height),
            'step': int(encoded.step), 'size': list(frame.size)}
    return payload, meta


class ShardWriter:
    """Writes one bag's samples into shards of `shard_size`; sidecars are written by finish().

    The tensors of a full shard go to disk at once (memory holds one shard's payloads); the
    sidecars wait for finish(), which knows the labels matched over the whole bag.
    """

    def __init__(self, folder: Path, bag: str, shard_size: int):
        self._dir = Path(folder) / SHARD_DIR
        self._dir.mkdir(parents=True, exist_ok=True)
        self._bag, self._size = bag, int(shard_size)
        self._tensors: Dict[str, np.ndarray] = {}
        self._shards: List[Tuple[str, List[dict]]] = []  # (stem, sample metadata)
        self._current: List[dict] = []
        self.t0s: List[int] = []  # of every sample added [ns]

    def add(self, record: SampleRecord) -> None:
        """Add one sample; a full shard is written."""
        prefix = f'{len(self._current):05d}.'
        for name in ('history_xyz', 'history_rot', 'future_xyz', 'future_rot'):
            self._tensors[prefix + name] = np.ascontiguousarray(getattr(record, name), np.float32)
        stamps = [[getattr(f, 'stamp_ns', -1) for f in cam] for cam in record.frames]
        self._tensors[prefix + 'frame_stamps_ns'] = np.array(stamps, dtype=np.int64)
        frames = [[_frame_payload(frame) for frame in cam] for cam in record.frames]
        for c, camera_frames in enumerate(frames):
            for f, (payload, _) in enumerate(camera_frames):
                self._tensors[f'{prefix}image.{c}.{f}'] = payload
        self._current.append({'t0_ns': int(record.t0_ns), 'bag': record.bag,
                              'kind': record.kind, 'camera_names': list(record.camera_names),
                              'frames': [[meta for _, meta in cam] for cam in frames],
                              'filled': list(record.filled), 'label': None})
        self.t0s.append(int(record.t0_ns))
        if len(self._current) >= self._size:
            self._flush()

    def _flush(self) -> None:
        if not self._current:
            return
        stem = f'{self._bag}-{len(self._shards):05d}'
        tensors = self._tensors
        write_atomic(self._dir / f'{stem}.safetensors',
                     lambda tmp: save_file(tensors, str(tmp), metadata={'format': 'ar1_ros'}))
        self._shards.append((stem, self._current))
        self._tensors, self._current = {}, []

    def finish(self, labels: Dict[int, CocLabel]) -> List[dict]:
        """Write the last shard and every sidecar; return the index's shard list.

        labels: {sample t0: label} (labels.match). Returns [{'file', 'samples', 'bytes'}].
        """
        self._flush()
        shards = []
        for stem, metas in self._shards:
            for meta in metas:
                label = labels.get(meta['t0_ns'])
                meta['label'] = None if label is None else label.to_json()
            tensors = self._dir / f'{stem}.safetensors'
            write_json(self._dir / f'{stem}.json', {'version': FORMAT_VERSION, 'bag': self._bag,
                                                    'file': tensors.name, 'samples': metas})
            shards.append({'file': tensors.name, 'samples': len(metas),
                           'bytes': tensors.stat().st_size})
        return shards


@dataclasses.dataclass
class TrainingSample:
    """One training sample, decoded; every array in the ego frame at t0.

    images (C, F, H, W, 3) uint8 RGB (cameras in model order, frames oldest first);
    ego_history_xyz (16, 3) and ego_history_rot (16, 3, 3) float32; ego_future_xyz (64, 3) and
    ego_future_rot (64, 3, 3) float32 at t0 + (i + 1) 0.1 s; frame_stamps_ns (C, F) int64.
    """

    images: np.ndarray
    ego_history_xyz: np.ndarray
    ego_history_rot: np.ndarray
    ego_future_xyz: np.ndarray
    ego_future_rot: np.ndarray
    t0_ns: int
    bag: str
    kind: str
    camera_names: Tuple[str, ...]
    label: Optional[CocLabel]
    frame_stamps_ns: Optional[np.ndarray] = None
    filled: Tuple[str, ...] = ()


def read_index(folder: Path) -> dict:
    """Return dataset.json of `folder`; DatasetError when missing, corrupt or of a newer format."""
    path = Path(folder) / INDEX_NAME
    if not path.is_file():
        raise DatasetError(f'{folder}: no {INDEX_NAME}; not a dataset folder (build one with '
                           '`ar1 dataset build BAG... --out DIR`)')
    try:
        index = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f'{path}: unreadable ({exc})') from exc
    if not isinstance(index, dict) or not isinstance(index.get('bags'), dict):
        raise DatasetError(f'{path}: not a dataset index (no "bags")')
    if index.get('version') != FORMAT_VERSION:
        raise DatasetError(f'{path}: format version {index.get("version")!r}, this reader '
                           f'reads {FORMAT_VERSION}')
    return index


def _shard_samples(folder: Path, shard: dict) -> List[dict]:
    """Return the sidecar sample list of one indexed shard, checked against the index."""
    tensors = folder / SHARD_DIR / shard['file']
    sidecar = tensors.with_suffix('.json')
    if not tensors.is_file() or not sidecar.is_file():
        raise DatasetError(f'{tensors}: shard or its .json sidecar is missing; rebuild the bag')
    if tensors.stat().st_size != shard['bytes']:
        raise DatasetError(f'{tensors}: {tensors.stat().st_size} bytes, the index says '
                           f'{shard["bytes"]}; the shard was changed or truncated')
    try:
        samples = json.loads(sidecar.read_text())['samples']
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f'{sidecar}: unreadable sidecar ({exc})') from exc
    if len(samples) != shard['samples']:
        raise DatasetError(f'{sidecar}: {len(samples)} samples, the index says '
                           f'{shard["samples"]}')
    return samples


class TrainingDataset:
    """The samples of a built dataset folder (torch Dataset protocol: len and [i]).

    Shards are opened on first use, in each process (a DataLoader worker opens its own), and
    images decoded on each access. Raises DatasetError for a missing, incomplete (a bag whose
    build was interrupted) or corrupt folder, naming the file.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.index = read_index(self.folder)
        self.camera_names = tuple(self.index.get('camera_names', ()))
        self._samples: List[Tuple[Path, int, dict]] = []
        try:
            for name, entry in sorted(self.index['bags'].items()):
                self._add_bag(name, entry)
        except (KeyError, TypeError, AttributeError) as exc:
            raise DatasetError(f'{self.folder / INDEX_NAME}: malformed bag entry ({exc!r})'
                               ) from exc
        self.labelled_count = sum(meta.get('label') is not None for *_, meta in self._samples)
        self._open: collections.OrderedDict = collections.OrderedDict()

    def _add_bag(self, name: str, entry: dict) -> None:
        if entry['status'] == 'building':
            raise DatasetError(f'{self.folder}: bag {name} was interrupted while building; '
                               'run `ar1 dataset build` again to finish it')
        for shard in entry['shards']:
            tensors = self.folder / SHARD_DIR / shard['file']
            samples = _shard_samples(self.folder, shard)
            self._samples.extend((tensors, i, meta) for i, meta in enumerate(samples))

    def __len__(self) -> int:
        return len(self._samples)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state['_open'] = collections.OrderedDict()  # file handles stay in their process
        return state

    def _handle(self, path: Path):
        handle = self._open.pop(path, None)
        if handle is None:
            try:
                handle = safe_open(str(path), framework='numpy')
            except (OSError, SafetensorError) as exc:
                raise DatasetError(f'{path}: cannot open shard ({exc})') from exc
        self._open[path] = handle
        while len(self._open) > _OPEN_SHARDS:
            self._open.popitem(last=False)
        return handle

    def __getitem__(self, i: int) -> TrainingSample:
        if not -len(self) <= i < len(self):
            raise IndexError(f'sample {i} out of range ({len(self)} samples)')
        path, j, meta = self._samples[i]
        try:
            return _decode(self._handle(path), f'{j:05d}.', meta)
        except (SafetensorError, ImageError, LabelError, KeyError, ValueError) as exc:
            raise DatasetError(f'{path.name}: sample {j} ({meta.get("bag")} t0 '
                               f'{meta.get("t0_ns")}): {exc}') from exc


def _decode(handle, prefix: str, meta: dict) -> TrainingSample:
    """Return the TrainingSample of one stored sample."""
    stamps = handle.get_tensor(prefix + 'frame_stamps_ns')
    frames: List[Sequence[Frame]] = []
    for c, camera in enumerate(meta['frames']):
        frames.append([])
        for f, m in enumerate(camera):
            encoded = EncodedImage(handle.get_tensor(f'{prefix}image.{c}.{f}'), m['encoding'],
                                   m['compressed'], m['width'], m['height'], m['step'])
            frames[-1].append(Frame(int(stamps[c, f]), encoded, tuple(m['size'])))
    label = meta.get('label')
    return TrainingSample(
        images=stack_frames(frames),
        ego_history_xyz=handle.get_tensor(prefix + 'history_xyz'),
        ego_history_rot=handle.get_tensor(prefix + 'history_rot'),
        ego_future_xyz=handle.get_tensor(prefix + 'future_xyz'),
        ego_future_rot=handle.get_tensor(prefix + 'future_rot'),
        t0_ns=int(meta['t0_ns']), bag=meta['bag'], kind=meta['kind'],
        camera_names=tuple(meta['camera_names']),
        label=None if label is None else parse_label(label),
        frame_stamps_ns=stamps, filled=tuple(meta.get('filled', ())))
