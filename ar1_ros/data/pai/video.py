"""Camera videos to JPEG frames: decoded sequentially with PyAV, a bounded distance ahead.

The devkit's SeekVideoReader seeks per request and returns the frames in one array; decoding
every frame in order is ~12x faster per frame (measured on a 1080p h264 clip: 1.5 ms against
18.6 ms one timestamp at a time, 7.4 ms in batches of 10) and holds one frame at a time. Frame i
of the stream is the frame of timestamp i, as in the devkit (constant frame rate videos).
"""
import io
import queue
import threading
from typing import Iterable, Iterator, List, Tuple

import cv2
import numpy as np

from ar1_ros.data.pai.snapshot import PaiError


def keep_mask(stamps_us: np.ndarray, camera_hz: float) -> np.ndarray:
    """Return which frames to keep (N,) bool: all, or the nearest frame to each 1/camera_hz tick.

    Ticks start at the first frame; nearest rather than "first after" so jittery timestamps do
    not push frames to the next tick and lower the rate.
    """
    keep = np.zeros(len(stamps_us), dtype=bool)
    if camera_hz <= 0 or len(stamps_us) < 2:
        keep[:] = True
        return keep
    step = 1e6 / camera_hz
    ticks = stamps_us[0] + step * np.arange(int((stamps_us[-1] - stamps_us[0]) // step) + 1)
    after = np.clip(np.searchsorted(stamps_us, ticks), 1, len(stamps_us) - 1)
    nearer_before = (ticks - stamps_us[after - 1]) <= (stamps_us[after] - ticks)
    keep[np.where(nearer_before, after - 1, after)] = True
    return keep


def jpeg_frames(name: str, video: bytes, stamps_us: np.ndarray, keep: np.ndarray,
                quality: int, notes: List[str]) -> Iterator[Tuple[int, str, str, bytes]]:
    """Yield (t µs, 'camera', name, JPEG bytes) per kept frame of an mp4, in order.

    More frames than timestamps: the extra ones are dropped; fewer: noted. A stream that cannot
    be decoded raises PaiError naming the camera and the last good frame.
    """
    import av
    index = -1
    try:
        with av.open(io.BytesIO(video)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index >= len(stamps_us):
                    notes.append(f'{name}: the video has more frames than timestamps; the '
                                 f'extra ones are dropped')
                    return
                if keep[index]:
                    ok, jpeg = cv2.imencode('.jpg', frame.to_ndarray(format='bgr24'),
                                            [cv2.IMWRITE_JPEG_QUALITY, quality])
                    yield int(stamps_us[index]), 'camera', name, jpeg.tobytes()
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise PaiError(f'{name}: cannot decode the video after frame {index} ({exc})') from exc
    if index + 1 < len(stamps_us):
        notes.append(f'{name}: {len(stamps_us)} timestamps but {index + 1} video frames')


class Prefetch:
    """Runs an iterator in a thread of its own, at most `depth` items ahead of the consumer.

    Cameras decode and JPEG-encode in parallel this way (PyAV and OpenCV release the GIL) while
    memory stays bounded. The producer's exception is raised to the consumer; close() stops it.
    """

    _END = object()

    def __init__(self, iterable: Iterable, depth: int = 4):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iter(iterable),), daemon=True)
        self._thread.start()

    def _put(self, entry) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, iterator: Iterator) -> None:
        try:
            for item in iterator:
                if not self._put((True, item)):
                    return
            self._put((True, self._END))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put((False, exc))

    def __iter__(self) -> Iterator:
        """Yield the items in order; re-raise the producer's exception where it happened."""
        while True:
            ok, item = self._queue.get()
            if not ok:
                raise item
            if item is self._END:
                return
            yield item

    def close(self) -> None:
        """Stop the producer thread and wait for it (idempotent)."""
        self._stop.set()
        self._thread.join(timeout=10)
