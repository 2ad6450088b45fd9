"""The real backend: AR1Model on torch, seeded per cycle so replays give the same plans."""
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ar1_ros.model import AR1Model, Prediction
from ar1_ros.model.fp8 import check_fp8_support, load_fp8
from ar1_ros.model.static_decode import StaticDecoder
from ar1_ros.runtime.backends.base import BackendSettings, check_images
from ar1_ros.runtime.backends.expert_engines import make_expert_step
from ar1_ros.runtime.types import BackendOutput, Observation

TORCH_DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}
# backend.dtype 'fp8' is no torch dtype: bfloat16 weights, the language model's linear layers
# converted to float8 by torchao at load (ar1_ros.model.fp8).
FP8 = 'fp8'
_U64 = 2 ** 64


def cycle_seed(seed: int, t0_ns: int) -> int:
    """Return a 63-bit generator seed that depends only on (seed, t0_ns).

    The node and offline evaluation seed every cycle with this, so the same settings and the
    same t0 reproduce the same reasoning and trajectory whatever ran before.
    """
    words = np.random.SeedSequence([int(seed) % _U64, int(t0_ns) % _U64]).generate_state(
        2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def _existing_folder(path: str, what: str) -> Path:
    """Return Path(path); FileNotFoundError naming `what` and the path if it is no folder."""
    if not path:
        raise FileNotFoundError(f'{what} folder is not set (empty path)')
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f'{what} folder not found: {folder}')
    return folder


def load_model(folder: Path, dtype: str, device: torch.device,
               vlm_path: Optional[Path] = None) -> AR1Model:
    """Load the checkpoint with backend.dtype `dtype` (a TORCH_DTYPES key or 'fp8') on device.

    The node, offline evaluation and `ar1 bench` all load through here, so they time and run
    the same model. 'fp8' raises FP8UnsupportedError before reading anything where it cannot run.
    """
    if dtype == FP8:
        return load_fp8(folder, device, vlm_path)
    return AR1Model.from_pretrained(folder, dtype=TORCH_DTYPES[dtype], device=device,
                                    vlm_path=vlm_path)


class TorchBackend:
    """AR1Model.from_pretrained + predict behind the InferenceBackend contract.

    Raises FileNotFoundError (naming the path) for a missing checkpoint or vlm folder,
    RuntimeError for a CUDA device without CUDA, FP8UnsupportedError (a RuntimeError naming the
    device and its capability) for dtype 'fp8' where it cannot run, both before any weight is
    read; CheckpointError from the loader passes through. model_id is the checkpoint folder's
    name.
    """

    name = 'torch'

    def __init__(self, settings: BackendSettings):
        folder = _existing_folder(settings.checkpoint, 'checkpoint')
        vlm_path: Optional[Path] = None
        if settings.vlm_path:
            vlm_path = _existing_folder(settings.vlm_path, 'vlm_path')
        self.device = torch.device(settings.device)
        if settings.dtype == FP8:
            # First: its message says what fp8 needs, which "CUDA is not available" would not.
            check_fp8_support(self.device)
        if self.device.type == 'cuda' and not torch.cuda.is_available():
            raise RuntimeError(f'backend device {settings.device!r} requested but CUDA is not '
                               f'available')
        self.settings = settings
        self.model_id = folder.resolve().name
        self.model: Optional[AR1Model] = load_model(folder, settings.dtype, self.device,
                                                    vlm_path)
        self.dt = float(self.model.network.action_space.dt)
        self.expert_step = make_expert_step(settings.expert_engine, settings.expert_file, folder,
                                            self.model.network)
        self.decoder = (StaticDecoder(self.model.network.vlm) if settings.compile_decode
                        else None)

    def infer(self, images: np.ndarray, observation: Observation) -> BackendOutput:
        """Predict settings.num_samples plans for images uint8 (C, F, H, W, 3).

        Uses observation.history.xyz (16, 3) and .rot (16, 3, 3); the generator is seeded with
        cycle_seed(settings.seed, observation.t0_ns).
        """
        if self.model is None:
            raise RuntimeError('torch backend used after close()')
        check_images(images, observation)
        s = self.settings
        generator = torch.Generator(device=self.model.device)
        generator.manual_seed(cycle_seed(s.seed, observation.t0_ns))
        prediction = self.model.predict(
            images, observation.history.xyz, observation.history.rot,
            num_samples=s.num_samples, num_flow_steps=s.num_flow_steps or None,
            greedy=s.greedy, temperature=s.temperature, top_p=s.top_p,
            max_reasoning_tokens=s.max_reasoning_tokens, generator=generator,
            reasoning=s.reasoning, expert_step=self.expert_step, decoder=self.decoder,
            preprocess_device=s.preprocess_device)
        return to_backend_output(prediction, self.dt)

    def close(self) -> None:
        """Drop the model and return cached CUDA memory to the driver."""
        self.model = None
        if self.device.type == 'cuda':
            torch.cuda.empty_cache()


def to_backend_output(prediction: Prediction, dt: float) -> BackendOutput:
    """Convert a Prediction to float64 numpy arrays (S, 64, 3), (S, 64, 3, 3), (S, 64, 2).

    token_counts are the generated token ids per sample (up to and including the stop token).
    The model's own 'total' is dropped: the worker's 'total' covers the whole cycle.
    """
    def as_numpy(tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().to('cpu', torch.float64).numpy()

    return BackendOutput(
        trajectory_xyz=as_numpy(prediction.trajectory_xyz),
        trajectory_rot=as_numpy(prediction.trajectory_rot),
        actions=as_numpy(prediction.actions),
        reasoning=list(prediction.reasoning),
        token_counts=[len(ids) for ids in prediction.token_ids],
        timings={k: float(v) for k, v in prediction.timings.items() if k != 'total'},
        dt=dt)
