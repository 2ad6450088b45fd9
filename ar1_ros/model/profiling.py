"""An instrumented `AR1Model.predict`: the same outputs, with a per-stage latency breakdown.

Stages (seconds on a monotonic clock, the GPU synchronised at every mark so each stage is
charged its own work):

    preprocess   history tokens, prompt ids, image processor, pixels to the device (or the
                 uint8 frames to the device first, with preprocess_device='model')
    vision       the backbone's vision tower alone (merged features + deepstack features)
    prefill      mRoPE positions, the language model over the prompt with those features,
                 lm_head, the per-sample cache copy
    decode       the CoC loop: one entry per backbone forward (choose the token, feed it)
    flow         expert conditioning + the Euler steps (one entry per step, update included)
    postprocess  actions -> trajectories, text decoding, results to the CPU

Same operations in the same order as `run_predict` (greedy or sampled, fixed noise), so the
trajectories and token ids are equal to predict's. Publishing is the node's part and is not
timed here (benchmarks/bench_node.py measures it).
"""
import dataclasses
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from transformers import DynamicCache

from ar1_ros.model.generation import Sampling, StopTokens, decode_loop, decode_step
from ar1_ros.model.inference import (
    Preprocessor,
    device_prompt,
    finish_prediction,
    flow_actions,
)
from ar1_ros.model.network import AR1Network
from ar1_ros.model.prediction import (
    check_history,
    check_images,
    check_noise,
    check_preprocess_device,
)
from ar1_ros.model.rope import mrope_positions

STAGES = ('preprocess', 'vision', 'prefill', 'decode', 'flow', 'postprocess')


@dataclasses.dataclass
class Breakdown:
    """Latency of one instrumented predict.

    stages: seconds per name of STAGES; decode_steps: seconds per backbone forward after the
    prefill (the token's choice included); flow_steps: seconds per Euler step;
    reasoning_tokens: ids the longest sample generated, up to and including the stop token.
    """

    stages: Dict[str, float]
    decode_steps: List[float]
    flow_steps: List[float]
    reasoning_tokens: int

    @property
    def total(self) -> float:
        """Seconds of the whole predict (sum of the stages)."""
        return sum(self.stages.values())


class _Timer:
    """Monotonic marks; synchronises the GPU first so queued kernels are charged."""

    def __init__(self, device: torch.device):
        self.device = device
        self.stages: Dict[str, float] = {}
        self._last = self.now()

    def now(self) -> float:
        """Return perf_counter() once the device is idle."""
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def lap(self, stage: str) -> float:
        """Charge the time since the previous lap to `stage`; return the mark."""
        now = self.now()
        self.stages[stage] = now - self._last
        self._last = now
        return now


def profile_predict(net: AR1Network, pre: Preprocessor, images, ego_xyz, ego_rot, *,
                    num_samples: int = 1, num_flow_steps: Optional[int] = None, noise=None,
                    sampling: Optional[Sampling] = None,
                    generator: Optional[torch.Generator] = None,
                    forced_tokens: Optional[int] = None, reasoning: bool = True,
                    decoder=None, expert_step=None,
                    preprocess_device: Optional[str] = None) -> tuple:
    """Run predict on one observation and time its stages.

    Args:
        net: the AR1 network (AR1Model.network).
        pre: its preprocessor (AR1Model.preprocessor, or released.IdPreprocessor).
        images: uint8 (n_cameras, n_frames, H, W, 3); ego_xyz (16, 3); ego_rot (16, 3, 3).
        num_samples: S; num_flow_steps: Euler steps K (None: the config's).
        noise: optional initial flow noise (S, 64, 2).
        sampling: decoding settings (None: greedy, 256 tokens at most).
        generator: optional torch.Generator for sampling and noise.
        forced_tokens: T for a latency run on random weights: the stop and eos tokens are
            masked until step T, then the stop token is forced, so exactly T ids are generated
            (sampling.max_new_tokens is ignored). None: decode as predict does.
        reasoning: False times predict(reasoning=False): trajectory-only prompt, no decode.
        decoder, expert_step: the engines predict() takes (static_decode.StaticDecoder; an
            exported or compiled expert, see inference.flow_actions).
        preprocess_device: None or 'cpu', or 'model' (see AR1Model.predict).

    Returns:
        tuple: (Prediction equal to AR1Model.predict's, Breakdown).
    """
    sampling = Sampling(greedy=True) if sampling is None else sampling
    preprocess_device = check_preprocess_device(preprocess_device)
    if forced_tokens is not None:
        if forced_tokens < 1:
            raise ValueError(f'forced_tokens must be >= 1, got {forced_tokens}')
        sampling = dataclasses.replace(sampling, max_new_tokens=forced_tokens + 1)
    with torch.inference_mode():
        return _profile(net, pre, (images, ego_xyz, ego_rot), num_samples, num_flow_steps,
                        noise, sampling, generator,
                        (forced_tokens, reasoning, decoder, expert_step, preprocess_device))


def _profile(net: AR1Network, pre: Preprocessor, inputs: tuple, num_samples: int,
             num_flow_steps: Optional[int], noise, sampling: Sampling,
             generator: Optional[torch.Generator], mode: tuple) -> tuple:
    """Body of profile_predict (inference mode on); mirrors run_predict stage by stage."""
    if num_samples < 1:
        raise ValueError(f'num_samples must be >= 1, got {num_samples}')
    device = net.action_out_proj.weight.device
    images, (xyz, rot) = check_images(inputs[0]), check_history(inputs[1], inputs[2])
    noise = check_noise(noise, num_samples, net.action_dims)
    timer = _Timer(device)
    forced, reasoning, decoder, expert_step, preprocess_device = mode
    prompt = device_prompt(pre, images, pre.history_token_ids(xyz, net.hist_tokenizer),
                           reasoning, (device, net.vlm.dtype), preprocess_device)
    timer.lap('preprocess')
    stops = StopTokens(pre.ids.traj_token_start, int(pre.config.traj_vocab_size),
                       pre.ids.traj_future_start, pre.ids.eos, pre.ids.pad)
    roll, decode_times = _timed_rollout(net.vlm, prompt, num_samples, stops,
                                        (sampling, generator, forced, reasoning, decoder), timer)
    actions, found, flow_times = _timed_flow(net, roll, pre.ids.traj_future_start, noise,
                                             num_flow_steps, generator, timer, expert_step)
    # Built by predict's own code, so both return the very same Prediction.
    result = finish_prediction(net, pre, roll, (actions, found), xyz.to(device), rot.to(device))
    timer.lap('postprocess')
    result.timings = dict(timer.stages, total=sum(timer.stages.values()))
    tokens = max(len(ids) for ids in result.token_ids)
    return result, Breakdown(dict(timer.stages), decode_times, flow_times, tokens)


@dataclasses.dataclass
class _Rollout:
    """What flow matching and postprocessing read of generation.Rollout."""

    sequences: torch.Tensor
    prompt_len: int
    cache: DynamicCache
    rope_delta: int


def _timed_rollout(vlm, prompt: tuple, num_samples: int, stops: StopTokens, decoding: tuple,
                   timer: _Timer) -> tuple:
    """generation.rollout with the vision tower run on its own; returns (rollout, step times)."""
    input_ids, pixels, grid = prompt
    # Exactly what the model's forward does with pixel_values, split out to be timed alone.
    features = vlm.model.get_image_features(pixels, grid, return_dict=True)
    timer.lap('vision')
    merge = vlm.config.vision_config.spatial_merge_size
    positions, delta = mrope_positions(input_ids, grid, vlm.config.image_token_id, merge)
    cache = DynamicCache(config=vlm.config.text_config)
    out = vlm.model(input_ids=input_ids, mm_encoder_outputs={'image': features},
                    image_grid_thw=grid, position_ids=positions, past_key_values=cache,
                    use_cache=True)
    logits = vlm.lm_head(out.last_hidden_state[:, -1]).float()
    if num_samples > 1:
        cache.batch_repeat_interleave(num_samples)
        logits = logits.repeat(num_samples, 1)
    timer.lap('prefill')
    sampling, generator, forced, reasoning, decoder = decoding
    generated, times = [], []
    if reasoning:
        generated, times = _timed_decode(vlm, logits, (cache, delta), stops,
                                         (sampling, generator, forced, decoder), timer)
        if decoder is not None:
            cache = decoder.dynamic_cache()
    sequences = torch.cat([input_ids.expand(num_samples, -1), *(
        [torch.stack(generated, 1)] if generated else [])], 1)
    timer.lap('decode')
    return _Rollout(sequences, input_ids.shape[1], cache, delta), times


def _timed_decode(vlm, logits: torch.Tensor, prefix: tuple, stops: StopTokens,
                  decoding: tuple, timer: _Timer) -> tuple:
    """Run generation's decode loop, timed per forward; return (ids list of (S,), times).

    prefix: (DynamicCache, rope delta); decoding: (sampling, generator, forced length,
    StaticDecoder or None).
    """
    (cache, delta), (sampling, generator, forced, decoder) = prefix, decoding
    if decoder is not None:
        decoder.begin(cache, sampling.max_new_tokens)
    times: List[float] = []
    marks = [timer.now()]

    def on_forward() -> None:
        marks.append(timer.now())
        times.append(marks[-1] - marks[-2])

    adjust = None if forced is None else (lambda scores, step: _force(scores, step, forced,
                                                                      stops))
    step = ((lambda token: decoder.step(token, delta)) if decoder is not None
            else (lambda token: decode_step(vlm, token, cache, delta)))
    generated = decode_loop(step, logits, stops, sampling, generator, adjust, on_forward)
    return generated, times


def _force(logits: torch.Tensor, step: int, count: int, stops: StopTokens) -> None:
    """Mask the stop and eos tokens before step `count` - 1, force the stop token there."""
    if step < count - 1:
        logits[:, [stops.stop, stops.eos]] = float('-inf')
    elif step == count - 1:
        logits.fill_(float('-inf'))
        logits[:, stops.stop] = 0.0


def _timed_flow(net: AR1Network, roll: _Rollout, stop_id: int, noise: Optional[torch.Tensor],
                num_steps: Optional[int], generator: Optional[torch.Generator],
                timer: _Timer, expert_step=None) -> tuple:
    """inference.flow_actions, timed per Euler step; returns (actions, found, step times)."""
    # Step i runs from its velocity call to the next, so its Euler update is charged to it.
    marks: List[float] = []
    actions, found = flow_actions(net, roll, stop_id, noise, num_steps, generator,
                                  expert_step, on_step=lambda: marks.append(timer.now()))
    marks.append(timer.lap('flow'))
    return actions, found, [b - a for a, b in zip(marks[:-1], marks[1:], strict=True)]


def summarize(runs: Sequence[Breakdown]) -> Dict[str, Dict[str, float]]:
    """Median and p90 (seconds) per stage over runs, plus per-token, per-step and total.

    Args:
        runs: breakdowns of repeated runs (at least one).

    Returns:
        dict: row name -> {'median', 'p90', 'count'}; rows are STAGES, 'decode_per_token' and
        'flow_per_step' (each run's median, count = per run) and 'total'.
    """
    if not runs:
        raise ValueError('summarize needs at least one run')
    rows = {stage: ([r.stages[stage] for r in runs], 1) for stage in STAGES}
    rows['decode_per_token'] = ([_median(r.decode_steps) for r in runs],
                                len(runs[-1].decode_steps))
    rows['flow_per_step'] = ([_median(r.flow_steps) for r in runs], len(runs[-1].flow_steps))
    rows['total'] = ([r.total for r in runs], 1)
    return {name: {'median': float(np.median(values)), 'p90': float(np.percentile(values, 90)),
                   'count': count} for name, (values, count) in rows.items()}


def _median(values: Sequence[float]) -> float:
    """Median of values, 0.0 for none (a rollout that stopped at its first token)."""
    return float(np.median(values)) if values else 0.0
