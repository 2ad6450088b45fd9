import itertools
import logging
import threading
import time

import pytest

from ar1_ros.runtime.backends import BackendSettings
from ar1_ros.runtime.backends.fake import FakeBackend
from ar1_ros.runtime.config import ValidatorConfig
from ar1_ros.runtime.images import EncodedImage, Frame
from ar1_ros.runtime.types import NS_PER_S
from ar1_ros.runtime.worker import InferenceWorker

from .observations import make_observation, random_frames

CFG = ValidatorConfig()


class Recorder:
    """Collects results; can raise on chosen calls."""

    def __init__(self, raise_on=()):
        self.results, self.threads, self.raise_on = [], [], set(raise_on)

    def __call__(self, result):
        self.results.append(result)
        self.threads.append(threading.current_thread().name)
        if len(self.results) in self.raise_on:
            raise ValueError('consumer fault')


class GatedBackend(FakeBackend):
    """The fake test double, announcing each start and waiting for a release."""

    def __init__(self, settings=None):
        super().__init__(settings or BackendSettings(kind='fake'))
        self.started, self.release = threading.Semaphore(0), threading.Event()

    def infer(self, images, observation):
        self.started.release()
        assert self.release.wait(5)
        return super().infer(images, observation)


@pytest.fixture
def make_worker():
    workers = []

    def make(backend=None, on_result=None, **kwargs):
        backend = backend or FakeBackend(BackendSettings(kind='fake', **kwargs))
        worker = InferenceWorker(backend, CFG, on_result or Recorder())
        workers.append(worker)
        worker.start()
        return worker

    yield make
    for worker in workers:
        worker.stop()


def _obs(k):
    return make_observation(t0_ns=(10 + k) * NS_PER_S, seed=k)


def test_a_waiting_observation_is_replaced_by_a_newer_one(make_worker):
    backend, recorder = GatedBackend(), Recorder()
    worker = make_worker(backend, recorder)
    assert worker.submit(_obs(0)) is False
    assert backend.started.acquire(timeout=5)  # the worker is inside infer() with obs 0
    assert worker.submit(_obs(1)) is False
    start = time.monotonic()
    assert worker.submit(_obs(2)) is True  # obs 1 never started: dropped
    assert time.monotonic() - start < 0.05
    assert worker.dropped == 1
    assert worker.busy
    backend.release.set()
    assert worker.wait_idle(5)
    assert [r.observation.t0_ns for r in recorder.results] == [10 * NS_PER_S, 12 * NS_PER_S]
    assert worker.completed == 2
    assert worker.failed == 0
    assert not worker.busy
    assert recorder.threads == ['ar1-inference'] * 2


def test_slow_backend_latest_only(make_worker):
    recorder = Recorder()
    worker = make_worker(on_result=recorder, fake_delay_s=0.5)
    observations = [_obs(k) for k in range(3)]
    assert worker.submit(observations[0]) is False
    time.sleep(0.1)  # the worker has long taken obs 0 and sleeps in the slow backend
    assert worker.submit(observations[1]) is False
    assert worker.submit(observations[2]) is True
    assert worker.wait_idle(5)
    assert [r.observation.t0_ns // NS_PER_S - 10 for r in recorder.results] == [0, 2]
    assert worker.dropped == 1
    assert worker.completed == 2


def test_a_nominal_cycle_gives_a_validated_plan(make_worker):
    recorder = Recorder()
    worker = make_worker(on_result=recorder, num_samples=2)
    worker.submit(_obs(0))
    assert worker.wait_idle(5)
    (result,) = recorder.results
    assert result.error is None
    assert result.plan_index == 0
    assert [v.ok for v in result.verdicts] == [True, True]
    assert result.output.trajectory_xyz.shape == (2, 64, 3)


def test_the_first_valid_sample_is_the_plan(make_worker):
    class FirstSwerves(FakeBackend):
        def infer(self, images, observation):
            out = super().infer(images, observation)
            out.actions[0, :, 1] = 0.5
            return out

    recorder = Recorder()
    worker = make_worker(FirstSwerves(BackendSettings(kind='fake', num_samples=3)), recorder)
    worker.submit(_obs(0))
    assert worker.wait_idle(5)
    result = recorder.results[0]
    assert [v.ok for v in result.verdicts] == [False, True, True]
    assert result.plan_index == 1


def test_all_samples_rejected_gives_no_plan(make_worker):
    recorder = Recorder()
    worker = make_worker(on_result=recorder, fake_mode='swerve', num_samples=2)
    worker.submit(_obs(0))
    assert worker.wait_idle(5)
    result = recorder.results[0]
    assert result.error is None
    assert result.output is not None
    assert result.plan_index is None
    assert all('curvature' in v.reasons[0] for v in result.verdicts)
    assert worker.completed == 1


def test_backend_exception_becomes_an_error(make_worker, caplog):
    recorder = Recorder()
    worker = make_worker(on_result=recorder, fake_mode='raise')
    with caplog.at_level(logging.ERROR):
        worker.submit(_obs(0))
        assert worker.wait_idle(5)
    result = recorder.results[0]
    assert result.error == 'backend: RuntimeError: fake backend fault (test double)'
    assert result.output is None
    assert result.verdicts == []
    assert result.plan_index is None
    assert worker.failed == 1
    assert worker.completed == 0
    assert {'queue', 'decode', 'total'} <= set(result.timings)
    assert 'backend failed' in caplog.text


def test_decode_error_becomes_an_error(make_worker):
    recorder = Recorder()
    worker = make_worker(on_result=recorder)
    corrupt = Frame(10 * NS_PER_S, EncodedImage(b'\xff\xd8garbage', 'jpeg', True, 0, 0, 0),
                    (64, 96))
    frames = random_frames(10 * NS_PER_S, cameras=2)
    frames = (frames[0], frames[1][:3] + (corrupt,))
    worker.submit(make_observation(frames=frames))
    assert worker.wait_idle(5)
    result = recorder.results[0]
    assert result.error.startswith('decode: ImageError: ')
    assert result.output is None
    assert worker.failed == 1


def test_malformed_backend_output_becomes_an_error(make_worker):
    class Truncated(FakeBackend):
        def infer(self, images, observation):
            out = super().infer(images, observation)
            out.actions = out.actions[:, :10]
            return out

    recorder = Recorder()
    worker = make_worker(Truncated(BackendSettings(kind='fake')), recorder)
    worker.submit(_obs(0))
    assert worker.wait_idle(5)
    assert recorder.results[0].error.startswith('validate: ValueError: backend output shapes')
    assert worker.failed == 1


def test_on_result_exceptions_do_not_stop_the_worker(make_worker, caplog):
    recorder = Recorder(raise_on={1})
    worker = make_worker(on_result=recorder)
    with caplog.at_level(logging.ERROR):
        for k in range(2):
            worker.submit(_obs(k))
            assert worker.wait_idle(5)
    assert len(recorder.results) == 2
    assert worker.completed == 2
    assert 'on_result raised' in caplog.text
    assert 'consumer fault' in caplog.text


def test_timings_cover_every_stage(make_worker):
    recorder = Recorder()
    worker = make_worker(on_result=recorder, fake_delay_s=0.05)
    worker.submit(_obs(0))
    assert worker.wait_idle(5)
    timings = recorder.results[0].timings
    assert list(timings) == ['queue', 'decode', 'fake_inference', 'validate', 'total']
    assert all(v >= 0 for v in timings.values())
    assert timings['fake_inference'] >= 0.05
    parts = sum(v for k, v in timings.items() if k != 'total')
    assert timings['total'] >= parts


def test_run_cycle_timings_follow_the_clock():
    ticks = itertools.count(1.0)
    worker = InferenceWorker(FakeBackend(BackendSettings(kind='fake')), CFG, Recorder(),
                             clock=lambda: next(ticks))
    result = worker.run_cycle(_obs(0), submitted=0.0)
    timings = dict(result.timings, fake_inference=None)
    assert timings == {'queue': 1.0, 'decode': 1.0, 'fake_inference': None, 'validate': 1.0,
                       'total': 6.0}


def test_stop_joins_is_idempotent_and_final(make_worker):
    recorder = Recorder()
    worker = make_worker(on_result=recorder)
    assert worker.stop() is True
    assert worker.stop() is True
    assert not worker._thread.is_alive()
    worker.submit(_obs(0))
    time.sleep(0.05)
    assert recorder.results == []
    with pytest.raises(RuntimeError, match='stopped'):
        worker.start()


def test_stop_discards_the_cycle_in_flight(make_worker):
    backend, recorder = GatedBackend(), Recorder()
    worker = make_worker(backend, recorder)
    worker.submit(_obs(0))
    assert backend.started.acquire(timeout=5)
    worker.submit(_obs(1))
    threading.Timer(0.1, backend.release.set).start()
    assert worker.stop(timeout=5) is True
    assert recorder.results == []
    assert worker.completed == 1


def test_submit_before_start_runs_once_started():
    recorder = Recorder()
    worker = InferenceWorker(FakeBackend(BackendSettings(kind='fake')), CFG, recorder)
    worker.submit(_obs(0))
    assert worker.busy
    worker.start()
    worker.start()
    try:
        assert worker.wait_idle(5)
        assert len(recorder.results) == 1
    finally:
        worker.stop()


def test_submit_does_not_block_while_inference_runs(make_worker):
    backend = GatedBackend()
    worker = make_worker(backend)
    worker.submit(_obs(0))
    assert backend.started.acquire(timeout=5)
    observations = [_obs(k) for k in range(1, 50)]
    durations = []
    for observation in observations:
        start = time.monotonic()
        worker.submit(observation)
        durations.append(time.monotonic() - start)
    backend.release.set()
    assert max(durations) < 0.05
    assert worker.dropped == 48
