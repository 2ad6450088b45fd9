"""Decode the frames of a submitted observation in parallel, ahead of the inference worker.

An observation is submitted with up to four new frames per camera still encoded. Decoding
them one after another on the worker thread costs tens of milliseconds at 1080p and more after
a dropped cycle; cv2.imdecode releases the GIL, so a few threads decode them side by side, and
they start while the worker may still be busy with the previous cycle.
"""
from concurrent.futures import ThreadPoolExecutor
import contextlib
from typing import Optional, Sequence

from ar1_ros.runtime.images import Frame, ImageError


def _decode_quietly(frame: Frame) -> None:
    # A decode error is cached in the frame: the worker's stack_frames raises it for the cycle.
    with contextlib.suppress(ImageError):
        frame.rgb()


class DecodePool:
    """A small thread pool that decodes frames not decoded yet; `threads` 0 disables it."""

    def __init__(self, threads: int):
        if threads < 0:
            raise ValueError(f'decode threads must be >= 0, got {threads}')
        self._executor: Optional[ThreadPoolExecutor] = None
        if threads:
            self._executor = ThreadPoolExecutor(threads, thread_name_prefix='ar1-decode')

    def prefetch(self, frames: Sequence[Sequence[Frame]]) -> int:
        """Queue every not-yet-decoded frame (cameras x frames) for decoding; return how many."""
        if self._executor is None:
            return 0
        pending = [f for camera in frames for f in camera if not f.decoded]
        for frame in pending:
            self._executor.submit(_decode_quietly, frame)
        return len(pending)

    def close(self) -> None:
        """Stop the threads; queued decodes that have not started are cancelled."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
