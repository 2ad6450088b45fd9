"""Pick one camera's frames for the grid around t0 (AR1: t0-0.3, -0.2, -0.1, 0 s).

Cameras run free at about 10 Hz with jitter, so a grid time takes the nearest frame within a
tolerance, and each frame serves one slot at most: the model was trained on four distinct
frames 0.1 s apart, and showing it one frame twice pretends the scene stood still. A slot
without a frame is handled by the missing-camera policy (SelectionConfig).
"""
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from ar1_ros.runtime.buffers import StampedRing
from ar1_ros.runtime.config import SelectionConfig
from ar1_ros.runtime.images import Frame
from ar1_ros.runtime.types import Skip, seconds_to_ns

Selection = Tuple[Tuple[Frame, ...], Tuple[str, ...]]


def _grid_label(offset_s: float) -> str:
    return 't0' if offset_s == 0 else f't0{offset_s:+.1f} s'


def _nearest_index(stamps: Sequence[int], t_ns: int, exclude=()) -> Optional[int]:
    # Ties go to the older frame (iteration order), matching StampedRing.nearest.
    best = None
    for index, stamp in enumerate(stamps):
        if index in exclude:
            continue
        if best is None or abs(stamp - t_ns) < abs(stamps[best] - t_ns):
            best = index
    return best


def _pick_distinct(stamps: Sequence[int], grid_ns: Sequence[int],
                   tolerance_ns: int) -> List[Optional[int]]:
    """Return per grid time the index of its frame, or None; no index is used twice."""
    used, picks = set(), []
    for t_ns in grid_ns:
        index = _nearest_index(stamps, t_ns, exclude=used)
        if index is not None and abs(stamps[index] - t_ns) <= tolerance_ns:
            used.add(index)
            picks.append(index)
        else:
            picks.append(None)
    return picks


def _missing_detail(camera: str, stamps: Sequence[int], t_ns: int, offset_s: float,
                    cfg: SelectionConfig) -> str:
    label = _grid_label(offset_s)
    tolerance_ms = cfg.frame_tolerance_s * 1e3
    index = _nearest_index(stamps, t_ns)
    if index is None:
        return f'{camera}: no frame within {tolerance_ms:.0f} ms of {label} (no frames)'
    away_ms = abs(stamps[index] - t_ns) / 1e6
    return (f'{camera}: no frame within {tolerance_ms:.0f} ms of {label} '
            f'(nearest {away_ms:.0f} ms away)')


def _black_frame(camera: str, size: Optional[Tuple[int, int]]) -> Union[Frame, Skip]:
    if size is None:
        return Skip('camera_missing', f'{camera}: no frame ever received, image size unknown')
    height, width = size
    return Frame.from_array(-1, np.zeros((height, width, 3), dtype=np.uint8))


def _fill(camera: str, entries, t_ns: int, offset_s: float, cfg: SelectionConfig,
          size: Optional[Tuple[int, int]]) -> Union[Tuple[Frame, str], Skip]:
    """Return (frame, note) for a slot without a frame under the fill policy, or a Skip."""
    stamps = [stamp for stamp, _ in entries]
    label = _grid_label(offset_s)
    if cfg.missing_camera_policy == 'repeat':
        index = _nearest_index(stamps, t_ns)
        if index is None or abs(stamps[index] - t_ns) > seconds_to_ns(cfg.fill_max_offset_s):
            return Skip('camera_missing', _missing_detail(camera, stamps, t_ns, offset_s, cfg)
                        + f', nothing to repeat within {cfg.fill_max_offset_s:.2f} s')
        away_ms = abs(stamps[index] - t_ns) / 1e6
        return entries[index][1], f'{camera} {label}: repeated the frame {away_ms:.0f} ms away'
    if cfg.missing_camera_policy == 'black':
        frame = _black_frame(camera, size)
        if isinstance(frame, Skip):
            return frame
        return frame, f'{camera} {label}: black {size[0]}x{size[1]} image'
    return Skip('camera_missing', _missing_detail(camera, stamps, t_ns, offset_s, cfg))


def select_frames(buffer: StampedRing, t0_ns: int, cfg: SelectionConfig, camera: str,
                  fallback_size: Optional[Tuple[int, int]] = None) -> Union[Selection, Skip]:
    """Select one camera's frames (StampedRing[Frame] `buffer`) for the grid around t0_ns.

    Returns (frames, notes): len(cfg.frame_offsets_s) frames, oldest first, and one note per
    slot filled by the missing-camera policy; or Skip('camera_missing', detail). The 'black'
    policy uses the size (height, width) of the newest buffered frame, else fallback_size.
    """
    entries = buffer.snapshot()
    stamps = [stamp for stamp, _ in entries]
    grid_ns = [t0_ns + seconds_to_ns(offset) for offset in cfg.frame_offsets_s]
    picks = _pick_distinct(stamps, grid_ns, seconds_to_ns(cfg.frame_tolerance_s))
    size = entries[-1][1].size if entries else fallback_size
    frames, notes = [], []
    for pick, t_ns, offset in zip(picks, grid_ns, cfg.frame_offsets_s, strict=True):
        if pick is not None:
            frames.append(entries[pick][1])
            continue
        filled = _fill(camera, entries, t_ns, offset, cfg, size)
        if isinstance(filled, Skip):
            return filled
        frames.append(filled[0])
        notes.append(filled[1])
    return tuple(frames), tuple(notes)
