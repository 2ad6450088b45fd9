"""Build a NEW AR1 model from a base VLM folder (Qwen3-VL or Qwen2.5-VL), ready to train.

model = new_ar1_model('/models/Qwen3-VL-8B-Instruct', dtype=torch.bfloat16, device='cuda')
model.save_pretrained('/ckpt/ar1_init')   # official format; AR1Model.from_pretrained loads it

The backbone weights come from the base folder's safetensors through transformers' own
`from_pretrained` (its key conversions for older checkpoints apply), then the vocabulary is
extended to the AR1 tokenizer. The expert and both action projections are new. Everything
random is drawn from one generator stream seeded with `seed` (global RNG state restored).
"""
import contextlib
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Union

import torch
from transformers import Qwen2_5_VLForConditionalGeneration, Qwen3VLForConditionalGeneration

from ar1_ros.model import checkpoint
from ar1_ros.model.api import AR1Model, load_preprocessor
from ar1_ros.model.backbone import BackboneSource, backbone_config, build_expert, build_vlm
from ar1_ros.model.config import AR1Config, CheckpointError
from ar1_ros.model.factory_config import new_ar1_config
from ar1_ros.model.network import AR1Network, parameters_on_meta

__all__ = ['load_base_vlm', 'new_ar1_config', 'new_ar1_model']

PathLike = Union[str, Path]
Device = Union[str, torch.device]
_VLM_CLASSES = {'qwenvl3': Qwen3VLForConditionalGeneration,
                'qwenvl2_5': Qwen2_5_VLForConditionalGeneration}


def new_ar1_model(base_vlm_dir: PathLike, *, dtype: torch.dtype = torch.float32,
                  device: Device = 'cpu', expert_cfg: Optional[Mapping[str, Any]] = None,
                  overrides: Optional[Mapping[str, Any]] = None, random_vlm: bool = False,
                  seed: int = 0) -> AR1Model:
    """Return a new AR1Model: the base VLM's weights plus a freshly initialised expert.

    Args:
        base_vlm_dir: local folder of the base VLM: config.json, tokenizer and preprocessor
            files, weights as model.safetensors or model.safetensors.index.json + shards.
        dtype: dtype of every tensor in the state dict (torch.float32, torch.bfloat16, ...).
        device: where the weights live; the backbone is read straight onto it.
        expert_cfg: expert overrides on the backbone text config (see new_ar1_config).
        overrides: further config.json fields (see new_ar1_config).
        random_vlm: ignore any weights and initialise the backbone randomly from its config
            (tiny demo models); otherwise a folder without safetensors is an error.
        seed: seeds the new token rows, the expert and the projections (and the random VLM).

    Returns:
        AR1Model in eval mode, requires_grad off (as from_pretrained), preprocessor included.

    Raises:
        CheckpointError: see new_ar1_config; no safetensors weights (pickle is refused), or
            weights that do not match the backbone config.
    """
    folder = Path(base_vlm_dir).resolve()
    config = new_ar1_config(folder, expert_cfg, overrides)
    config.raw['dtype'] = str(dtype).removeprefix('torch.')
    source = BackboneSource(folder, 'base VLM folder')
    vlm_config = backbone_config(source, config, dtype)
    with _seeded(seed):
        vlm = (_random_vlm(vlm_config, device) if random_vlm
               else load_base_vlm(folder, config, dtype, device))
        # The VLM is not built a second time: only its meta shell, replaced just below.
        with parameters_on_meta():
            network = AR1Network(config, vlm_config)
        network.vlm = vlm
        _new_action_modules(network, config, vlm_config, device)
    _cast_state(network, dtype)
    network.to(device).eval().requires_grad_(False)
    return AR1Model(network, source, load_preprocessor(config, source))


def load_base_vlm(folder: PathLike, config: AR1Config, dtype: torch.dtype,
                  device: Device = 'cpu') -> torch.nn.Module:
    """Load the base VLM's safetensors weights and extend its vocabulary to config.vocab_size.

    Rows of tokens the base tokenizer lacks (the AR1 tokens, and the padding rows Qwen adds
    past its tokenizer: 151669..151935 for Qwen3-VL-8B, which become `<i0>`..`<i266>`) are
    all initialised alike by transformers' mean resizing: drawn from N(mean, 1e-9 * cov) of
    the base tokenizer's rows, for the input embeddings and the lm_head alike.

    Args:
        folder: base VLM folder (config.json + safetensors).
        config: the AR1 config (vlm_backend, traj_token_start_idx = len(base tokenizer),
            vocab_size = len(extended tokenizer)).
        dtype: parameter dtype.
        device: where transformers puts the weights.

    Returns:
        Qwen3VLForConditionalGeneration or Qwen2_5_VLForConditionalGeneration, sdpa attention,
        embed_tokens and lm_head with config.vocab_size rows.
    """
    try:
        checkpoint.weight_files(Path(folder))
    except CheckpointError as err:
        raise CheckpointError(f'base VLM weights: {err} (pass random_vlm=True for a randomly '
                              'initialised backbone)') from err
    model_cls = _VLM_CLASSES[config.raw['vlm_backend']]
    # sdpa everywhere: the expert inherits it and needs its 4D mask honoured (spec §12.1).
    vlm, info = model_cls.from_pretrained(
        str(folder), dtype=dtype, use_safetensors=True, local_files_only=True,
        attn_implementation='sdpa', device_map=str(torch.device(device)),
        output_loading_info=True)
    problems = {k: sorted(v)[:5] for k, v in info.items() if k != 'error_msgs' and v}
    if problems or info.get('error_msgs'):
        raise CheckpointError(f'{folder}: weights do not match its config.json: '
                              f'{problems or info["error_msgs"]}')
    base_tokens = int(config.traj_token_start_idx)  # <i0> is the first token AR1 adds
    rows = vlm.get_input_embeddings().weight.shape[0]
    vlm.resize_token_embeddings(min(rows, base_tokens), mean_resizing=False)
    vlm.resize_token_embeddings(int(config.vocab_size), mean_resizing=True)
    return vlm


def _random_vlm(vlm_config, device: Device) -> torch.nn.Module:
    """Return the backbone with transformers' random init, built on `device`."""
    with torch.device(device):
        return build_vlm(vlm_config)


def _new_action_modules(network: AR1Network, config: AR1Config, vlm_config,
                        device: Device) -> None:
    """Replace the meta expert and action projections of `network` by initialised ones.

    Same construction and order as AR1Network: expert with transformers' init (Linear
    weights N(0, initializer_range), zero biases, unit norms), then the projections with
    torch's default init. Raises RuntimeError if a parameter is still on meta afterwards.
    """
    with torch.device(device):
        network.expert = build_expert(vlm_config.text_config, config.expert_cfg)
        hidden = network.expert.config.hidden_size
        network.action_in_proj = config.build(
            'action_in_proj_cfg', in_dims=network.action_dims, out_dim=hidden)
        network.action_out_proj = config.build(
            'action_out_proj_cfg', in_features=hidden, out_features=network.action_dims[-1])
    left = [name for name, param in network.named_parameters() if param.is_meta]
    if left:
        raise RuntimeError(f'parameters left uninitialised by the factory: {left[:5]}')


def _cast_state(network: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast floating parameters and persistent buffers to dtype, as from_pretrained reads them.

    Non-persistent buffers (RoPE inverse frequencies) keep the dtype they were built with,
    like a model loaded from the saved checkpoint; tied parameters stay tied.
    """
    for param in network.parameters():
        if param.is_floating_point() and param.dtype != dtype:
            param.data = param.data.to(dtype)
    persistent = set(network.state_dict(keep_vars=True))
    for name, buffer in list(network.named_buffers()):
        if name in persistent and buffer.is_floating_point() and buffer.dtype != dtype:
            owner, _, leaf = name.rpartition('.')
            network.get_submodule(owner).register_buffer(leaf, buffer.to(dtype))


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU and CUDA generators with `seed`; restore their state on exit."""
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield
