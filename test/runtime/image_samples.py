"""Synthetic images and their encodings, shared by the image and frame tests."""
import io

import cv2
import numpy as np
from PIL import Image

from ar1_ros.runtime.images import EncodedImage

H, W = 48, 64


def reference(height=H, width=W):
    """A smooth colour image (chroma subsampling loses little) with a sharp corner patch."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // (width - 1), y * 255 // (height - 1),
                    (x + y) * 255 // (width + height - 2)], axis=-1).astype(np.uint8)
    rgb[:4, :4] = (250, 10, 30)
    return rgb


def raw(pixels, encoding, pad=0):
    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    padded = np.concatenate([rows, np.full((height, pad), 77, np.uint8)], axis=1)
    return EncodedImage(padded.tobytes(), encoding, False, width, height, padded.shape[1])


def yuv422(rgb, order):
    """BT.601 limited range by hand, chroma averaged over each horizontal pixel pair."""
    f = rgb.astype(np.float64)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    u = (u[:, 0::2] + u[:, 1::2]) / 2
    v = (v[:, 0::2] + v[:, 1::2]) / 2
    out = np.empty(rgb.shape[:2] + (2,))
    if order == 'uyvy':
        out[:, 0::2, 0], out[:, 1::2, 0] = u, v
        out[..., 1] = y
    else:
        out[:, 0::2, 1], out[:, 1::2, 1] = u, v
        out[..., 0] = y
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def mean_error(a, b):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def jpeg(rgb, quality=95):
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def png(rgb):
    stream = io.BytesIO()
    Image.fromarray(rgb).save(stream, format='PNG')
    return stream.getvalue()
