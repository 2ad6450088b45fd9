"""Input buffers of the runtime and the assembly of one Observation per cycle.

t0 is the newest time for which every input is available: the slowest camera's newest frame,
capped at the newest odometry. Picking it this way (rather than "now") keeps a lagging camera
from being reported missing every cycle; the price is latency, bounded by max_input_age_s.
"""
import threading
from typing import Dict, Optional, Tuple, Union

from ar1_ros.runtime.buffers import StampedRing
from ar1_ros.runtime.config import RuntimeConfig
from ar1_ros.runtime.ego_history import build_history, check_ego_state
from ar1_ros.runtime.frame_selection import select_frames
from ar1_ros.runtime.types import NS_PER_S, EgoState, Observation, Skip, seconds_to_ns


class InputBuffers:
    """One StampedRing[Frame] per camera (model order) and one StampedRing[EgoState].

    `epoch` counts clear() calls: an observation carries the epoch it was assembled in, so a
    result computed from inputs of before a clock jump can be recognised and dropped.
    Thread-safe: callbacks may add while a timer assembles.
    """

    def __init__(self, config: RuntimeConfig):
        self._config = config
        self._cfg = config.selection
        window_ns = seconds_to_ns(self._cfg.buffer_s)
        self._frames: Dict[str, StampedRing] = {
            name: StampedRing(window_ns) for name in config.camera_names}
        self._ego: StampedRing = StampedRing(window_ns)
        # Sizes outlive clear(): the 'black' policy still knows what a camera's images look like.
        self._sizes: Dict[str, Tuple[int, int]] = {}
        self._lock = threading.Lock()
        self.epoch = 0

    @property
    def camera_names(self) -> Tuple[str, ...]:
        """Return the camera names in model order."""
        return tuple(self._frames)

    def add_frame(self, camera: str, frame) -> Optional[str]:
        """Store `frame` (runtime.images.Frame) of `camera`; return a note if the size changed.

        A frame whose size (height, width) differs from the camera's previous frames clears
        that camera's buffer first (the model needs equal sizes across a camera's frames).
        Raises ValueError for a camera that is not configured.
        """
        if camera not in self._frames:
            raise ValueError(f'unknown camera {camera!r}; configured: {list(self._frames)}')
        size = tuple(frame.size)
        note = None
        with self._lock:
            previous = self._sizes.get(camera)
            if previous is not None and previous != size:
                self._frames[camera].clear()
                note = (f'camera {camera}: image size changed from {previous[0]}x{previous[1]} '
                        f'to {size[0]}x{size[1]}; buffer cleared')
            self._sizes[camera] = size
            self._frames[camera].insert(frame.stamp_ns, frame)
        return note

    def add_ego(self, state: EgoState) -> Optional[str]:
        """Store an odometry sample; return the reason (and store nothing) if it is unusable."""
        problem = check_ego_state(state)
        if problem is None:
            self._ego.insert(state.stamp_ns, state)
        return problem

    def clear(self) -> None:
        """Drop every buffered input and increment `epoch`."""
        with self._lock:
            for ring in self._frames.values():
                ring.clear()
            self._ego.clear()
            self.epoch += 1

    def release_decoded(self, before_ns: int) -> int:
        """Drop the decoded pixels of every frame stamped before `before_ns`; return how many.

        Call it with the oldest grid time of an observation whose result came back: later
        observations have later t0, so those frames will never be selected again (they stay
        buffered, encoded, as context).
        """
        released = 0
        for ring in self._frames.values():
            for stamp, frame in ring.snapshot():
                if stamp >= before_ns:
                    break
                if frame.decoded and frame.encoded is not None:
                    frame.drop_decoded()
                    released += 1
        return released

    def newest_stamps(self) -> Dict[str, Optional[int]]:
        """Return the newest stamp [ns] per camera name and under 'ego' (None if none yet)."""
        stamps = {name: ring.newest_stamp() for name, ring in self._frames.items()}
        stamps['ego'] = self._ego.newest_stamp()
        return stamps

    def _camera_t0(self, stamps: Dict[str, Optional[int]]) -> Union[int, Skip]:
        """Return the t0 the cameras allow: their oldest newest stamp.

        Under a fill policy a camera that never sent a frame, or lags the newest camera by
        more than max_input_age_s, does not hold t0 back: it is filled (or skipped) instead.
        """
        cameras = {name: stamps[name] for name in self._frames}
        present = {name: s for name, s in cameras.items() if s is not None}
        missing = sorted(set(cameras) - set(present))
        if self._cfg.missing_camera_policy == 'skip':
            if missing:
                return Skip('no_input', f'no frames yet from {", ".join(missing)}')
            return min(present.values())
        if not present:
            return Skip('no_input', f'no frames yet from {", ".join(missing)}')
        cutoff = max(present.values()) - seconds_to_ns(self._cfg.max_input_age_s)
        return min(s for s in present.values() if s >= cutoff)

    def choose_t0(self) -> Union[int, Skip]:
        """Return t0 [ns]: the cameras' t0 capped at the newest odometry, or Skip('no_input').

        When odometry lags the cameras (it often arrives a few ms after the frame of the same
        instant), t0 steps back to the slowest camera's newest frame the odometry covers, so
        t0 stays a frame stamp and no frame after t0 is used; only without such a frame is t0
        the newest odometry stamp.
        """
        stamps = self.newest_stamps()
        camera_t0 = self._camera_t0(stamps)
        ego = stamps['ego']
        if ego is None:
            return Skip('no_input', 'no odometry yet')
        if isinstance(camera_t0, Skip) or camera_t0 <= ego:
            return camera_t0
        slowest = next(name for name in self._frames if stamps[name] == camera_t0)
        before, _ = self._frames[slowest].bracket(ego)
        return before[0] if before is not None else ego

    def _select_all(self, t0_ns: int) -> Union[Tuple[tuple, tuple], Skip]:
        frames, notes = [], []
        for name, ring in self._frames.items():
            selection = select_frames(ring, t0_ns, self._cfg, name, self._sizes.get(name))
            if isinstance(selection, Skip):
                return selection
            frames.append(selection[0])
            notes.extend(selection[1])
        return tuple(frames), tuple(notes)

    def assemble(self, now_ns: int,
                 last_t0_ns: Optional[int] = None) -> Union[Observation, Skip]:
        """Return the Observation at the current t0, or why there is none.

        Skips: 'no_input' (an input never arrived), 'stale_inputs' (now_ns - t0 >
        max_input_age_s), 'no_new_input' (t0 <= last_t0_ns, the previous cycle's t0),
        'camera_missing' (frame selection), and those of build_history.
        """
        epoch = self.epoch
        t0 = self.choose_t0()
        if isinstance(t0, Skip):
            return t0
        age_s = (now_ns - t0) / NS_PER_S
        if age_s > self._cfg.max_input_age_s:
            return Skip('stale_inputs', f'newest complete input (t0) is {age_s:.2f} s old '
                                        f'(limit {self._cfg.max_input_age_s:.2f} s)')
        if last_t0_ns is not None and t0 <= last_t0_ns:
            return Skip('no_new_input', f't0 {t0 / NS_PER_S:.3f} s already used')
        selection = self._select_all(t0)
        if isinstance(selection, Skip):
            return selection
        history = build_history(self._ego, t0, self._cfg)
        if isinstance(history, Skip):
            return history
        return Observation(t0_ns=t0, camera_names=self.camera_names, frames=selection[0],
                           history=history, filled=selection[1], epoch=epoch)


class ClockWatch:
    """Detect the clock stepping backwards (a bag restarting, sim time reset)."""

    def __init__(self, jump_back_ns: int):
        self._jump_back_ns = int(jump_back_ns)
        self._last: Optional[int] = None

    def update(self, now_ns: int) -> Optional[str]:
        """Record `now_ns`; return a note when it lies more than jump_back_ns behind the last.

        A smaller step back (jitter between clocks) is ignored and the reference kept at the
        highest time seen, so repeated small steps back add up and are eventually reported.
        """
        now_ns = int(now_ns)
        last = self._last
        if last is not None and now_ns < last - self._jump_back_ns:
            self._last = now_ns
            return (f'clock went back {(last - now_ns) / NS_PER_S:.3f} s '
                    f'(from {last / NS_PER_S:.3f} s to {now_ns / NS_PER_S:.3f} s)')
        self._last = now_ns if last is None else max(last, now_ns)
        return None

    def reset(self) -> None:
        """Forget the last time (the next update never reports a jump)."""
        self._last = None
