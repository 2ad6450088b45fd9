"""ImageProcessor: golden pixel_values, smart resize, parity with transformers' PIL processor."""
import json

import numpy as np
import pytest
import torch
from transformers.models.qwen2_vl import image_processing_pil_qwen2_vl as hf_qwen

from ar1_ros.model.image_processing import ImageProcessor, _resize

from .golden import BASE_VLM, CASES, load

TINY = {'min_pixels': 4096, 'max_pixels': 16384}  # the fixture checkpoint's config.json
RELEASE = {'min_pixels': 163840, 'max_pixels': 196608}
LEVEL = 1 / 127.5  # one uint8 grey level after ((u8 / 255) - 0.5) / 0.5


def _config() -> dict:
    return json.loads((BASE_VLM / 'preprocessor_config.json').read_text())


def _scene(h: int, w: int, n: int = 1, seed: int = 0) -> np.ndarray:
    """Smooth shading, hard-edged blocks and mild sensor noise: (n, h, w, 3) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for i in range(n):
        img = 110 + 70 * (np.sin(xx / 41 + i) * np.cos(yy / 29))[..., None]
        img = img + np.array([0, 15, -15])
        img[((yy // 60 + xx // 90 + i) % 4) == 0] = 230
        out.append(np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8))
    return np.stack(out)


def _hf(images: np.ndarray, limits: dict) -> tuple:
    kwargs = {k: v for k, v in _config().items() if k not in ('processor_class',
                                                              'image_processor_type')}
    out = hf_qwen.Qwen2VLImageProcessorPil(**kwargs, **limits)(images=list(images),
                                                               return_tensors='pt')
    return out['pixel_values'], out['image_grid_thw']


@pytest.mark.parametrize('kernel', ['uint8', 'float32'])
@pytest.mark.parametrize('name', CASES)
def test_golden_pixel_values(name, kernel):
    _, tensors = load(f'cases/{name}')
    frames = tensors['inputs/image_frames'].flatten(0, 1).permute(0, 2, 3, 1)  # (16, H, W, 3)
    proc = ImageProcessor.from_folder(BASE_VLM, resize_kernel=kernel, **TINY)
    pixels, grid = proc(frames)
    assert pixels.dtype == torch.float32
    assert grid.dtype == torch.int64
    torch.testing.assert_close(pixels, tensors['inputs/pixel_values'], atol=1e-6, rtol=0)
    assert torch.equal(pixels, tensors['inputs/pixel_values'])  # bitwise, in fact
    assert torch.equal(grid, tensors['inputs/image_grid_thw'])
    # numpy input gives the same
    assert torch.equal(proc(frames.numpy())[0], pixels)


def test_config_parsing():
    proc = ImageProcessor.from_folder(BASE_VLM)
    assert (proc.min_pixels, proc.max_pixels) == (65536, 16777216)  # size: shortest/longest
    assert (proc.patch_size, proc.temporal_patch_size, proc.merge_size) == (16, 2, 2)
    assert proc.factor == 32
    assert proc.resize_kernel == 'uint8'
    proc = ImageProcessor.from_folder(BASE_VLM, **RELEASE)
    assert (proc.min_pixels, proc.max_pixels) == (163840, 196608)
    legacy = {'min_pixels': 3136, 'max_pixels': 12845056, 'patch_size': 14}
    proc = ImageProcessor.from_config(legacy)
    assert (proc.min_pixels, proc.max_pixels, proc.patch_size) == (3136, 12845056, 14)
    both = dict(_config(), min_pixels=100, max_pixels=200)  # top-level keys win, as in HF
    assert (ImageProcessor.from_config(both).min_pixels,
            ImageProcessor.from_config(both).max_pixels) == (100, 200)
    torch.testing.assert_close(ImageProcessor.from_config({}).image_std.flatten(),
                               torch.tensor([0.26862954, 0.26130258, 0.27577711]))


def test_smart_resize_release_and_reference():
    proc = ImageProcessor(**RELEASE)
    assert proc.smart_resize(1080, 1920) == (320, 576)
    assert proc.tokens_per_image(1080, 1920) == 180
    assert proc.smart_resize(320, 576) == (320, 576)
    tiny = ImageProcessor(**TINY)
    assert tiny.smart_resize(64, 128) == (64, 128)
    assert tiny.tokens_per_image(64, 128) == 8
    for limits in (RELEASE, TINY, {'min_pixels': 65536, 'max_pixels': 16777216}):
        proc = ImageProcessor(**limits)
        for h, w in [(1080, 1920), (720, 1280), (100, 150), (48, 2000), (33, 31), (1207, 803)]:
            assert proc.smart_resize(h, w) == hf_qwen.smart_resize(h, w, 32, **limits), (h, w)
    with pytest.raises(ValueError, match='aspect ratio'):
        proc.smart_resize(10, 2500)


def test_release_resize_shapes_and_values():
    base = _scene(1080, 1920)[0]
    images = np.stack([np.roll(base, 97 * i, axis=1) for i in range(16)])  # 16 camera frames
    proc = ImageProcessor(**RELEASE)
    pixels, grid = proc(images)
    assert pixels.shape == (16 * 20 * 36, 3 * 2 * 16 * 16)
    assert grid.tolist() == [[1, 20, 36]] * 16
    # still image: both temporal slots of every row hold the same patch
    rows = pixels.view(-1, 3, 2, 16, 16)
    assert torch.equal(rows[:, :, 0], rows[:, :, 1])
    # resized values are whole grey levels (rounded like torchvision's uint8 output)
    levels = (pixels * 0.5 + 0.5) * 255
    assert (levels - levels.round()).abs().max() < 1e-3


def test_no_resize_matches_transformers_pil_processor():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (3, 64, 128, 3), dtype=np.uint8)
    ref, ref_grid = _hf(images, TINY)
    pixels, grid = ImageProcessor.from_folder(BASE_VLM, **TINY)(images)
    assert torch.equal(grid, ref_grid)
    torch.testing.assert_close(pixels, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize(('kernel', 'max_frac'), [('uint8', 0.01), ('float32', 0.2)])
def test_release_resize_close_to_transformers_pil_processor(kernel, max_frac):
    # PIL's bicubic (a = -0.5, 8-bit passes) is not torch's; measured on this scene:
    # uint8 kernel 1 level max on 0.34 % of values, float32 kernel 1 level on 11.5 %.
    images = _scene(1080, 1920)
    ref, ref_grid = _hf(images, RELEASE)
    pixels, grid = ImageProcessor.from_folder(BASE_VLM, resize_kernel=kernel, **RELEASE)(images)
    assert torch.equal(grid, ref_grid)
    diff = (pixels - ref).abs()
    assert diff.max() <= LEVEL + 1e-6
    assert (diff > 1e-6).float().mean() < max_frac


def test_upscale_close_to_transformers_pil_processor():
    # 100x150 -> 96x160: shrinks rows, stretches columns. Measured: uint8 kernel 1 level max.
    images = _scene(100, 150, n=2)
    ref, _ = _hf(images, TINY)
    pixels, _ = ImageProcessor.from_folder(BASE_VLM, **TINY)(images)
    assert (pixels - ref).abs().max() <= 2 * LEVEL + 1e-6


def test_float32_kernel_is_float_interpolation_rounded():
    images = torch.from_numpy(_scene(100, 150))
    pixels, _ = ImageProcessor(resize_kernel='float32', **TINY)(images)
    ref = torch.nn.functional.interpolate(images.permute(0, 3, 1, 2).float(), size=(96, 160),
                                          mode='bicubic', antialias=True, align_corners=False)
    ref = ref.clamp(0, 255).round()
    first = pixels[0].view(3, 2, 16, 16)[:, 0]  # the first row is patch (0, 0)
    torch.testing.assert_close(first, (ref[0, :, :16, :16] / 255 - 0.5) / 0.5, atol=0, rtol=0)


@pytest.mark.parametrize(('images', 'match'), [
    (np.zeros((2, 64, 128, 3), np.float32), 'uint8'),
    (torch.zeros((2, 64, 128, 3), dtype=torch.float32), 'uint8'),
    (np.zeros((2, 3, 64, 128), np.uint8), r'\(N, H, W, 3\)'),
    (np.zeros((64, 128, 3), np.uint8), r'\(N, H, W, 3\)'),
    (np.zeros((2, 64, 128, 4), np.uint8), r'\(N, H, W, 3\)'),
    (np.zeros((0, 64, 128, 3), np.uint8), 'N >= 1'),
    ([np.zeros((64, 128, 3), np.uint8)], 'numpy array or torch tensor'),
])
def test_bad_images(images, match):
    with pytest.raises(ValueError, match=match):
        ImageProcessor(**TINY)(images)


def test_bad_settings():
    with pytest.raises(ValueError, match='min_pixels'):
        ImageProcessor(min_pixels=10, max_pixels=5)
    with pytest.raises(ValueError, match='resize_kernel'):
        ImageProcessor(resize_kernel='pil')


@pytest.mark.parametrize(('size', 'limits'), [((1080, 1920), RELEASE), ((100, 150), TINY)])
def test_float32_kernel_batched_equals_image_by_image(size, limits):
    # The batched call is what a GPU runs; on CPU tensors it must give the loop's values.
    proc = ImageProcessor(resize_kernel='float32', **limits)
    u8 = torch.from_numpy(_scene(*size, n=3)).permute(0, 3, 1, 2)
    new_h, new_w = proc.smart_resize(*size)
    looped = _resize(u8, new_h, new_w, 'float32', batched=False)
    batched = _resize(u8, new_h, new_w, 'float32', batched=True)
    assert batched.shape == (3, 3, new_h, new_w)
    assert torch.equal(batched, looped)
    assert torch.equal(_resize(u8, new_h, new_w, 'float32'), looped)  # CPU default: the loop
    # 'uint8' stays the uint8 kernel on the CPU: it is not the float one here.
    assert not torch.equal(_resize(u8, new_h, new_w, 'uint8'), looped)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_images_are_preprocessed_on_the_gpu():
    images = torch.from_numpy(_scene(1080, 1920, n=2))
    proc = ImageProcessor.from_folder(BASE_VLM, **RELEASE)
    pixels, grid = proc(images.cuda())
    assert pixels.device.type == grid.device.type == 'cuda'
    cpu_float, cpu_grid = ImageProcessor.from_folder(BASE_VLM, resize_kernel='float32',
                                                     **RELEASE)(images)
    assert torch.equal(grid.cpu(), cpu_grid)
    # CUDA's float kernel may round an x.5 the other way: one level at most, rarely.
    diff = (pixels.cpu() - cpu_float).abs()
    assert diff.max() <= LEVEL + 1e-6
    assert (diff > 1e-6).float().mean() < 1e-3
    # Against the official CPU (uint8 kernel) pipeline: 1 level at the release ratio.
    assert (pixels.cpu() - proc(images)[0]).abs().max() <= LEVEL + 1e-6
