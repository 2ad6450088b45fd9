
import cv2
import numpy as np
from PIL import Image
import pytest

from ar1_ros.runtime import images
from ar1_ros.runtime.images import EncodedImage, ImageError, decode, probe_size

from .image_samples import H, W, jpeg, mean_error, png, raw, reference, yuv422


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
@pytest.mark.parametrize('pad', [0, 5])
def test_lossless_raw_encodings_decode_exactly(encoding, pad):
    rgb = reference()
    pixels = {'rgb8': rgb, 'bgr8': rgb[..., ::-1],
              'rgba8': np.dstack([rgb, np.full((H, W), 9, np.uint8)]),
              'bgra8': np.dstack([rgb[..., ::-1], np.full((H, W), 9, np.uint8)])}[encoding]
    img = raw(pixels, encoding, pad)
    assert probe_size(img) == (H, W)
    out = decode(img)
    assert out.shape == (H, W, 3)
    assert out.dtype == np.uint8
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize('pad', [0, 3])
def test_mono8_replicates_grey(pad):
    grey = reference()[..., 1]
    out = decode(raw(grey, 'mono8', pad))
    np.testing.assert_array_equal(out, np.dstack([grey, grey, grey]))


@pytest.mark.parametrize(('encoding', 'order'), [
    ('yuv422', 'uyvy'), ('uyvy', 'uyvy'), ('yuv422_yuy2', 'yuyv'), ('yuyv', 'yuyv')])
@pytest.mark.parametrize('pad', [0, 4])
def test_yuv422_decodes_close_to_reference(encoding, order, pad):
    rgb = reference()
    out = decode(raw(yuv422(rgb, order), encoding, pad))
    assert out.shape == (H, W, 3)
    assert mean_error(out, rgb) <= 3.0
    # The other byte order is far off: the test can tell the two layouts apart.
    other = 'yuyv' if order == 'uyvy' else 'uyvy'
    assert mean_error(decode(raw(yuv422(rgb, other), encoding, pad)), rgb) > 20


def test_raw_decode_owns_its_data():
    rgb = reference()
    buffer = np.frombuffer(bytearray(rgb.tobytes()), dtype=np.uint8)
    out = decode(EncodedImage(buffer, 'rgb8', False, W, H, W * 3))
    buffer[:] = 0  # the middleware reuses the message buffer
    np.testing.assert_array_equal(out, rgb)


def test_unpadded_rgb8_bytes_are_viewed_without_copy():
    payload = reference().tobytes()
    out = decode(EncodedImage(payload, 'rgb8', False, W, H, W * 3))
    assert not out.flags.owndata
    assert not out.flags.writeable
    assert np.shares_memory(out, np.frombuffer(payload, np.uint8))


def test_short_data_is_rejected():
    img = raw(reference(), 'rgb8')
    short = EncodedImage(img.data[:-1], 'rgb8', False, W, H, W * 3)
    with pytest.raises(ImageError, match='size mismatch'):
        probe_size(short)
    with pytest.raises(ImageError, match='size mismatch'):
        decode(short)


@pytest.mark.parametrize(('width', 'height', 'step', 'match'), [
    (W, H, W * 3 - 1, 'step'), (0, H, 0, 'empty'), (W, 0, W * 3, 'empty')])
def test_bad_geometry_is_rejected(width, height, step, match):
    with pytest.raises(ImageError, match=match):
        probe_size(EncodedImage(bytes(H * W * 3), 'rgb8', False, width, height, step))


def test_odd_width_yuv_is_rejected():
    with pytest.raises(ImageError, match='even width'):
        probe_size(EncodedImage(bytes(2 * 3 * 4), 'yuv422', False, 3, 4, 6))


@pytest.mark.parametrize('encoding', ['16UC1', 'bayer_rggb8', 'RGB8'])
def test_unsupported_encoding_is_named(encoding):
    img = EncodedImage(bytes(H * W * 4), encoding, False, W, H, W * 4)
    with pytest.raises(ImageError, match=f"unsupported encoding '{encoding}'"):
        probe_size(img)
    with pytest.raises(ImageError, match=encoding):
        decode(img)


def test_jpeg_probe_and_decode():
    rgb = reference(480, 640)
    img = EncodedImage(np.frombuffer(jpeg(rgb), np.uint8), 'rgb8; jpeg compressed bgr8', True)
    assert probe_size(img) == (480, 640)
    out = decode(img)
    assert out.shape == (480, 640, 3)
    assert out.dtype == np.uint8
    assert mean_error(out, rgb) <= 3.0


def test_png_decodes_exactly():
    rgb = reference()
    img = EncodedImage(png(rgb), 'png', True)
    assert probe_size(img) == (H, W)
    np.testing.assert_array_equal(decode(img), rgb)


def test_probe_reads_headers_without_decoding(monkeypatch):
    jpeg_img = EncodedImage(jpeg(reference()), 'jpeg', True)
    png_img = EncodedImage(png(reference(30, 20)), 'png', True)

    def forbidden(*args, **kwargs):
        raise AssertionError('probe_size decoded the image')
    monkeypatch.setattr(cv2, 'imdecode', forbidden)
    monkeypatch.setattr(Image.Image, 'load', forbidden)
    monkeypatch.setattr(images, 'decode', forbidden)
    assert probe_size(jpeg_img) == (H, W)
    assert probe_size(png_img) == (30, 20)


def test_jpeg_of_full_hd_is_one_imdecode(monkeypatch):
    payload = jpeg(reference(1080, 1920), quality=80)
    calls = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, 'imdecode', lambda *a: calls.append(1) or real(*a))
    out = decode(EncodedImage(payload, 'jpeg', True))
    assert out.shape == (1080, 1920, 3)
    assert out.flags.c_contiguous
    assert len(calls) == 1


def test_random_bytes_are_not_an_image():
    noise = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    with pytest.raises(ImageError, match='neither JPEG nor PNG'):
        probe_size(EncodedImage(noise, 'jpeg', True))
    with pytest.raises(ImageError):
        decode(EncodedImage(noise, 'jpeg', True))


def test_corrupt_jpeg_body_is_rejected():
    payload = jpeg(reference())
    noise = np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    corrupt = b'\xff\xd8\xff' + noise + b'\xff\xd9'
    with pytest.raises(ImageError, match='unreadable JPEG header'):
        probe_size(EncodedImage(corrupt, 'jpeg', True))
    with pytest.raises(ImageError, match='corrupt JPEG'):
        decode(EncodedImage(corrupt, 'jpeg', True))
    assert decode(EncodedImage(payload, 'jpeg', True)).shape == (H, W, 3)


@pytest.mark.parametrize('make', [jpeg, png])
def test_truncated_payload_is_rejected(make):
    payload = make(reference(120, 160))
    half = payload[:len(payload) // 2]
    with pytest.raises(ImageError, match='truncated'):
        decode(EncodedImage(half, 'jpeg', True))


def test_grey_jpeg_and_other_png_flavours_become_rgb8():
    rgb = reference()
    grey = rgb[..., 1]
    ok, grey_jpeg = cv2.imencode('.jpg', grey, [cv2.IMWRITE_JPEG_QUALITY, 98])
    assert ok
    out = decode(EncodedImage(grey_jpeg.tobytes(), 'mono8; jpeg compressed mono8', True))
    assert out.shape == (H, W, 3)
    assert mean_error(out, np.dstack([grey] * 3)) <= 2.0
    ok, deep_png = cv2.imencode('.png', grey.astype(np.uint16) * 257)
    assert ok
    np.testing.assert_array_equal(decode(EncodedImage(deep_png.tobytes(), 'png', True)),
                                  np.dstack([grey] * 3))
    rgba = np.dstack([rgb, np.full((H, W), 100, np.uint8)])
    np.testing.assert_array_equal(decode(EncodedImage(png(rgba), 'png', True)), rgb)
