import threading

import numpy as np
import pytest

from ar1_ros.runtime import images
from ar1_ros.runtime.images import EncodedImage, Frame, ImageError, stack_frames

from .image_samples import H, W, jpeg, raw, reference


def test_frame_decodes_once_across_threads(monkeypatch):
    calls = []
    real = images.decode

    def counting(img):
        calls.append(1)
        return real(img)
    monkeypatch.setattr(images, 'decode', counting)
    frame = Frame(7, EncodedImage(jpeg(reference()), 'jpeg', True), (H, W))
    assert not frame.decoded
    barrier, results = threading.Barrier(8), []

    def worker():
        barrier.wait()
        results.append(frame.rgb())
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert frame.decoded
    assert all(r is results[0] for r in results)
    assert not results[0].flags.writeable


def test_frame_caches_the_error(monkeypatch):
    calls = []

    def failing(img):
        calls.append(1)
        raise ImageError('corrupt JPEG: test')
    monkeypatch.setattr(images, 'decode', failing)
    frame = Frame(1, EncodedImage(b'\xff\xd8\xff', 'jpeg', True), (H, W))
    for _ in range(3):
        with pytest.raises(ImageError, match='corrupt JPEG'):
            frame.rgb()
    assert len(calls) == 1
    assert frame.decoded


def test_frame_rejects_a_size_that_disagrees_with_the_probe():
    frame = Frame(1, raw(reference(), 'rgb8'), (H + 1, W))
    with pytest.raises(ImageError, match='differs from the probed'):
        frame.rgb()


def test_frame_from_array():
    rgb = reference()
    frame = Frame.from_array(-1, rgb)
    assert frame.decoded
    assert frame.size == (H, W)
    assert frame.stamp_ns == -1
    np.testing.assert_array_equal(frame.rgb(), rgb)
    assert rgb.flags.writeable  # the caller's array keeps its flags
    with pytest.raises(ImageError, match='expected'):
        Frame.from_array(0, np.zeros((H, W), np.uint8))
    with pytest.raises(ImageError, match='expected'):
        Frame.from_array(0, np.zeros((H, W, 3), np.float32))


def test_stack_frames_shape_and_order():
    rgbs = [[np.full((H, W, 3), 10 * c + f, np.uint8) for f in range(4)] for c in range(3)]
    frames = [[Frame.from_array(f, rgb) for f, rgb in enumerate(cam)] for cam in rgbs]
    frames[1][2] = Frame(2, raw(rgbs[1][2], 'rgb8', pad=2), (H, W))
    out = stack_frames(frames)
    assert out.shape == (3, 4, H, W, 3)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.array(rgbs))
    assert out.flags.writeable


def test_stack_frames_size_mismatch_names_the_camera():
    ok = Frame.from_array(0, np.zeros((H, W, 3), np.uint8))
    odd = Frame.from_array(0, np.zeros((H, W + 2, 3), np.uint8))
    with pytest.raises(ImageError, match=rf'camera 1 frame 1: size {H}x{W + 2} differs from '
                                         rf'{H}x{W}'):
        stack_frames([[ok, ok], [ok, odd]])
    with pytest.raises(ImageError, match='camera 1: 1 frames'):
        stack_frames([[ok, ok], [ok]])
    with pytest.raises(ImageError, match='no frames'):
        stack_frames([])


def test_stack_frames_propagates_decode_errors():
    bad = Frame(0, EncodedImage(b'\xff\xd8\xff\x00\x01', 'jpeg', True), (H, W))
    ok = Frame.from_array(0, np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ImageError, match='truncated JPEG'):
        stack_frames([[ok], [bad]])
