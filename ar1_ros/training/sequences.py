"""Supervised training sequences: the official SFT processor, built from our inference code.

A sample becomes one closed chat (spec §9.1): the inference prompt's images and 48 history
tokens, then an assistant answer holding the 128 discrete future tokens. With a reasoning label
the request is the inference one and the answer starts with the CoC, so the expert is trained
on the same prefix it sees at inference (spec §12.4); without one it is the official
trajectory-only default (`output the future trajectory.`):

    labelled:    <|cot_start|>{CoC}<|cot_end|><|traj_future_start|><iK>*128<|traj_future_end|>
    unlabelled:  <|traj_future_start|><iK>*128<|traj_future_end|>

followed by `<|im_end|>`. Supervised tokens (`labels_mask`): every `<|cot_start|>`..
`<|cot_end|>` and `<|traj_future_start|>`..`<|traj_future_end|>` span, inclusive, and the
answer's `<|im_end|>`. Images and history go through `model.inference.Preprocessor`, the code
the node runs, so training and inference inputs cannot drift apart.
"""
import dataclasses
from typing import List, Optional, Sequence

import numpy as np
import torch

from ar1_ros.model.inference import Preprocessor
from ar1_ros.model.network import AR1Network
from ar1_ros.model.prompt import (
    COC_REQUEST,
    SPECIAL_TOKENS,
    TRAJECTORY_REQUEST,
    build_chat_ids,
    fuse_history_tokens,
)
from ar1_ros.model.rope import mrope_positions
from ar1_ros.model.tokens import TokenIds

Tensor = torch.Tensor


@dataclasses.dataclass
class SftExample:
    """One training sequence.

    input_ids (L,) int64 with history and future tokens fused in; labels_mask (L,) bool, the
    tokens a loss supervises (each predicted from the one before it); position_ids (3, L) MRoPE;
    pixel_values (P, D) and image_grid_thw (N, 3) as the backbone takes them; stop_index: where
    `<|traj_future_start|>` is (the expert's prefix is input_ids[:stop_index + 1]); action
    (64, 2) the normalised ground-truth action (flow-matching target); history_xyz (16, 3),
    history_rot (16, 3, 3) and future_xyz (64, 3) in the t0 ego frame, float32.
    """

    input_ids: Tensor
    labels_mask: Tensor
    position_ids: Tensor
    pixel_values: Tensor
    image_grid_thw: Tensor
    stop_index: int
    action: Tensor
    history_xyz: Tensor
    history_rot: Tensor
    future_xyz: Tensor


def _tensor(value, dtype=torch.float32) -> Tensor:
    return torch.as_tensor(np.asarray(value), dtype=dtype)


def build_example(net: AR1Network, pre: Preprocessor, images, history_xyz, history_rot,
                  future_xyz, future_rot, coc: Optional[str] = None) -> SftExample:
    """Build the training sequence of one sample.

    Args:
        net: the AR1 network (its tokenizers, action space and backbone config are used).
        pre: the model's preprocessor (tokenizer, token ids, image processor).
        images: uint8 (C, F, H, W, 3) RGB, cameras in prompt order.
        history_xyz, history_rot: (16, 3), (16, 3, 3) ego history in the t0 frame.
        future_xyz, future_rot: (64, 3), (64, 3, 3) recorded future in the t0 frame.
        coc: the Chain-of-Causation text, or None for a trajectory-only sample.

    Returns:
        SftExample.

    """
    images = torch.as_tensor(np.asarray(images))
    hist_xyz, hist_rot = _tensor(history_xyz), _tensor(history_rot)
    fut_xyz, fut_rot = _tensor(future_xyz), _tensor(future_rot)
    pixels, grid = pre.images(images.reshape(-1, *images.shape[-3:]))
    merge = pre.images.merge_size
    hist_ids = pre.history_token_ids(hist_xyz, net.hist_tokenizer)
    future_bins = net.traj_tokenizer.encode(hist_xyz[None], hist_rot[None], fut_xyz[None],
                                            fut_rot[None])
    request, answer = _answer(coc, future_bins.shape[-1])
    ids = build_chat_ids(pre.tokenizer, (grid.prod(-1) // merge**2).tolist(), request, answer,
                         n_history_tokens=hist_ids.shape[-1])
    ids = fuse_history_tokens(ids, hist_ids, pre.ids.traj_history)
    ids = fuse_history_tokens(ids, future_bins + pre.ids.traj_token_start, pre.ids.traj_future)
    positions, _ = mrope_positions(ids, grid, net.vlm.config.image_token_id, merge)
    action = net.action_space.traj_to_action(hist_xyz, hist_rot, fut_xyz, fut_rot)
    return SftExample(
        input_ids=ids[0], labels_mask=labels_mask(ids[0], pre.ids), position_ids=positions[:, 0],
        pixel_values=pixels, image_grid_thw=grid, stop_index=stop_index(ids[0], pre.ids),
        action=action.float(), history_xyz=hist_xyz, history_rot=hist_rot, future_xyz=fut_xyz)


def _answer(coc: Optional[str], n_future: int) -> tuple:
    """Return (request, assistant answer text) with n_future `<|traj_future|>` slots."""
    future = (SPECIAL_TOKENS['traj_future_start'] + SPECIAL_TOKENS['traj_future'] * n_future
              + SPECIAL_TOKENS['traj_future_end'])
    if coc is None:
        return TRAJECTORY_REQUEST, future
    text = ' '.join(coc.split())
    if not text:
        raise ValueError('a reasoning label must not be empty (use None for no label)')
    for token in SPECIAL_TOKENS.values():
        if token in text:
            raise ValueError(f'reasoning text contains the special token {token}')
    return COC_REQUEST, (SPECIAL_TOKENS['cot_start'] + text + SPECIAL_TOKENS['cot_end']
                         + future)


def _spans(ids: Tensor, start: int, end: int) -> Tensor:
    """Mark every start..end span of ids (L,), inclusive; an unclosed start runs to the end."""
    mask = torch.zeros_like(ids, dtype=torch.bool)
    inside = False
    for i, token in enumerate(ids.tolist()):
        if token == start:
            inside = True
        mask[i] = inside
        if token == end:
            inside = False
    return mask


def labels_mask(ids: Tensor, token_ids: TokenIds) -> Tensor:
    """Return the supervised tokens of a training chat (L,): CoC, future, final `<|im_end|>`."""
    mask = _spans(ids, token_ids.cot_start, token_ids.cot_end)
    mask |= _spans(ids, token_ids.traj_future_start, token_ids.traj_future_end)
    ends = (ids == token_ids.eos).nonzero().flatten()
    if ends.numel():
        mask[ends[-1]] = True  # the answer's end of turn
    return mask


def stop_index(ids: Tensor, token_ids: TokenIds) -> int:
    """Index of the last `<|traj_future_start|>` in ids (L,); ValueError when there is none."""
    where = (ids == token_ids.traj_future_start).nonzero().flatten()
    if where.numel() == 0:
        raise ValueError('the sequence has no <|traj_future_start|>')
    return int(where[-1])


def is_trajectory_token(targets: Tensor, token_ids: TokenIds) -> Tensor:
    """Return True for the official `future_traj` loss set: `<iK>` and the future delimiters."""
    start = token_ids.traj_token_start
    return (((targets >= start) & (targets < start + token_ids.traj_vocab_size))
            | (targets == token_ids.traj_future_start) | (targets == token_ids.traj_future_end))


@dataclasses.dataclass
class SftBatch:
    """Right-padded examples: (B, L) ids/masks, (3, B, L) positions, stacked targets."""

    input_ids: Tensor
    attention_mask: Tensor
    labels_mask: Tensor
    position_ids: Tensor
    pixel_values: Tensor
    image_grid_thw: Tensor
    stop_index: Tensor
    action: Tensor
    history_xyz: Tensor
    history_rot: Tensor
    future_xyz: Tensor

    def to(self, device: torch.device) -> 'SftBatch':
        """Return the batch with every tensor on `device`."""
        return SftBatch(**{f.name: getattr(self, f.name).to(device)
                           for f in dataclasses.fields(self)})


def collate(examples: Sequence[SftExample], pad_id: int) -> SftBatch:
    """Pad examples on the right to the longest; padding is never attended or supervised."""
    if not examples:
        raise ValueError('cannot collate an empty batch')
    length = max(e.input_ids.shape[0] for e in examples)
    rows: List[dict] = []
    for e in examples:
        pad = length - e.input_ids.shape[0]
        rows.append({
            'input_ids': torch.nn.functional.pad(e.input_ids, (0, pad), value=pad_id),
            'attention_mask': torch.nn.functional.pad(torch.ones_like(e.input_ids), (0, pad)),
            'labels_mask': torch.nn.functional.pad(e.labels_mask, (0, pad)),
            # Padded slots repeat the last position; they are masked anyway.
            'position_ids': torch.cat([e.position_ids,
                                    e.position_ids[:, -1:].expand(-1, pad)], dim=1)})
    stack = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
    return SftBatch(
        input_ids=stack['input_ids'], attention_mask=stack['attention_mask'],
        labels_mask=stack['labels_mask'], position_ids=stack['position_ids'].transpose(0, 1),
        pixel_values=torch.cat([e.pixel_values for e in examples]),
        image_grid_thw=torch.cat([e.image_grid_thw for e in examples]),
        stop_index=torch.tensor([e.stop_index for e in examples]),
        action=torch.stack([e.action for e in examples]),
        history_xyz=torch.stack([e.history_xyz for e in examples]),
        history_rot=torch.stack([e.history_rot for e in examples]),
        future_xyz=torch.stack([e.future_xyz for e in examples]))
