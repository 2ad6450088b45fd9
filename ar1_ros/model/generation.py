"""Chain-of-Causation generation with the backbone, keeping the KV cache for the expert.

Mirrors the official rollout (spec §7): `<iK>` trajectory tokens are masked out of the logits,
rows that emit the generation eos (`<|im_end|>`) are padded from then on, and generation stops one
step after every row has emitted `<|traj_future_start|>`, so that token is in the cache. The
prompt is prefilled once and its cache copied per sample (the official code prefills each
sample; the values are the same).
"""
import dataclasses
from typing import Callable, List, Optional

import torch
from transformers import DynamicCache

from ar1_ros.model.rope import mrope_positions


@dataclasses.dataclass(frozen=True)
class Sampling:
    """Decoding settings: greedy argmax, or temperature then nucleus (top-p) sampling."""

    greedy: bool = False
    temperature: float = 0.6
    top_p: float = 0.98
    max_new_tokens: int = 256

    def __post_init__(self):
        if not self.greedy and not self.temperature > 0:
            raise ValueError(f'temperature must be > 0 when sampling, got {self.temperature}')
        if not 0 < self.top_p <= 1:
            raise ValueError(f'top_p must be in (0, 1], got {self.top_p}')
        if self.max_new_tokens < 1:
            raise ValueError(f'max_reasoning_tokens must be >= 1, got {self.max_new_tokens}')


@dataclasses.dataclass
class Rollout:
    """Result of generation: sequences (S, L+G) as generated, the cache and its positions."""

    sequences: torch.Tensor
    prompt_len: int
    cache: DynamicCache
    rope_delta: int
    logits: List[torch.Tensor]  # per step (S, V), masked; only when keep_logits (tests)


@dataclasses.dataclass(frozen=True)
class StopTokens:
    """Token ids that steer generation."""

    traj_start: int  # first `<iK>` id
    traj_count: int  # number of `<iK>` ids masked out of the CoC
    stop: int  # `<|traj_future_start|>`
    eos: int  # `<|im_end|>`
    pad: int


def prefill(vlm, input_ids: torch.Tensor, pixel_values: torch.Tensor,
            image_grid_thw: torch.Tensor) -> tuple:
    """Run the prompt (1, L) with its images; return (last logits (1, V), cache, rope_delta)."""
    merge = vlm.config.vision_config.spatial_merge_size
    positions, delta = mrope_positions(input_ids, image_grid_thw, vlm.config.image_token_id,
                                       merge)
    cache = DynamicCache(config=vlm.config.text_config)
    out = vlm.model(input_ids=input_ids, pixel_values=pixel_values,
                    image_grid_thw=image_grid_thw, position_ids=positions,
                    past_key_values=cache, use_cache=True)
    logits = vlm.lm_head(out.last_hidden_state[:, -1])
    return logits.float(), cache, delta


def choose(scores: torch.Tensor, sampling: Sampling,
           generator: Optional[torch.Generator]) -> torch.Tensor:
    """Pick the next token per row from masked logits (S, V) -> (S,) int64."""
    if sampling.greedy:
        return scores.argmax(dim=-1)
    scores = scores / sampling.temperature
    if sampling.top_p < 1:
        sorted_scores, order = scores.sort(dim=-1, descending=True)
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        # Drop a token once the mass before it already reaches top_p; the top one always stays.
        drop = (cumulative - sorted_scores.softmax(dim=-1)) >= sampling.top_p
        sorted_scores = sorted_scores.masked_fill(drop, float('-inf'))
        scores = torch.full_like(scores, float('-inf')).scatter(-1, order, sorted_scores)
    probs = scores.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def rollout(vlm, input_ids: torch.Tensor, pixel_values: torch.Tensor,
            image_grid_thw: torch.Tensor, num_samples: int, tokens: StopTokens,
            sampling: Sampling, generator: Optional[torch.Generator] = None,
            keep_logits: bool = False, decoder=None) -> Rollout:
    """Generate `num_samples` CoC continuations of one prompt (1, L).

    keep_logits keeps every step's (S, V) logits for parity checks; off by default because at
    the release vocabulary (155,697) 256 steps would hold ~160 MB per sample. decoder: a
    static_decode.StaticDecoder running the decoding steps (compiled, static cache).
    """
    logits, cache, delta = prefill(vlm, input_ids, pixel_values, image_grid_thw)
    if num_samples > 1:
        cache.batch_repeat_interleave(num_samples)
        logits = logits.repeat(num_samples, 1)
    if decoder is None:
        def step(token: torch.Tensor) -> torch.Tensor:
            return decode_step(vlm, token, cache, delta)
    else:
        decoder.begin(cache, sampling.max_new_tokens)

        def step(token: torch.Tensor) -> torch.Tensor:
            return decoder.step(token, delta)
    kept: List[torch.Tensor] = []
    generated = decode_loop(step, logits, tokens, sampling, generator,
                            adjust=(lambda scores, _: kept.append(scores)) if keep_logits
                            else None)
    if decoder is not None:
        cache = decoder.dynamic_cache()
    sequences = torch.cat([input_ids.expand(num_samples, -1), torch.stack(generated, 1)], 1)
    return Rollout(sequences, input_ids.shape[1], cache, delta, kept)


def decode_loop(step_fn: Callable[[torch.Tensor], torch.Tensor], logits: torch.Tensor,
                tokens: StopTokens, sampling: Sampling,
                generator: Optional[torch.Generator] = None,
                adjust: Optional[Callable[[torch.Tensor, int], None]] = None,
                on_forward: Optional[Callable[[], None]] = None) -> List[torch.Tensor]:
    """Decode from the prefill's logits (S, V); return the chosen ids, one (S,) per step.

    step_fn(token (S,)) feeds the chosen ids and returns the next logits (S, V). The official
    stop rule: `<iK>` ids masked, rows that emitted eos padded, end one step after every row
    emitted the stop token. adjust(logits, step) may edit (or record) each step's masked logits
    before the choice; on_forward() is called after each decoding forward.
    """
    finished = torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)
    stop_seen = torch.zeros_like(finished)
    generated: List[torch.Tensor] = []
    for step in range(sampling.max_new_tokens):
        logits[:, tokens.traj_start:tokens.traj_start + tokens.traj_count] = float('-inf')
        if adjust is not None:
            adjust(logits, step)
        token = choose(logits, sampling, generator)
        token = torch.where(finished, torch.full_like(token, tokens.pad), token)
        generated.append(token)
        stop_after = bool(stop_seen.all())  # every row emitted the stop token one step ago
        stop_seen |= token == tokens.stop
        finished |= token == tokens.eos
        if stop_after or bool(finished.all()) or step == sampling.max_new_tokens - 1:
            break
        logits = step_fn(token)
        if on_forward is not None:
            on_forward()
    return generated


def prefill_rollout(vlm, input_ids: torch.Tensor, pixel_values: torch.Tensor,
                    image_grid_thw: torch.Tensor, num_samples: int) -> Rollout:
    """Prefill a prompt that already ends in `<|traj_future_start|>`; generate nothing.

    Reasoning off: the expert conditions on the prompt alone, so each sample is one prefill
    (shared) and its flow steps.
    """
    _, cache, delta = prefill(vlm, input_ids, pixel_values, image_grid_thw)
    if num_samples > 1:
        cache.batch_repeat_interleave(num_samples)
    return Rollout(input_ids.expand(num_samples, -1), input_ids.shape[1], cache, delta, [])


def decode_step(vlm, token: torch.Tensor, cache: DynamicCache, delta: int) -> torch.Tensor:
    """Feed one token per row (S,) at the next cache position; return logits (S, V)."""
    position = cache.get_seq_length() + delta
    positions = torch.full((3, token.shape[0], 1), position, dtype=torch.int64,
                           device=token.device)
    out = vlm.model(input_ids=token[:, None], position_ids=positions, past_key_values=cache,
                    use_cache=True)
    return vlm.lm_head(out.last_hidden_state[:, -1]).float()
