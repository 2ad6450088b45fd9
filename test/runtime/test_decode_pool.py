import numpy as np
import pytest

from ar1_ros.runtime import images
from ar1_ros.runtime.assembly import InputBuffers
from ar1_ros.runtime.backends import BackendSettings
from ar1_ros.runtime.backends.fake import FakeBackend
from ar1_ros.runtime.cameras import CameraSpec
from ar1_ros.runtime.config import RuntimeConfig, ValidatorConfig
from ar1_ros.runtime.decode_pool import DecodePool
from ar1_ros.runtime.images import EncodedImage, Frame
from ar1_ros.runtime.worker import InferenceWorker

from .image_samples import H, W, jpeg, reference
from .observations import make_observation


def jpeg_frame(stamp, data=None):
    return Frame(stamp, EncodedImage(data or jpeg(reference()), 'jpeg', True), (H, W))


def wait_decoded(frames, timeout=5.0):
    import time
    end = time.monotonic() + timeout
    while not all(f.decoded for f in frames) and time.monotonic() < end:
        time.sleep(0.005)
    return all(f.decoded for f in frames)


def test_prefetch_decodes_in_the_background_and_keeps_errors():
    pool = DecodePool(2)
    good = [jpeg_frame(i) for i in range(6)]
    bad = jpeg_frame(99, b'\xff\xd8 garbage' * 20)
    assert pool.prefetch([good[:3], good[3:] + [bad]]) == 7
    assert wait_decoded(good + [bad])
    assert np.array_equal(good[0].rgb(), good[5].rgb())
    with pytest.raises(images.ImageError):
        bad.rgb()
    assert pool.prefetch([good]) == 0, 'decoded frames are not queued again'
    pool.close()
    assert pool.prefetch([[jpeg_frame(7)]]) == 0, 'a closed pool does nothing'


def test_zero_threads_is_a_no_op_and_negative_is_refused():
    frame = jpeg_frame(1)
    assert DecodePool(0).prefetch([[frame]]) == 0
    assert not frame.decoded
    with pytest.raises(ValueError, match='>= 0'):
        DecodePool(-1)


def test_drop_decoded_frees_pixels_and_decodes_again(monkeypatch):
    calls = []
    real = images.decode
    monkeypatch.setattr(images, 'decode', lambda img: calls.append(1) or real(img))
    frame = jpeg_frame(5)
    first = frame.rgb()
    frame.drop_decoded()
    assert not frame.decoded
    assert np.array_equal(frame.rgb(), first)
    assert len(calls) == 2
    from_array = Frame.from_array(6, reference())
    from_array.drop_decoded()
    assert from_array.decoded, 'an array frame has no bytes to decode again'


def test_release_decoded_only_touches_frames_before_the_cut():
    name = 'camera_front_wide_120fov'
    buffers = InputBuffers(RuntimeConfig((CameraSpec(name),)))
    frames = [jpeg_frame(k * 100_000_000) for k in range(1, 6)]
    for frame in frames:
        buffers.add_frame(name, frame)
        frame.rgb()
    assert buffers.release_decoded(300_000_000) == 2
    assert [f.decoded for f in frames] == [False, False, True, True, True]


def test_worker_prefetches_on_submit():
    observation = make_observation()
    encoded = tuple(tuple(jpeg_frame(f.stamp_ns) for f in camera)
                    for camera in observation.frames)
    observation = type(observation)(observation.t0_ns, observation.camera_names, encoded,
                                    observation.history)
    results = []
    worker = InferenceWorker(FakeBackend(BackendSettings(kind='fake')), ValidatorConfig(),
                             results.append, decode_threads=2)
    worker.submit(observation)  # not started: only the decode pool works
    assert wait_decoded([f for camera in encoded for f in camera])
    worker.start()
    assert worker.wait_idle(5.0)
    worker.stop()
    assert results[0].error is None
