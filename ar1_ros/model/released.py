"""The released AR1 configuration with random weights, built on the target device, for latency.

Qwen3-VL-8B backbone (the architecture we ship in configs/qwen3_vl_8b), expert hidden 2048 / MLP
8192, 4000 `<iK>` tokens + 28 AR1 tokens (vocabulary 155,697), 16 images of 320x576 (180 tokens
each): the values of configs/ar1_defaults.json and test/model/test_release_layout.py. Nothing is
downloaded: the module tree is built on the meta device, the device memory is checked, then
every parameter is created on the device in bf16 and drawn at random there (host RAM never holds
the weights).

The Qwen tokenizer is not shipped, so prompts are built from token ids (IdPreprocessor): the
real special ids and layout (system turn, 16 x (vision_start, 180 image pads, vision_end), the
48 history tokens, request, assistant turn, `<|cot_start|>`), and arbitrary ordinary ids of
about the right count for the text. Random weights never write a sensible CoC, so latency runs
force the reasoning length (profiling.profile_predict(forced_tokens=T)). Enough for timing,
meaningless as driving output.
"""
import dataclasses
import json
from pathlib import Path
import re
from typing import Dict, List, Union

import torch
from torch import nn

from ar1_ros.model.api import AR1Model, build_network
from ar1_ros.model.backbone import RELEASED_BACKBONES, BackboneSource
from ar1_ros.model.config import AR1Config, parse_config
from ar1_ros.model.image_processing import ImageProcessor
from ar1_ros.model.inference import Preprocessor
from ar1_ros.model.prompt import (
    COC_REQUEST,
    SYSTEM_PROMPT,
    TRAJECTORY_REQUEST,
    fuse_history_tokens,
)
from ar1_ros.model.tokens import SPECIAL_TOKEN_KEYS, TokenIds

DEFAULTS = Path(__file__).resolve().parent / 'configs' / 'ar1_defaults.json'
BACKBONE = 'Qwen/Qwen3-VL-8B-Instruct'
QWEN_VOCAB = 151_669  # tokens of the Qwen3-VL tokenizer: `<i0>` gets this id
QWEN_IM_START = 151_644  # `<|im_start|>`; `<|im_end|>` is the backbone config's eos_token_id
TEXT_ID = 100  # first of the arbitrary ordinary ids standing for prompt text
NEWLINE_ID = 198  # Qwen's '\n' (any ordinary id would time the same)
# Beyond the weights: vision activations, the ~3,000-token KV cache, logits, allocator slack.
HEADROOM_BYTES = 8 * 2**30
GIB = 2**30


class InsufficientMemoryError(RuntimeError):
    """The device cannot hold the released configuration."""


def release_config() -> AR1Config:
    """Return the released AR1 config.json (official fields), token ids derived, not read."""
    raw = json.loads(DEFAULTS.read_text())
    special = [k for k in SPECIAL_TOKEN_KEYS if k != 'image_pad']  # Qwen already has it
    raw.update(vlm_backend='qwenvl3', vlm_name_or_path=BACKBONE, traj_token_start_idx=QWEN_VOCAB,
               vocab_size=QWEN_VOCAB + raw['traj_vocab_size'] + len(special),
               min_pixels=163_840, max_pixels=196_608, dtype='bfloat16')
    raw['traj_token_ids'] = {}  # filled from release_token_ids just below
    config = parse_config(raw, source='released configuration')
    config.raw['traj_token_ids'] = release_token_ids(config).traj_token_ids()
    return config


def release_token_ids(config: AR1Config) -> TokenIds:
    """Return the ids the official tokenizer extension gives the Qwen3-VL tokenizer.

    `<i0>`..`<i3999>` from 151669, then the AR1 special tokens in SPECIAL_TOKEN_KEYS order
    (`<|image_pad|>` keeps its Qwen id): `<|traj_future_start|>` = 155681, 155697 tokens in all.
    """
    vlm = json.loads((RELEASED_BACKBONES[BACKBONE] / 'config.json').read_text())
    start, count = int(config.traj_token_start_idx), int(config.traj_vocab_size)
    keys = [k for k in SPECIAL_TOKEN_KEYS if k != 'image_pad']
    special: Dict[str, int] = {k: start + count + i for i, k in enumerate(keys)}
    names = ('traj_history', 'traj_future', 'traj_history_start', 'traj_history_end',
             'traj_future_start', 'traj_future_end', 'cot_start', 'cot_end')
    future = int(config.traj_tokenizer_cfg['num_bins'])
    return TokenIds(
        traj_token_start=start, traj_vocab_size=count, future_vocab_size=future,
        hist_token_start=start + future, **{k: special[k] for k in names},
        image_pad=vlm['image_token_id'], vision_start=vlm['vision_start_token_id'],
        vision_end=vlm['vision_end_token_id'], video_pad=vlm['video_token_id'],
        # Qwen pads with `<|endoftext|>`, the config's bos_token_id; eos is `<|im_end|>`.
        pad=vlm['text_config']['bos_token_id'], eos=vlm['text_config']['eos_token_id'],
        vocab_size=start + count + len(keys))


class IdText:
    """Tokenizer stand-in for decoding: ids -> 'id id ...' (no CoC text is ever found)."""

    def decode(self, ids: List[int], skip_special_tokens: bool = False) -> str:
        """Return the ids as space-separated numbers."""
        del skip_special_tokens
        return ' '.join(str(i) for i in ids)


@dataclasses.dataclass
class IdPreprocessor(Preprocessor):
    """Preprocessor that builds the AR1 prompt from token ids, without a tokenizer."""

    im_start: int = QWEN_IM_START

    def prompt(self, images: torch.Tensor, history_ids: torch.Tensor,
               reasoning: bool = True) -> tuple:
        """Images (N, H, W, 3) uint8 + history ids (1, 48) -> (input_ids (1, L), pixels, grid).

        reasoning False: the trajectory-only prompt (Preprocessor.prompt's).
        """
        pixel_values, grid = self.images(images)
        per_image = (grid.prod(-1) // self.images.merge_size**2).tolist()
        ids = torch.tensor([self.prompt_ids(per_image, history_ids.shape[-1], reasoning)])
        return fuse_history_tokens(ids, history_ids, self.ids.traj_history), pixel_values, grid

    def prompt_ids(self, tokens_per_image: List[int], n_history: int,
                   reasoning: bool = True) -> List[int]:
        """Return the prompt ids with the history slots unfused, as build_prompt_ids lays out."""
        t = self.ids
        ids = [self.im_start, *_text('system'), NEWLINE_ID, *_text(SYSTEM_PROMPT), t.eos,
               NEWLINE_ID, self.im_start, *_text('user'), NEWLINE_ID]
        for n in tokens_per_image:
            ids += [t.vision_start, *[t.image_pad] * int(n), t.vision_end]
        ids += [t.traj_history_start, *[t.traj_history] * n_history, t.traj_history_end]
        request, opening = ((COC_REQUEST, t.cot_start) if reasoning
                            else (TRAJECTORY_REQUEST, t.traj_future_start))
        ids += [*_text(request), t.eos, NEWLINE_ID, self.im_start, *_text('assistant'),
                NEWLINE_ID, opening]
        return ids


def _text(text: str) -> List[int]:
    """Arbitrary ordinary ids, one per word or punctuation mark (about a BPE count)."""
    return [TEXT_ID + i for i in range(len(re.findall(r'\w+|[^\w\s]', text)))]


def build_released(device: Union[str, torch.device], seed: int = 0) -> AR1Model:
    """Build the released configuration with random bf16 weights on `device`.

    Args:
        device: where the weights go ('cuda', 'cuda:1', 'cpu').
        seed: seed of the random weights.

    Returns:
        AR1Model in eval mode with an IdPreprocessor (prompts from ids, see the module doc).

    Raises:
        InsufficientMemoryError: the device's free memory is below weights + HEADROOM_BYTES
            (checked before any weight is allocated), or CUDA is not available.
    """
    device = torch.device(device)
    config = release_config()
    source = BackboneSource(RELEASED_BACKBONES[BACKBONE], 'shipped architecture')
    network = build_network(config, source, torch.bfloat16)
    needed = parameter_bytes(network) + HEADROOM_BYTES
    free = available_bytes(device)
    if free < needed:
        raise InsufficientMemoryError(
            f'the released configuration needs about {needed / GIB:.1f} GiB on {device} '
            f'({parameter_bytes(network) / GIB:.1f} GiB of bf16 weights + '
            f'{HEADROOM_BYTES / GIB:.0f} GiB working memory), only {free / GIB:.1f} GiB is free; '
            'run it on a GPU with enough memory (e.g. --device cuda on an 80 GB H100)')
    materialise(network, device, torch.bfloat16, seed)
    images = ImageProcessor.from_folder(source.folder, min_pixels=config.raw['min_pixels'],
                                        max_pixels=config.raw['max_pixels'])
    pre = IdPreprocessor(config, IdText(), release_token_ids(config), images,
                         im_start=QWEN_IM_START)
    return AR1Model(network, source, pre)


def parameter_bytes(network: nn.Module) -> int:
    """Bytes of the parameters (meta or real) and buffers of `network`."""
    tensors = [*network.parameters(), *network.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def available_bytes(device: torch.device) -> int:
    """Free memory of a CUDA device, or the host's MemAvailable for the CPU (0 if unknown)."""
    if device.type == 'cuda':
        return int(torch.cuda.mem_get_info(device)[0]) if torch.cuda.is_available() else 0
    if device.type != 'cpu':
        return 0
    try:
        text = Path('/proc/meminfo').read_text()
    except OSError:
        return 0
    match = re.search(r'^MemAvailable:\s+(\d+) kB', text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def materialise(network: nn.Module, device: torch.device, dtype: torch.dtype,
                seed: int) -> None:
    """Replace every meta parameter by a random one on `device`; move buffers there.

    Weights (2-D and up) ~ N(0, 0.02) (the backbone's initializer_range), biases 0, norm
    scales 1: activations stay finite, so kernels run at their normal speed. Tied parameters
    stay tied. Persistent floating buffers are cast to dtype, as from_pretrained reads them.
    """
    generator = torch.Generator(device=device).manual_seed(seed)
    made: Dict[int, nn.Parameter] = {}
    for module in network.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            if id(param) not in made:
                data = torch.empty(param.shape, dtype=dtype, device=device)
                made[id(param)] = nn.Parameter(_random(name, data, generator),
                                               requires_grad=False)
            setattr(module, name, made[id(param)])
    network.to(device)
    persistent = set(network.state_dict(keep_vars=True))
    for name, buffer in list(network.named_buffers()):
        if name in persistent and buffer.is_floating_point():
            owner, _, leaf = name.rpartition('.')
            network.get_submodule(owner).register_buffer(leaf, buffer.to(dtype))
    network.eval().requires_grad_(False)


def _random(name: str, data: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Fill one parameter in place: N(0, 0.02) weights, zero biases, unit norm scales."""
    if data.dim() >= 2:
        return data.normal_(0.0, 0.02, generator=generator)
    return data.zero_() if name.endswith('bias') else data.fill_(1.0)
