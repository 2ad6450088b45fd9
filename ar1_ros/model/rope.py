"""Multimodal RoPE positions of a prompt (Qwen2.5-VL / Qwen3-VL, still images only).

Text tokens get a running index on all three axes (t, h, w). An image block of merged grid
(t, h', w') starting at running index s gets t = s + t_i, h = s + row, w = s + col, and the text
after it resumes at s + max(h', w'). Generated tokens (and the expert's action tokens) then sit at
`cache position + rope_delta` on all three axes, with rope_delta = max position + 1 - length.
"""
from typing import Tuple

import torch


def mrope_positions(input_ids: torch.Tensor, image_grid_thw: torch.Tensor, image_token_id: int,
                    merge_size: int) -> Tuple[torch.Tensor, int]:
    """Return (position_ids (3, 1, L) int64, rope_delta) for one prompt input_ids (1, L).

    image_grid_thw (N, 3) lists the images in prompt order, in patches (before merging); each
    image's `<|image_pad|>` run must hold t*h*w/merge_size² tokens.
    """
    ids = input_ids.reshape(-1).tolist()
    grids = [tuple(int(v) for v in row) for row in image_grid_thw.reshape(-1, 3).tolist()]
    chunks, pos, i, image = [], 0, 0, 0
    while i < len(ids):
        if ids[i] != image_token_id:
            j = i
            while j < len(ids) and ids[j] != image_token_id:
                j += 1
            chunks.append(torch.arange(pos, pos + j - i).expand(3, -1))
            pos += j - i
            i = j
            continue
        if image >= len(grids):
            raise ValueError('more image token runs than entries in image_grid_thw')
        t, h, w = grids[image][0], grids[image][1] // merge_size, grids[image][2] // merge_size
        grid = torch.stack(torch.meshgrid(
            torch.arange(t), torch.arange(h), torch.arange(w), indexing='ij')).reshape(3, -1)
        chunks.append(grid + pos)
        pos += max(h, w)
        i += t * h * w
        image += 1
    if image != len(grids):
        raise ValueError(f'{len(grids)} images in image_grid_thw but {image} in the prompt')
    positions = torch.cat(chunks, dim=1).to(torch.int64)
    if positions.shape[1] != len(ids):
        raise ValueError('image token runs do not match image_grid_thw')
    delta = int(positions.max()) + 1 - len(ids)
    return positions[:, None, :].to(input_ids.device), delta
