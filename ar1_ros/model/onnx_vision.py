"""The Qwen3-VL vision tower (with its deepstack features) as an ONNX-exportable module.

transformers' own forward cannot be traced: its SDPA path splits the packed patches per image
with `cu_seqlens.tolist()`, and the position tables come from `grid_thw` through
`repeat_interleave`, both data-dependent. AR1 sends images of one size (the node's cameras), so
`VisionEncoder` fixes the per-image grid (t, h, w) at construction, precomputes that grid's
position tables with transformers' own helpers, and runs the tower's modules with attention
batched over images. The number of images stays dynamic.
"""
from pathlib import Path
from typing import Sequence, Tuple

import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812 (the usual torch alias)
from transformers import vision_utils
from transformers.models.qwen3_vl.modeling_qwen3_vl import (
    Qwen3VLVisionModel,
    apply_rotary_pos_emb_vision,
)

from ar1_ros.model.onnx_export import ExportSpec, export_onnx

VISION_INPUTS = ('pixel_values',)
VISION_OUTPUTS = ('image_embeds', 'deepstack_features')
MAX_IMAGES = 256


class VisionEncoder(nn.Module):
    """Vision tower for images that all share one patch grid (t, h, w)."""

    def __init__(self, visual: nn.Module, grid_thw: Sequence[int]):
        super().__init__()
        if not isinstance(visual, Qwen3VLVisionModel):
            raise ValueError(f'ONNX export of the vision tower supports Qwen3-VL only, got '
                             f'{type(visual).__name__}')
        self.visual = visual
        self.grid_thw = tuple(int(v) for v in grid_thw)
        t, h, w = self.grid_thw
        merge = visual.spatial_merge_size
        if t < 1 or h % merge or w % merge:
            raise ValueError(f'grid {self.grid_thw}: h and w must be multiples of {merge}')
        # Attention runs per frame (h * w patches); every frame has the same tables.
        self.frame = h * w
        grid = torch.tensor([[1, h, w]])
        indices, weights = vision_utils.get_vision_interpolation_indices_and_weights(
            grid, visual.num_grid_per_side, mode=visual.interpolation_mode,
            align_corners=visual.interpolation_align_corners, spatial_merge_size=merge)
        positions = vision_utils.get_vision_position_ids(grid, merge)
        device = visual.pos_embed.weight.device
        self.register_buffer('interp_indices', indices.to(device), persistent=False)
        self.register_buffer('interp_weights', weights.to(device), persistent=False)
        self.register_buffer('position_ids', positions.to(device), persistent=False)

    @property
    def patches_per_image(self) -> int:
        """Rows of pixel_values per image: t * h * w."""
        return self.grid_thw[0] * self.frame

    def forward(self, pixel_values: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode N images.

        Args:
            pixel_values: (N * t * h * w, C * T * p * p) patches, merge-window order, as the
                image processor writes them.

        Returns:
            tuple: image_embeds (N * t * h * w / m², out_hidden) and deepstack_features
            (K, N * t * h * w / m², out_hidden), K = len(deepstack_visual_indexes); what
            `get_image_features` returns, concatenated over images.

        """
        v = self.visual
        x = v.patch_embed(pixel_values)
        patches, width = x.shape
        pos = (v.pos_embed(self.interp_indices) * self.interp_weights[:, :, None]).sum(1)
        x = x.view(-1, self.frame, width) + pos.to(x.dtype)
        cos, sin = v.rotary_pos_emb(x, self.position_ids)
        deepstack = []
        for index, block in enumerate(v.blocks):
            x = x + _attention(block.attn, block.norm1(x), cos, sin)
            x = x + block.mlp(block.norm2(x))
            if index in v.deepstack_visual_indexes:
                merger = v.deepstack_merger_list[v.deepstack_visual_indexes.index(index)]
                deepstack.append(merger(x.reshape(patches, width)))
        return v.merger(x.reshape(patches, width)), torch.stack(deepstack)


def _attention(attn: nn.Module, x: torch.Tensor, cos: torch.Tensor,
               sin: torch.Tensor) -> torch.Tensor:
    """Qwen3VLVisionAttention on frames x (F, h * w, width), each frame attending to itself.

    Same operations as transformers' SDPA path (qkv, 2D rotary, softmax(QK^T·scale)V, proj),
    batched over frames instead of split into a Python list.
    """
    frames, length, width = x.shape
    q, k, v = attn.qkv(x).reshape(frames, length, 3, attn.num_heads, -1).unbind(2)
    q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                         v.transpose(1, 2), scale=attn.scaling)
    return attn.proj(out.transpose(1, 2).reshape(frames, length, width))


def export_vision(encoder: VisionEncoder, path: Path, pixel_values: torch.Tensor) -> Path:
    """Export a VisionEncoder to `path`; the number of images is a dynamic axis.

    Args:
        encoder: the encoder (its grid is stored in the file's metadata as 'ar1.grid_thw').
        path: destination .onnx file.
        pixel_values: example input of at least 2 images, (N * t * h * w, C * T * p * p).

    Returns:
        Path: `path`.

    """
    images = torch.export.Dim('images', min=1, max=MAX_IMAGES)
    tokens_per_image = encoder.patches_per_image // encoder.visual.spatial_merge_unit
    out = encoder.visual.config.out_hidden_size
    deep = len(encoder.visual.deepstack_visual_indexes)
    spec = ExportSpec(
        VISION_INPUTS, VISION_OUTPUTS, {'pixel_values': {0: encoder.patches_per_image * images}},
        output_dims={'image_embeds': [f'{tokens_per_image}*images', out],
                     'deepstack_features': [deep, f'{tokens_per_image}*images', out]},
        metadata={'ar1.part': 'vision', 'ar1.grid_thw': ','.join(map(str, encoder.grid_thw))})
    return export_onnx(encoder, (pixel_values,), path, spec)
