"""Camera images: cheap header probes in the callback, one decode per selected frame.

A subscription callback wraps the message payload in an `EncodedImage` and reads its size with
`probe_size` (a header read, never a decode), then stores a `Frame`. Only the frames that an
inference cycle selects are decoded, once each, on the worker thread, into (H, W, 3) uint8 RGB.

Raw encodings follow ROS sensor_msgs/image_encodings: 'yuv422' is UYVY byte order and
'yuv422_yuy2' is YUYV ('uyvy' and 'yuyv' are accepted aliases); YUV is converted with
OpenCV's BT.601 formulas, as cv_bridge does. Compressed images must be JPEG or PNG; the format
is recognised from the payload's magic bytes, not from the message's free-form format string.
"""
import dataclasses
import io
import threading
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from PIL import Image

SUPPORTED_ENCODINGS = ('rgb8', 'bgr8', 'mono8', 'rgba8', 'bgra8',
                       'yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv')

# Bytes per pixel and the OpenCV conversion to RGB (None: the bytes already are RGB).
_RAW_LAYOUT = {
    'rgb8': (3, None),
    'bgr8': (3, cv2.COLOR_BGR2RGB),
    'mono8': (1, cv2.COLOR_GRAY2RGB),
    'rgba8': (4, cv2.COLOR_RGBA2RGB),
    'bgra8': (4, cv2.COLOR_BGRA2RGB),
    'yuv422': (2, cv2.COLOR_YUV2RGB_UYVY),
    'uyvy': (2, cv2.COLOR_YUV2RGB_UYVY),
    'yuv422_yuy2': (2, cv2.COLOR_YUV2RGB_YUY2),
    'yuyv': (2, cv2.COLOR_YUV2RGB_YUY2),
}

_JPEG_MAGIC = b'\xff\xd8\xff'
_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
# A complete stream ends with its end marker; encoders may pad a few bytes after it.
_TRAILER_WINDOW = 32
# Decode straight to RGB where OpenCV can (>= 4.11), saving a colour conversion pass.
_IMREAD_RGB = getattr(cv2, 'IMREAD_COLOR_RGB', None)


class ImageError(ValueError):
    """An image that cannot be used: unsupported encoding, wrong size, corrupt payload."""


@dataclasses.dataclass(frozen=True)
class EncodedImage:
    """An image payload as received, not decoded.

    data: the bytes (bytes, memoryview or 1-D uint8 array; not copied). encoding: the raw
    encoding (sensor_msgs/Image) or the CompressedImage format string (e.g. 'jpeg',
    'rgb8; jpeg compressed bgr8'). compressed: which of the two. width, height, step: pixels,
    rows and bytes per row of a raw image (0 for compressed ones).
    """

    data: Union[bytes, memoryview, np.ndarray]
    encoding: str
    compressed: bool
    width: int = 0
    height: int = 0
    step: int = 0


def _buffer(data) -> np.ndarray:
    """Return the payload as a 1-D uint8 array viewing the same memory."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
    return np.frombuffer(data, dtype=np.uint8)


def _check_raw(img: EncodedImage, size: int) -> int:
    """Validate a raw image's geometry against its `size` bytes; return its bytes per pixel."""
    if img.encoding not in _RAW_LAYOUT:
        raise ImageError(f'unsupported encoding {img.encoding!r}; supported: '
                         f'{", ".join(SUPPORTED_ENCODINGS)}')
    bpp = _RAW_LAYOUT[img.encoding][0]
    if img.width <= 0 or img.height <= 0:
        raise ImageError(f'empty image {img.height}x{img.width}')
    if bpp == 2 and img.width % 2:
        raise ImageError(f'{img.encoding} needs an even width, got {img.width}')
    if img.step < img.width * bpp:
        raise ImageError(f'step {img.step} < width {img.width} x {bpp} bytes per pixel')
    if size < img.step * img.height:
        raise ImageError(f'size mismatch: {size} bytes < step {img.step} x height '
                         f'{img.height} ({img.encoding})')
    return bpp


def _compressed_kind(buf: np.ndarray) -> str:
    """Return 'jpeg' or 'png' from the payload's magic bytes, else raise ImageError."""
    head = buf[:8].tobytes()
    if head.startswith(_JPEG_MAGIC):
        return 'jpeg'
    if head.startswith(_PNG_MAGIC):
        return 'png'
    raise ImageError(f'compressed image is neither JPEG nor PNG (starts with {head[:4].hex()})')


def probe_size(img: EncodedImage) -> Tuple[int, int]:
    """Return (height, width) of `img` without decoding it.

    Raw images: checks the encoding, step and payload size. Compressed images: reads the JPEG
    or PNG header only. Raises ImageError when the image cannot be used.
    """
    buf = _buffer(img.data)
    if not img.compressed:
        _check_raw(img, buf.size)
        return img.height, img.width
    kind = _compressed_kind(buf)
    try:
        with Image.open(io.BytesIO(buf), formats=('JPEG', 'PNG')) as header:
            width, height = header.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f'unreadable {kind.upper()} header: {exc}') from exc
    if width <= 0 or height <= 0:
        raise ImageError(f'empty compressed image {height}x{width}')
    return height, width


def _decode_raw(img: EncodedImage, buf: np.ndarray, owned: bool) -> np.ndarray:
    """Return (H, W, 3) uint8 RGB of a raw image, honouring row padding (`step`).

    Rows are viewed in place; rgb8 is copied once unless `owned` (immutable bytes) and unpadded,
    every other encoding is converted by OpenCV into a new array.
    """
    bpp, conversion = _RAW_LAYOUT[img.encoding]
    rows = buf[:img.step * img.height].reshape(img.height, img.step)[:, :img.width * bpp]
    pixels = rows.reshape(img.height, img.width, bpp) if bpp > 1 else rows
    if conversion is not None:
        return cv2.cvtColor(pixels, conversion)
    if owned and pixels.flags.c_contiguous:
        return pixels
    return np.array(pixels, order='C')


def _decode_compressed(img: EncodedImage, buf: np.ndarray) -> np.ndarray:
    """Return (H, W, 3) uint8 RGB of a JPEG or PNG payload; corrupt or truncated -> ImageError."""
    kind = _compressed_kind(buf)
    tail = buf[-_TRAILER_WINDOW:].tobytes()
    trailer = b'\xff\xd9' if kind == 'jpeg' else b'IEND'
    if trailer not in tail:
        raise ImageError(f'truncated {kind.upper()}: no end marker ({len(buf)} bytes)')
    try:
        if _IMREAD_RGB is not None:
            rgb = cv2.imdecode(buf, _IMREAD_RGB)
        else:
            bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
            rgb = None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    except cv2.error as exc:
        raise ImageError(f'corrupt {kind.upper()}: {exc}') from exc
    if rgb is None:
        raise ImageError(f'corrupt {kind.upper()}: decoder failed ({len(buf)} bytes, '
                         f'format {img.encoding!r})')
    return rgb


def decode(img: EncodedImage) -> np.ndarray:
    """Return the image as a C-contiguous (H, W, 3) uint8 RGB array owned by the result.

    The payload is never aliased unless it is immutable `bytes`, because a message buffer may
    be reused after the callback. Raises ImageError for unusable images.
    """
    buf = _buffer(img.data)
    if img.compressed:
        return _decode_compressed(img, buf)
    _check_raw(img, buf.size)
    return _decode_raw(img, buf, owned=isinstance(img.data, bytes))


def _read_only(rgb: np.ndarray) -> np.ndarray:
    """Return a read-only view of `rgb`: a cached frame is shared by threads, never mutated."""
    view = rgb.view()
    view.flags.writeable = False
    return view


class Frame:
    """One camera image at `stamp_ns` with its probed `size` (height, width); decoded lazily.

    `rgb()` decodes at most once, whichever thread asks first; the array (or the ImageError)
    is cached and returned (re-raised) to every later caller. The returned array is read-only.
    """

    __slots__ = ('stamp_ns', 'size', 'encoded', '_lock', '_rgb', '_error')

    def __init__(self, stamp_ns: int, encoded: Optional[EncodedImage], size: Tuple[int, int]):
        self.stamp_ns = int(stamp_ns)
        self.size = (int(size[0]), int(size[1]))
        self.encoded = encoded
        self._lock = threading.Lock()
        self._rgb: Optional[np.ndarray] = None
        self._error: Optional[ImageError] = None

    @classmethod
    def from_array(cls, stamp_ns: int, rgb: np.ndarray) -> 'Frame':
        """Return an already decoded frame of an (H, W, 3) uint8 RGB array (not copied)."""
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ImageError(f'expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}')
        frame = cls(stamp_ns, None, rgb.shape[:2])
        frame._rgb = _read_only(np.ascontiguousarray(rgb))
        return frame

    @property
    def decoded(self) -> bool:
        """Whether the image has been decoded (successfully or not)."""
        return self._rgb is not None or self._error is not None

    def rgb(self) -> np.ndarray:
        """Return the (H, W, 3) uint8 RGB image, decoding it on the first call."""
        with self._lock:
            if self._rgb is None and self._error is None:
                self._decode_locked()
            if self._error is not None:
                raise self._error
            return self._rgb

    def drop_decoded(self) -> None:
        """Free the decoded pixels of a frame decoded from bytes (it decodes again if asked).

        Frames stay buffered for seconds of context but are selected only while they lie
        within the grid of a future t0; dropping their pixels earlier keeps memory at a few
        decoded frames per camera instead of the whole buffer (about 6 MB each at 1080p).
        """
        if self.encoded is None:
            return
        with self._lock:
            self._rgb = None

    def _decode_locked(self) -> None:
        try:
            rgb = decode(self.encoded)
            if rgb.shape[:2] != self.size:
                raise ImageError(f'decoded size {rgb.shape[0]}x{rgb.shape[1]} differs from '
                                 f'the probed {self.size[0]}x{self.size[1]}')
            self._rgb = _read_only(rgb)
        except ImageError as exc:
            self._error = exc

    def __repr__(self) -> str:
        state = 'decoded' if self.decoded else 'encoded'
        return f'Frame(stamp_ns={self.stamp_ns}, size={self.size}, {state})'


def stack_frames(frames: Sequence[Sequence[Frame]]) -> np.ndarray:
    """Return (C, F, H, W, 3) uint8 of per-camera frame lists (C cameras, F frames each).

    Decodes each frame (once; see Frame.rgb). Raises ImageError when the cameras have
    different frame counts or the images different sizes, naming the camera and frame index.
    """
    if not frames or not frames[0]:
        raise ImageError('no frames to stack')
    count, size = len(frames[0]), frames[0][0].size
    for cam, cam_frames in enumerate(frames):
        if len(cam_frames) != count:
            raise ImageError(f'camera {cam}: {len(cam_frames)} frames, camera 0 has {count}')
        for index, frame in enumerate(cam_frames):
            if frame.size != size:
                raise ImageError(f'camera {cam} frame {index}: size {frame.size[0]}x'
                                 f'{frame.size[1]} differs from {size[0]}x{size[1]}')
    out = np.empty((len(frames), count, size[0], size[1], 3), dtype=np.uint8)
    for cam, cam_frames in enumerate(frames):
        for index, frame in enumerate(cam_frames):
            out[cam, index] = frame.rgb()
    return out
