"""`AR1Model`: load the official checkpoint format, predict, save it back.

model = AR1Model.from_pretrained(path, dtype=torch.float32, device='cpu')
pred = model.predict(images, ego_history_xyz, ego_history_rot, num_samples=1)
model.save_pretrained(out_path)
"""
from pathlib import Path
import shutil
from typing import Optional, Union

import torch

from ar1_ros.model import checkpoint
from ar1_ros.model.backbone import BACKBONE_DIR, BackboneSource, backbone_config, resolve_backbone
from ar1_ros.model.config import AR1Config, CheckpointError, load_config
from ar1_ros.model.image_processing import ImageProcessor
from ar1_ros.model.inference import Preprocessor, run_predict
from ar1_ros.model.network import AR1Network, parameters_on_meta
from ar1_ros.model.prediction import Prediction
from ar1_ros.model.prompt import TokenIds, extend_tokenizer, load_tokenizer

PathLike = Union[str, Path]
# Backbone files worth carrying into a saved checkpoint (never its weights).
_BACKBONE_SUFFIXES = ('.json', '.jinja', '.txt', '.model', '.tiktoken')


class AR1Model:
    """Alpamayo-R1: Qwen-VL backbone writing a CoC, flow-matching expert writing 64 actions.

    `network` is the torch module (state dict = the official layout); `preprocessor` turns
    camera images and the ego history into the prompt, or is None when no tokenizer was found.
    """

    def __init__(self, network: AR1Network, backbone: BackboneSource,
                 preprocessor: Optional[Preprocessor]):
        self.network = network
        self.backbone = backbone
        self.preprocessor = preprocessor

    @property
    def config(self) -> AR1Config:
        """The checkpoint's config (official fields)."""
        return self.network.config

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return self.network.action_out_proj.weight.device

    @classmethod
    def from_pretrained(cls, path: PathLike, dtype: torch.dtype = torch.float32,
                        device: Union[str, torch.device] = 'cpu',
                        vlm_path: Optional[PathLike] = None) -> 'AR1Model':
        """Load a checkpoint folder (config.json + safetensors); no network access.

        vlm_path: a local folder with the backbone's config/tokenizer/preprocessor files, for
        checkpoints whose `vlm_name_or_path` is a Hub id that is not cached here.
        Raises CheckpointError naming the problem for anything we refuse to load.
        """
        folder = Path(path)
        config = load_config(folder)
        source = resolve_backbone(config.vlm_name_or_path, folder, vlm_path)
        network = build_network(config, source, dtype)
        # Tensors go straight to `device`: a 22 GB checkpoint never sits in host RAM at once.
        checkpoint.load_into(network, checkpoint.read_tensors(folder, dtype, device))
        network.to(device).eval().requires_grad_(False)
        return cls(network, source, load_preprocessor(config, source))

    def predict(self, images, ego_history_xyz, ego_history_rot, *, num_samples: int = 1,
                num_flow_steps: Optional[int] = None, noise=None, greedy: bool = False,
                temperature: float = 0.6, top_p: float = 0.98, max_reasoning_tokens: int = 256,
                generator: Optional[torch.Generator] = None,
                reasoning: bool = True, expert_step=None, decoder=None,
                preprocess_device: Optional[str] = None) -> Prediction:
        """Predict `num_samples` trajectories (64 points, 6.4 s) with their reasoning.

        images: uint8 (n_cameras, n_frames, H, W, 3) RGB, cameras in prompt order;
        ego_history_xyz (16, 3) and ego_history_rot (16, 3, 3) in the ego frame at t0;
        noise: optional initial flow noise (num_samples, 64, 2). numpy or torch inputs.
        reasoning False: trajectory only, from the official trajectory-only prompt (no CoC
        decoding at all: one prefill, then the flow steps); `reasoning` is then ''.
        expert_step: run the expert's flow steps on an exported engine instead of torch (see
        inference.flow_actions; runtime.onnx_runner and trt_runner provide them).
        decoder: a static_decode.StaticDecoder for the reasoning (compiled, static cache).
        preprocess_device: where the images are resized and normalised: None or 'cpu' (the
        official pipeline, bit for bit), 'model' (uint8 frames copied to the weights' device
        first; on a GPU within 1 grey level of 'cpu' at the release ratio, see
        image_processing); ValueError for anything else.
        """
        if self.preprocessor is None:
            raise CheckpointError(
                f'no tokenizer for backbone {self.config.vlm_name_or_path!r} '
                f'({self.backbone.origin}): pass vlm_path= a folder with its tokenizer files')
        with torch.inference_mode():
            return run_predict(
                self.network, self.preprocessor, images, ego_history_xyz, ego_history_rot,
                num_samples=num_samples, num_flow_steps=num_flow_steps, noise=noise,
                greedy=greedy, temperature=temperature, top_p=top_p,
                max_reasoning_tokens=max_reasoning_tokens, generator=generator,
                reasoning=reasoning, expert_step=expert_step, decoder=decoder,
                preprocess_device=preprocess_device)

    def save_pretrained(self, path: PathLike, max_shard_bytes: int = 5 * 2**30,
                        state: Optional[dict] = None, check: bool = True) -> None:
        """Write config.json + safetensors (official format), backbone files in base_vlm/.

        state: the tensors to write instead of the network's own (a trainer's full weights
        gathered from shards, or with LoRA adapters merged); names and shapes are checked
        against the network unless check is False (see checkpoint.save_tensors).
        """
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / 'config.json').write_text(self.config.to_json())
        checkpoint.save_tensors(self.network, folder, max_shard_bytes, state, check)
        target = folder / BACKBONE_DIR
        if target.resolve() == self.backbone.folder.resolve():
            return
        target.mkdir(exist_ok=True)
        for item in sorted(self.backbone.folder.iterdir()):
            # A base VLM's weight index would name shards that are not copied.
            if (item.is_file() and item.suffix in _BACKBONE_SUFFIXES
                    and not item.name.endswith('.index.json')):
                shutil.copyfile(item, target / item.name)


def build_network(config: AR1Config, source: BackboneSource, dtype: torch.dtype) -> AR1Network:
    """Build the module tree with parameters on the meta device, ready for `load_into`."""
    vlm_config = backbone_config(source, config, dtype)
    with parameters_on_meta():
        return AR1Network(config, vlm_config)


def load_preprocessor(config: AR1Config, source: BackboneSource) -> Optional[Preprocessor]:
    """Tokenizer (extended as the official code does) and image processor, if present."""
    if not source.has_tokenizer:
        return None
    tokenizer = load_tokenizer(source.folder)
    extend_tokenizer(tokenizer, config.traj_vocab_size,
                     add_special_tokens=bool(config.raw.get('add_special_tokens', True)))
    ids = TokenIds.from_tokenizer(tokenizer, config.future_vocab_size)
    ids.check_config(config.raw)
    images = ImageProcessor.from_folder(source.folder, min_pixels=config.raw.get('min_pixels'),
                                        max_pixels=config.raw.get('max_pixels'))
    return Preprocessor(config, tokenizer, ids, images)
