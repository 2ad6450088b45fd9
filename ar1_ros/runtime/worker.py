"""The inference worker: one thread that decodes, infers and validates the newest observation.

The caller (the node's executor, or offline evaluation) submits observations without ever
waiting for inference; a mailbox holds at most one, so an observation still waiting when a
newer one arrives is dropped (latest-only: a plan from old inputs is worth less than a plan
from new ones). Results go to `on_result` on the worker thread.
"""
import logging
import threading
import time
from typing import Callable, Optional, Tuple

from ar1_ros.runtime.backends.base import InferenceBackend
from ar1_ros.runtime.config import ValidatorConfig
from ar1_ros.runtime.decode_pool import DecodePool
from ar1_ros.runtime.images import stack_frames
from ar1_ros.runtime.types import CycleResult, Observation
from ar1_ros.runtime.validator import validate_all

_LOG = logging.getLogger(__name__)
# Stages the worker times itself; a backend stage of the same name is overwritten.
WORKER_STAGES = ('queue', 'decode', 'validate', 'total')


def _describe(exc: BaseException) -> str:
    return f'{type(exc).__name__}: {exc}'


class InferenceWorker:
    """A single daemon thread running backend cycles on the latest submitted observation.

    backend: an InferenceBackend, used only from the worker thread. validator_cfg: the safety
    gate bounds. on_result(CycleResult) is called on the worker thread; exceptions it raises
    are logged and ignored. clock: a monotonic clock in seconds (stage timings).
    decode_threads: threads that start decoding a submitted observation's frames at once
    (0: the worker decodes them itself when it takes the observation).
    Counters: dropped (observations replaced while waiting), completed (cycles with an
    output), failed (cycles that ended in an error). A worker runs once: start() after
    stop() raises RuntimeError.
    """

    def __init__(self, backend: InferenceBackend, validator_cfg: ValidatorConfig,
                 on_result: Callable[[CycleResult], None],
                 clock: Callable[[], float] = time.monotonic, decode_threads: int = 0):
        self.backend = backend
        self._decode_pool = DecodePool(decode_threads)
        self.validator_cfg = validator_cfg
        self._on_result = on_result
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: Optional[Tuple[Observation, float]] = None
        self._running = False
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        self.dropped = self.completed = self.failed = 0

    def start(self) -> None:
        """Start the worker thread (idempotent while running)."""
        with self._cond:
            if self._stopping:
                raise RuntimeError('inference worker was stopped; create a new one')
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._loop, name='ar1-inference',
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread and wait up to `timeout` s for it; return True once it has ended.

        An observation still waiting is discarded; the result of a cycle in flight is not
        delivered. Idempotent.
        """
        with self._cond:
            self._stopping = True
            self._pending = None
            self._cond.notify_all()
            thread = self._thread
        self._decode_pool.close()
        if thread is None or thread is threading.current_thread():
            return thread is None
        thread.join(timeout)
        return not thread.is_alive()

    def submit(self, observation: Observation) -> bool:
        """Hand `observation` to the worker without waiting; return True if it replaced one.

        The replaced observation (submitted earlier, not started yet) is counted in `dropped`.
        """
        with self._cond:
            replaced = self._pending is not None
            if replaced:
                self.dropped += 1
            self._pending = (observation, self._clock())
            self._cond.notify_all()
        self._decode_pool.prefetch(observation.frames)
        return replaced

    @property
    def busy(self) -> bool:
        """True while an observation is waiting or being processed."""
        with self._cond:
            return self._running or self._pending is not None

    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        """Block until nothing waits or runs (result delivered) or stop(); False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not (self._running or self._pending is not None) or self._stopping,
                timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._stopping)
                if self._stopping:
                    return
                (observation, submitted), self._pending = self._pending, None
                self._running = True
            result = self.run_cycle(observation, submitted)
            with self._cond:
                if result.error is None:
                    self.completed += 1
                else:
                    self.failed += 1
                deliver = not self._stopping
            if deliver:
                self._deliver(result)
            with self._cond:
                self._running = False
                self._cond.notify_all()

    def _deliver(self, result: CycleResult) -> None:
        try:
            self._on_result(result)
        except Exception:  # noqa: BLE001 - a faulty consumer must not stop inference
            _LOG.exception('on_result raised; the worker carries on')

    def run_cycle(self, observation: Observation, submitted: float) -> CycleResult:
        """Decode, infer and validate one observation now, on the calling thread.

        submitted: the clock value at submission (queue time is measured from it). Decode,
        backend and validation exceptions become CycleResult.error ('decode: ImageError: ...',
        'backend: RuntimeError: ...', 'validate: ValueError: ...'); timings hold queue,
        decode, the backend's stages, validate and total (submit -> done), in seconds.
        """
        timings = {'queue': self._clock() - submitted}

        def failed(stage: str, exc: Exception) -> CycleResult:
            timings['total'] = self._clock() - submitted
            return CycleResult(observation, None, [], None, timings,
                               error=f'{stage}: {_describe(exc)}')

        mark = self._clock()
        try:
            images = stack_frames(observation.frames)
        except Exception as exc:  # noqa: BLE001 - any decode fault fails this cycle only
            _LOG.warning('decoding t0=%d failed: %s', observation.t0_ns, _describe(exc))
            return failed('decode', exc)
        timings['decode'] = self._clock() - mark
        try:
            output = self.backend.infer(images, observation)
        except Exception as exc:  # noqa: BLE001 - backend faults are reported, not fatal
            _LOG.error('backend failed at t0=%d', observation.t0_ns, exc_info=True)
            return failed('backend', exc)
        timings.update({k: float(v) for k, v in output.timings.items()
                        if k not in WORKER_STAGES})
        mark = self._clock()
        try:
            verdicts = validate_all(output, observation.history.speed, self.validator_cfg)
        except Exception as exc:  # noqa: BLE001 - a malformed output fails this cycle only
            _LOG.error('backend output rejected at t0=%d: %s', observation.t0_ns, _describe(exc))
            return failed('validate', exc)
        timings['validate'] = self._clock() - mark
        plan = next((i for i, v in enumerate(verdicts) if v.ok), None)
        timings['total'] = self._clock() - submitted
        return CycleResult(observation, output, verdicts, plan, timings)
