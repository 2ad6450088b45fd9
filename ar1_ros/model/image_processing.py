"""Qwen-VL image preprocessing for AR1: smart resize, normalisation and patch flattening.

A torch-only re-implementation of what the official AR1 pipeline gets from transformers'
`Qwen2VLImageProcessorFast` (torchvision backend), so the node needs neither torchvision nor PIL:

* resize to `smart_resize(h, w)` (multiples of patch_size * merge_size, pixel count inside
  [min_pixels, max_pixels]) with antialiased bicubic interpolation, the way torchvision resizes
  uint8 tensors: on CPU tensors (the official pipeline preprocesses on CPU) torch's native uint8
  kernel (`resize_kernel='uint8'`, default); on GPU tensors float32 interpolate, clamp to
  0..255 and round (`resize_kernel='float32'`, which torch's CPU-only uint8 kernel leaves as the
  only choice there, so 'uint8' means 'float32' on any other device, as in torchvision). The two
  differ by at most 1 grey level at the release ratio (1080x1920 -> 320x576), but by up to ~20
  levels on pixel noise at ratios near 1 (the uint8 kernel stays within 1-2 levels of PIL). No
  resize when the size already fits;
* normalise `((u8 / 255) - mean) / std` in float32 (what the slow processor computes and what
  the golden fixtures hold bitwise; the fast processor's fused `(u8 - 127.5) / 127.5` differs
  by at most 6e-8);
* flatten into rows of `[C][T][p][p]` (the still image repeated over T = temporal_patch_size),
  ordered per image by 2x2 merge window: for each merged cell (i, j) the patches (2i, 2j),
  (2i, 2j + 1), (2i + 1, 2j), (2i + 1, 2j + 1).

Every step runs on the device of the input tensor (numpy input: the CPU) and the outputs stay
there, so a caller can copy uint8 frames to the GPU and preprocess them there.
"""
import json
import math
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple, Union
import warnings

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the usual torch alias)

# transformers' Qwen2-VL defaults, used for keys a preprocessor_config.json leaves out.
_DEFAULTS = {
    'patch_size': 14,
    'temporal_patch_size': 2,
    'merge_size': 2,
    'image_mean': (0.48145466, 0.4578275, 0.40821073),
    'image_std': (0.26862954, 0.26130258, 0.27577711),
    'rescale_factor': 1 / 255,
    'min_pixels': 56 * 56,
    'max_pixels': 28 * 28 * 1280,
}

ImageBatch = Union[np.ndarray, torch.Tensor]


def _pixel_limits(config: Mapping[str, Any]) -> Tuple[int, int]:
    """Return (min_pixels, max_pixels) of a preprocessor config dict.

    Top-level `min_pixels`/`max_pixels` keys win over `size`, as in transformers, where they
    overwrite `size['shortest_edge']`/`size['longest_edge']` for backward compatibility.
    """
    size = dict(config.get('size') or {})
    lo = size.get('shortest_edge', size.get('min_pixels', _DEFAULTS['min_pixels']))
    hi = size.get('longest_edge', size.get('max_pixels', _DEFAULTS['max_pixels']))
    lo = config.get('min_pixels', lo)
    hi = config.get('max_pixels', hi)
    return int(lo), int(hi)


class ImageProcessor:
    """Turn uint8 RGB images into Qwen-VL `pixel_values` and `image_grid_thw`.

    All images of one call share one size (AR1 cameras do); one call handles N of them at once.
    """

    def __init__(self, patch_size: int = 16, temporal_patch_size: int = 2, merge_size: int = 2,
                 image_mean=(0.5, 0.5, 0.5), image_std=(0.5, 0.5, 0.5),
                 rescale_factor: float = 1 / 255, min_pixels: int = 163840,
                 max_pixels: int = 196608, resize_kernel: str = 'uint8'):
        """Store the settings (defaults: the AR1 release, Qwen3-VL with 163840..196608 pixels).

        image_mean / image_std: 3 floats (RGB); rescale_factor: 1/255 for uint8 input;
        resize_kernel: 'uint8' or 'float32' (see the module docstring).
        """
        if min_pixels > max_pixels:
            raise ValueError(f'min_pixels {min_pixels} > max_pixels {max_pixels}')
        if resize_kernel not in ('uint8', 'float32'):
            raise ValueError(f"resize_kernel must be 'uint8' or 'float32', got {resize_kernel!r}")
        self.resize_kernel = resize_kernel
        self.patch_size = int(patch_size)
        self.temporal_patch_size = int(temporal_patch_size)
        self.merge_size = int(merge_size)
        self.min_pixels = int(min_pixels)
        self.max_pixels = int(max_pixels)
        self.rescale_factor = float(rescale_factor)
        self.image_mean = torch.tensor(image_mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.image_std = torch.tensor(image_std, dtype=torch.float32).view(1, 3, 1, 1)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], min_pixels: Optional[int] = None,
                    max_pixels: Optional[int] = None,
                    resize_kernel: str = 'uint8') -> 'ImageProcessor':
        """Build from a Qwen-VL `preprocessor_config.json` dict.

        Pixel limits come from `size: {shortest_edge, longest_edge}` or `min_pixels/max_pixels`;
        the arguments override both (AR1 passes its config's min_pixels/max_pixels).
        """
        lo, hi = _pixel_limits(config)
        keys = ('patch_size', 'temporal_patch_size', 'merge_size', 'image_mean', 'image_std',
                'rescale_factor')
        kwargs = {k: config.get(k, _DEFAULTS[k]) for k in keys}
        return cls(**kwargs, min_pixels=lo if min_pixels is None else min_pixels,
                   max_pixels=hi if max_pixels is None else max_pixels,
                   resize_kernel=resize_kernel)

    @classmethod
    def from_folder(cls, path: Union[str, Path], min_pixels: Optional[int] = None,
                    max_pixels: Optional[int] = None,
                    resize_kernel: str = 'uint8') -> 'ImageProcessor':
        """Build from `path/preprocessor_config.json` (a Qwen-VL model folder)."""
        config = json.loads((Path(path) / 'preprocessor_config.json').read_text())
        return cls.from_config(config, min_pixels=min_pixels, max_pixels=max_pixels,
                               resize_kernel=resize_kernel)

    @property
    def factor(self) -> int:
        """Side multiple of a resized image: patch_size * merge_size (32 for Qwen3-VL)."""
        return self.patch_size * self.merge_size

    def smart_resize(self, height: int, width: int) -> Tuple[int, int]:
        """Return the (height, width) the Qwen rule resizes an image of this size to.

        Both sides become multiples of `factor`, the pixel count lands in
        [min_pixels, max_pixels] and the aspect ratio is kept as far as possible; e.g.
        1080x1920 -> 320x576 with the AR1 limits. Raises ValueError for ratios over 200.
        """
        if min(height, width) <= 0 or max(height, width) / min(height, width) > 200:
            raise ValueError(f'unsupported image size {height}x{width} (aspect ratio > 200)')
        f = self.factor
        # Python's round() (half to even) on purpose: it is what the reference uses.
        h_bar, w_bar = round(height / f) * f, round(width / f) * f
        if h_bar * w_bar > self.max_pixels:
            beta = math.sqrt(height * width / self.max_pixels)
            h_bar = max(f, math.floor(height / beta / f) * f)
            w_bar = max(f, math.floor(width / beta / f) * f)
        elif h_bar * w_bar < self.min_pixels:
            beta = math.sqrt(self.min_pixels / (height * width))
            h_bar = math.ceil(height * beta / f) * f
            w_bar = math.ceil(width * beta / f) * f
        return h_bar, w_bar

    def tokens_per_image(self, height: int, width: int) -> int:
        """Return the number of `<|image_pad|>` tokens of one image of this (input) size."""
        h, w = self.smart_resize(height, width)
        return (h // self.patch_size) * (w // self.patch_size) // self.merge_size ** 2

    def __call__(self, images: ImageBatch) -> Tuple[torch.Tensor, torch.Tensor]:
        """Preprocess N images.

        images: uint8 RGB, shape (N, H, W, 3) (channels last), numpy array or torch tensor on
        any device. Returns (pixel_values float32 (N * gh * gw, 3 * T * p * p), image_grid_thw
        int64 (N, 3) with rows (1, gh, gw)) on the images' device (numpy: CPU), where
        (gh, gw) = smart_resize(H, W) // patch_size.
        """
        u8 = _as_uint8_nhwc(images).permute(0, 3, 1, 2)  # (N, 3, H, W), a view
        n, _, height, width = u8.shape
        new_h, new_w = self.smart_resize(height, width)
        x = self._normalize(_resize(u8, new_h, new_w, self.resize_kernel))
        p, m, t = self.patch_size, self.merge_size, self.temporal_patch_size
        gh, gw = new_h // p, new_w // p
        # (N, C, gh/m, m, p, gw/m, m, p) -> (N, gh/m, gw/m, m, m, C, p, p): merge-window order.
        x = x.reshape(n, 3, gh // m, m, p, gw // m, m, p).permute(0, 2, 5, 3, 6, 1, 4, 7)
        # A still image fills all T temporal slots; expand is free, the reshape copies once.
        x = x.unsqueeze(6).expand(*x.shape[:6], t, p, p)
        pixel_values = x.reshape(n * gh * gw, 3 * t * p * p)
        grid = torch.tensor([[1, gh, gw]], dtype=torch.int64, device=u8.device).repeat(n, 1)
        return pixel_values, grid

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Map float32 0..255 values (N, 3, H, W) to ((x / 255) - mean) / std, float32."""
        # Divide by 255 rather than multiply by 1/255: that is the bitwise golden reference.
        x = x / (1.0 / self.rescale_factor)
        mean, std = self.image_mean.to(x.device), self.image_std.to(x.device)  # no-op on CPU
        return (x - mean) / std


def _as_uint8_nhwc(images: ImageBatch) -> torch.Tensor:
    """Return images as a uint8 torch tensor (N, H, W, 3) on their own device (numpy: CPU).

    ValueError on anything else.
    """
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise ValueError(f'images must be uint8, got numpy {images.dtype}')
        with warnings.catch_warnings():
            # Read-only buffers (e.g. np.frombuffer on a message) are fine: nothing writes here.
            warnings.simplefilter('ignore', UserWarning)
            images = torch.from_numpy(np.ascontiguousarray(images))
    elif not isinstance(images, torch.Tensor):
        raise ValueError(f'images must be a numpy array or torch tensor, got {type(images)}')
    if images.dtype != torch.uint8:
        raise ValueError(f'images must be uint8, got {images.dtype}')
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
        raise ValueError(f'images must be (N, H, W, 3) RGB with N >= 1, got {tuple(images.shape)}')
    return images


def _resize(u8: torch.Tensor, height: int, width: int, kernel: str,
            batched: Optional[bool] = None) -> torch.Tensor:
    """Resize uint8 (N, 3, H, W) to float32 (N, 3, height, width) holding integers 0..255.

    Bicubic with antialias, align_corners=False, as torchvision's `resize` of a uint8 tensor:
    'uint8' calls torch's native uint8 kernel (fixed point, close to PIL), which torchvision uses
    for CPU tensors, so the official pipeline (it preprocesses on CPU) gets exactly this;
    'float32' is torchvision's path for GPU tensors: float32 interpolate, clamp to 0..255, round
    half to even. Torch has the uint8 kernel on the CPU only, so any other device runs 'float32'.
    batched: 'float32' in one interpolate call over all N images (default on non-CPU devices)
    rather than image by image (default on the CPU); both give the same values. The result is
    allocated on u8's device. Values stay float (exact integers) because they are normalised next.
    """
    if u8.shape[-2:] == (height, width):
        return u8.float()
    size = (height, width)
    if kernel == 'uint8' and u8.device.type == 'cpu':
        return F.interpolate(u8, size=size, mode='bicubic', antialias=True,
                             align_corners=False).float()
    n, device = u8.shape[0], u8.device
    if batched is None:
        batched = device.type != 'cpu'
    if batched:
        # A GPU runs all images in one launch; copy_ converts and makes the channels-last view
        # contiguous in one pass, the layout the per-image path interpolates too.
        frames = torch.empty(u8.shape, dtype=torch.float32, device=device).copy_(u8)
        out = F.interpolate(frames, size=size, mode='bicubic', antialias=True,
                            align_corners=False)
        return out.clamp_(0, 255).round_()
    out = torch.empty((n, 3, height, width), dtype=torch.float32, device=device)
    # Image by image into one reused contiguous buffer (copy_ converts and transposes in one
    # pass): about 2x faster on CPU than one batched call on a 16-image float copy.
    buf = torch.empty((1, *u8.shape[1:]), dtype=torch.float32, device=device)
    for i in range(n):
        out[i:i + 1] = F.interpolate(buf.copy_(u8[i:i + 1]), size=size, mode='bicubic',
                                     antialias=True, align_corners=False)
    return out.clamp_(0, 255).round_()
