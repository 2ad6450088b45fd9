"""The predict pipeline: prompt -> CoC rollout -> flow-matching actions -> trajectory.

Stages are timed with a monotonic clock (synchronising the GPU first, so each stage is charged
its own work).
"""
import dataclasses
import time
from typing import Callable, Dict, Optional

import torch

from ar1_ros.model.conditioning import expert_conditioning
from ar1_ros.model.config import AR1Config
from ar1_ros.model.generation import Sampling, StopTokens, prefill_rollout, rollout
from ar1_ros.model.image_processing import ImageProcessor
from ar1_ros.model.network import AR1Network
from ar1_ros.model.onnx_expert import stack_cache
from ar1_ros.model.prediction import (
    Prediction,
    check_history,
    check_images,
    check_noise,
    check_preprocess_device,
)
from ar1_ros.model.prompt import (
    SPECIAL_TOKENS,
    TRAJECTORY_REQUEST,
    TokenIds,
    build_prompt_ids,
    decode_reasoning,
    fuse_history_tokens,
)

# (keys, values, position_ids, mask) -> velocity_fn(x, t): an exported expert (flow_actions).
ExpertStepFactory = Callable[..., Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]


@dataclasses.dataclass
class Preprocessor:
    """Everything between raw inputs and backbone inputs; shared by inference and training."""

    config: AR1Config
    tokenizer: object
    ids: TokenIds
    images: ImageProcessor

    def history_token_ids(self, xyz: torch.Tensor, hist_tokenizer) -> torch.Tensor:
        """Ego history (16, 3) -> the 48 history token ids (1, 48)."""
        bins = hist_tokenizer.encode(xyz[None])
        return bins + self.ids.hist_token_start

    def prompt(self, images: torch.Tensor, history_ids: torch.Tensor,
               reasoning: bool = True) -> tuple:
        """Images (N, H, W, 3) uint8 + history ids -> (input_ids (1, L), pixels, grid).

        pixels (P, D) float32 and grid (N, 3) int64 are computed on the images' device (numpy:
        CPU); input_ids is a CPU tensor.

        reasoning False: the official trajectory-only prompt, its answer opened with
        `<|traj_future_start|>` (the prefix stage-2 training gives unlabelled samples).
        """
        pixel_values, grid = self.images(images)
        merge = self.images.merge_size
        per_image = (grid.prod(-1) // merge**2).tolist()
        extra = {} if reasoning else {'assistant_prefix': SPECIAL_TOKENS['traj_future_start'],
                                      'request': TRAJECTORY_REQUEST}
        input_ids = build_prompt_ids(self.tokenizer, per_image,
                                     n_history_tokens=history_ids.shape[-1], **extra)
        input_ids = fuse_history_tokens(input_ids, history_ids, self.ids.traj_history)
        return input_ids, pixel_values, grid


def device_prompt(pre: Preprocessor, images: torch.Tensor, history_ids: torch.Tensor,
                  reasoning: bool, vlm_input: tuple, preprocess_device: str) -> tuple:
    """Build the prompt and place it on the model: (input_ids (1, L), pixels, grid (N, 3)).

    images: uint8 (N, H, W, 3); vlm_input: (device, dtype) of the backbone, pixels come out in
    that dtype. preprocess_device 'cpu': resize, normalise and flatten on the CPU, then copy
    the float pixels (the official pipeline, bit for bit); 'model': copy the uint8 frames and
    do all of it on the device, where a GPU resizes with the float32 kernel (within 1 grey
    level of the CPU's at the release ratio, see image_processing). On a CPU model both are the
    same computation.
    """
    device, dtype = vlm_input
    images = _frames_to(images, device) if preprocess_device == 'model' else images.cpu()
    input_ids, pixels, grid = pre.prompt(images, history_ids, reasoning)
    return input_ids.to(device), pixels.to(device, dtype), grid.to(device)


def _frames_to(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy uint8 frames to `device`; to a GPU from page-locked memory, without waiting."""
    if device.type != 'cuda' or images.device.type != 'cpu':
        return images.to(device)
    # A pinned source makes the copy a DMA queued on the stream ahead of the resize kernels
    # (stream order keeps them correct); the caching host allocator reuses the pinned block.
    return images.pin_memory().to(device, non_blocking=True)


class _Clock:
    """Per-stage wall time on a monotonic clock."""

    def __init__(self, device: torch.device):
        self.device = device
        self.timings: Dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.timings[stage] = now - self._last
        self._last = now


def run_predict(net: AR1Network, pre: Preprocessor, images, ego_xyz, ego_rot, *,
                num_samples: int, num_flow_steps: Optional[int], noise, greedy: bool,
                temperature: float, top_p: float, max_reasoning_tokens: int,
                generator: Optional[torch.Generator], reasoning: bool = True,
                expert_step: Optional[ExpertStepFactory] = None,
                decoder=None, preprocess_device: Optional[str] = None) -> Prediction:
    """Run AR1 on one observation; see AR1Model.predict for the arguments."""
    preprocess_device = check_preprocess_device(preprocess_device)
    if num_samples < 1:
        raise ValueError(f'num_samples must be >= 1, got {num_samples}')
    if num_flow_steps is not None and num_flow_steps < 1:
        raise ValueError(f'num_flow_steps must be >= 1, got {num_flow_steps}')
    sampling = Sampling(greedy, temperature, top_p, max_reasoning_tokens)
    device = net.action_out_proj.weight.device
    images, (xyz, rot) = check_images(images), check_history(ego_xyz, ego_rot)
    noise = check_noise(noise, num_samples, net.action_dims)
    clock = _Clock(device)
    hist_ids = pre.history_token_ids(xyz, net.hist_tokenizer)
    input_ids, pixels, grid = device_prompt(pre, images, hist_ids, reasoning,
                                            (device, net.vlm.dtype), preprocess_device)
    clock.lap('preprocess')
    stops = StopTokens(pre.ids.traj_token_start, int(pre.config.traj_vocab_size),
                       pre.ids.traj_future_start, pre.ids.eos, pre.ids.pad)
    inputs = (net.vlm, input_ids, pixels, grid, num_samples)
    roll = (rollout(*inputs, stops, sampling, generator, decoder=decoder) if reasoning
            else prefill_rollout(*inputs))
    clock.lap('reasoning')
    actions = flow_actions(net, roll, pre.ids.traj_future_start, noise, num_flow_steps,
                           generator, expert_step)
    clock.lap('flow_matching')
    result = finish_prediction(net, pre, roll, actions, xyz.to(device), rot.to(device))
    clock.lap('postprocess')
    result.timings = dict(clock.timings, total=sum(clock.timings.values()))
    return result


def flow_actions(net: AR1Network, roll, stop_id: int, noise: Optional[torch.Tensor],
                 num_steps: Optional[int], generator: Optional[torch.Generator],
                 expert_step: Optional[ExpertStepFactory] = None,
                 on_step: Optional[Callable[[], None]] = None) -> tuple:
    """Euler-integrate the expert's velocity from noise; return (actions (S,64,2), found).

    expert_step: an exported engine for the expert (ONNX, TensorRT): called once per cycle
    with the prefix cache stacked over layers, keys and values (L, S, KVH, P, D), positions
    (3, S, 64) and mask (S, 1, 64, P + 64), it returns the velocity function the Euler steps
    call. None runs the torch expert. on_step() is called before each velocity evaluation
    (the profiler's per-step clock).
    """
    samples = roll.sequences.shape[0]
    cache_len = roll.cache.get_seq_length()
    dtype = net.expert.norm.weight.dtype
    cond = expert_conditioning(roll.sequences, cache_len, stop_id, roll.rope_delta,
                               net.action_dims[0], dtype=dtype)
    device = roll.sequences.device
    if noise is None:
        noise = torch.randn((samples, *net.action_dims), generator=generator,
                            device=generator.device if generator is not None else 'cpu')
    noise = noise.to(device, torch.float32)

    def expert(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return net.expert_velocity(x, t, roll.cache, cond.position_ids, cond.mask)

    if expert_step is not None:
        expert = expert_step(*stack_cache(roll.cache), cond.position_ids, cond.mask)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if on_step is not None:
            on_step()
        return expert(x, t)

    actions = net.diffusion.sample(velocity, noise, num_steps=num_steps)
    return actions, cond.found


def finish_prediction(net: AR1Network, pre: Preprocessor, roll, flow: tuple,
                      xyz: torch.Tensor, rot: torch.Tensor) -> Prediction:
    """Turn normalised actions into trajectories and decode each sample's reasoning."""
    actions, found = flow
    samples = actions.shape[0]
    hist_xyz = xyz[None].expand(samples, -1, -1)
    hist_rot = rot[None].expand(samples, -1, -1, -1)
    traj_xyz, traj_rot = net.action_space.action_to_traj(actions, hist_xyz, hist_rot)
    accel, curvature = net.action_space.denormalize(actions)
    generated = [_until_stop(ids, pre.ids.traj_future_start)
                 for ids in roll.sequences[:, roll.prompt_len:].tolist()]
    texts = [decode_reasoning(pre.tokenizer, ids) for ids in generated]
    return Prediction(
        trajectory_xyz=traj_xyz.float().cpu(), trajectory_rot=traj_rot.float().cpu(),
        actions=torch.stack([accel, curvature], dim=-1).float().cpu(), reasoning=texts,
        token_ids=generated, timings={}, stop_found=found.tolist(),
        normalized_actions=actions.float().cpu())


def _until_stop(ids: list, stop_id: int) -> list:
    """Return the ids up to and including the first stop token (the rest is never used)."""
    return ids[:ids.index(stop_id) + 1] if stop_id in ids else ids
