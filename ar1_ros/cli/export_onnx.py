"""`ar1 export-onnx --checkpoint DIR --out DIR`: the expert step and vision tower as ONNX files.

Writes expert.onnx (one flow-matching velocity on a stacked prefix KV cache), vision.onnx (the
Qwen3-VL vision tower for the cameras' image size) and export.json (opset, input/output names
and shapes, and the torch <-> onnxruntime max abs error measured right after the export).
"""
import argparse
import json
from pathlib import Path
import sys

from ar1_ros.cli.common import fail

PARTS = ('expert', 'vision')
# Export-time parity limits per dtype: the golden fixtures' float32 tolerance, and float16
# rounding of two different kernels.
TOLERANCE = {'float32': 1e-4, 'float16': 1e-2}
PROG = 'ar1 export-onnx'


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ar1 export-onnx`."""
    parser = subparsers.add_parser(
        'export-onnx', help='export the expert step and vision tower to ONNX (checked with '
                            'onnxruntime)',
        description='Export one flow-matching step of the action expert and the vision tower '
                    'to ONNX and measure their error against torch with onnxruntime.')
    parser.add_argument('--checkpoint', type=Path, required=True, help='AR1 checkpoint folder')
    parser.add_argument('--vlm-path', type=Path, default=None,
                        help='local folder with the backbone config/tokenizer files')
    parser.add_argument('--out', type=Path, required=True, help='output folder')
    parser.add_argument('--parts', default=','.join(PARTS),
                        help=f'comma-separated parts to export (default {",".join(PARTS)})')
    parser.add_argument('--dtype', choices=sorted(TOLERANCE), default='float32',
                        help='weight dtype of the exported files (default float32)')
    parser.add_argument('--image-size', default='1080x1920', metavar='HxW',
                        help='camera image size the node sends (fixes the vision grid; '
                             'default 1080x1920)')
    parser.add_argument('--device', default='cpu', help="torch device for export, e.g. 'cuda'")
    parser.add_argument('--seed', type=int, default=0, help='seed of the check inputs')
    parser.set_defaults(func=run)



def _check_args(args: argparse.Namespace):
    """Return (parts, (height, width)) or an error message."""
    parts = [p.strip() for p in args.parts.split(',') if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        return f'--parts: unknown or no part {unknown} (choose from {", ".join(PARTS)})'
    try:
        height, width = (int(v) for v in args.image_size.lower().split('x'))
    except ValueError:
        return f'--image-size must be HxW, e.g. 1080x1920, got {args.image_size!r}'
    if height < 1 or width < 1:
        return f'--image-size must be positive, got {args.image_size!r}'
    if not args.checkpoint.is_dir():
        return f'checkpoint folder {args.checkpoint} not found'
    return [p for p in PARTS if p in parts], (height, width)


def run(args: argparse.Namespace) -> int:
    """Export the requested parts and write export.json.

    Returns:
        int: 0 when every export-time error is within tolerance, 1 if one is not, 2 on bad
        arguments or an unusable checkpoint.

    """
    checked = _check_args(args)
    if isinstance(checked, str):
        return fail(PROG, checked)
    parts, image_size = checked
    import torch

    from ar1_ros.model import AR1Model, CheckpointError
    from ar1_ros.model.onnx_export import export_dtype
    try:
        model = AR1Model.from_pretrained(args.checkpoint, dtype=export_dtype(args.dtype),
                                         device=args.device, vlm_path=args.vlm_path)
    except CheckpointError as err:
        return fail(PROG, f'cannot load {args.checkpoint}: {err}')
    args.out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(args.seed)
    report = _header(args.checkpoint, args.dtype)
    try:
        if 'expert' in parts:
            report['parts']['expert'] = _export_expert(model.network, args.out, generator)
        if 'vision' in parts:
            report['parts']['vision'] = _export_vision(model, args.out, image_size, generator)
    except ValueError as err:  # e.g. a backbone whose vision tower we cannot export
        return fail(PROG, str(err))
    (args.out / 'export.json').write_text(json.dumps(report, indent=2) + '\n')
    return _summary(report, args.out, TOLERANCE[args.dtype])


def _summary(report: dict, out: Path, tolerance: float) -> int:
    """Print one line per part; return 1 if an export-time error exceeds `tolerance`."""
    worst = 0.0
    for name, part in report['parts'].items():
        error = part['max_abs_error']
        worst = max(worst, error)
        print(f'{name:<7} {out / part["file"]}  max |torch - onnxruntime| {error:.2e}')
    print(f'report  {out / "export.json"}')
    if worst > tolerance:
        print(f'{PROG}: max abs error {worst:.2e} exceeds {tolerance:.0e}', file=sys.stderr)
        return 1
    return 0


def _header(checkpoint: Path, dtype: str) -> dict:
    """Return the versions and settings part of export.json."""
    import onnxruntime
    import torch
    import transformers

    from ar1_ros.model.onnx_export import OPSET
    return {'opset': OPSET, 'dtype': dtype, 'checkpoint': str(checkpoint),
            'exporter': 'torch.onnx.export(dynamo=True)',
            'versions': {'torch': torch.__version__, 'transformers': transformers.__version__,
                         'onnxruntime': onnxruntime.__version__},
            'parts': {}}


def _export_expert(net, out: Path, generator) -> dict:
    """Export expert.onnx, then compare it with torch at two (batch, prefix) shapes."""
    import torch

    from ar1_ros.model.onnx_expert import EXPERT_INPUTS, ExpertStep, expert_example, export_expert
    from ar1_ros.runtime.onnx_runner import OnnxExpertStep, max_abs_error
    path = export_expert(net, out / 'expert.onnx', expert_example(net, 2, 24, generator))
    step, module = OnnxExpertStep(path), ExpertStep(net)
    checks = []
    # Shapes other than the traced example's, so that the dynamic axes are exercised.
    for batch, prefix in ((1, 41), (3, 7)):
        example = expert_example(net, batch, prefix, generator)
        args = [example[name] for name in EXPERT_INPUTS]
        with torch.no_grad():
            expected = module(*args)
        checks.append({'batch': batch, 'prefix': prefix,
                       'max_abs_error': max_abs_error(expected, step(*args))})
    return {**_files(path), **step.signature(), 'providers': step.providers, 'checks': checks,
            'max_abs_error': max(c['max_abs_error'] for c in checks)}


def _export_vision(model, out: Path, image_size, generator) -> dict:
    """Export vision.onnx for the grid of `image_size`, then compare with transformers."""
    import torch

    from ar1_ros.model.onnx_vision import VisionEncoder, export_vision
    from ar1_ros.runtime.onnx_runner import OnnxVision, max_abs_error
    visual = model.network.vlm.model.visual
    resized = _image_processor(model).smart_resize(*image_size)
    grid = (1, resized[0] // visual.patch_size, resized[1] // visual.patch_size)
    encoder = VisionEncoder(visual, grid)
    width = visual.config.in_channels * visual.config.temporal_patch_size * visual.patch_size**2
    device = visual.pos_embed.weight.device

    def patches(images):  # normalised pixels lie in [-1, 1]
        return (torch.rand(images * encoder.patches_per_image, width, generator=generator) * 2
                - 1).to(device)

    path = export_vision(encoder, out / 'vision.onnx', patches(2))
    vision, pixels = OnnxVision(path), patches(3)
    grid_thw = torch.tensor([grid] * 3, device=device)
    with torch.no_grad():
        expected = model.network.vlm.model.get_image_features(pixels, grid_thw)
    embeds, deepstack = vision(pixels, grid_thw)
    errors = [max_abs_error(torch.cat(expected.pooler_output), embeds)]
    errors += [max_abs_error(torch.cat(f), d)
               for f, d in zip(expected.deepstack_features, deepstack, strict=True)]
    return {**_files(path), **vision.signature(), 'providers': vision.providers,
            'image_size': list(image_size), 'resized': list(resized), 'grid_thw': list(grid),
            'checks': [{'images': 3, 'max_abs_error': max(errors)}],
            'max_abs_error': max(errors)}


def _files(path: Path) -> dict:
    """Return the report entries naming an exported file and its external weights, if any."""
    from ar1_ros.model.onnx_export import external_data
    data = external_data(path)
    return {'file': path.name, 'external_data': data.name if data.is_file() else None}


def _image_processor(model):
    """Return the model's image processor, or one from the vision config and pixel limits."""
    from ar1_ros.model.image_processing import ImageProcessor
    if model.preprocessor is not None:
        return model.preprocessor.images
    vision, raw = model.network.vlm.config.vision_config, model.config.raw
    limits = {k: raw[k] for k in ('min_pixels', 'max_pixels') if raw.get(k) is not None}
    return ImageProcessor(patch_size=vision.patch_size, merge_size=vision.spatial_merge_size,
                          temporal_patch_size=vision.temporal_patch_size, **limits)
