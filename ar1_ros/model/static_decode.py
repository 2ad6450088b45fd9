"""CoC decoding on a static KV cache under torch.compile (CUDA graphs on GPUs).

Decoding is ~70 % of a cycle and bandwidth-bound: per token it is one small forward, so Python
and kernel-launch overhead matter. A `StaticCache` keeps every tensor address and shape fixed,
which lets torch.compile build one graph per (samples, cache length) and, with
`reduce-overhead` on a GPU, replay it as a CUDA graph. Cache lengths are rounded up to `bucket`
tokens and one cache per shape is kept and reused (reset, then refilled with the prompt), so a
deployment compiles a handful of graphs once. The prefill stays dynamic; after decoding, the
filled part is handed back as a DynamicCache for the expert, which appends and crops.
"""
from typing import Dict, Tuple

import torch
from transformers import DynamicCache, StaticCache

Tensor = torch.Tensor
DEFAULT_BUCKET = 256


class StaticDecoder:
    """Compiled decode steps; `begin` loads a prefilled cache, `step` decodes one token."""

    def __init__(self, vlm, bucket: int = DEFAULT_BUCKET, compile_steps: bool = True):
        if bucket < 1:
            raise ValueError(f'bucket must be >= 1, got {bucket}')
        self.vlm, self.bucket = vlm, bucket
        device = vlm.lm_head.weight.device
        mode = 'reduce-overhead' if device.type == 'cuda' else 'default'
        self._forward = (torch.compile(self._decode, mode=mode, dynamic=False)
                         if compile_steps else self._decode)
        self._caches: Dict[Tuple[int, int], StaticCache] = {}
        self.cache: StaticCache = None
        self.length = 0

    def begin(self, cache: DynamicCache, max_new_tokens: int) -> None:
        """Copy a prefilled cache (S rows, L positions) into the static cache of its bucket."""
        rows, length = cache.layers[0].keys.shape[0], cache.get_seq_length()
        size = -(-(length + max_new_tokens + 1) // self.bucket) * self.bucket
        key = (rows, size)
        if key not in self._caches:
            self._caches[key] = StaticCache(config=self.vlm.config.text_config,
                                            max_cache_len=size)
        self.cache = self._caches[key]
        self.cache.reset()
        for index, layer in enumerate(cache.layers):
            self.cache.update(layer.keys, layer.values, index)
        self.length = length

    def step(self, token: Tensor, delta: int) -> Tensor:
        """Feed one token per row (S,) at the next position; return logits (S, V) float32."""
        position = self.length + delta
        positions = torch.full((3, token.shape[0], 1), position, dtype=torch.int64,
                               device=token.device)
        cache_position = torch.tensor([self.length], device=token.device)
        logits = self._forward(token[:, None], positions, cache_position, self.cache)
        self.length += 1
        return logits.clone()  # a CUDA graph reuses its output buffer on the next replay

    def _decode(self, tokens: Tensor, positions: Tensor, cache_position: Tensor,
                cache: StaticCache) -> Tensor:
        out = self.vlm.model(input_ids=tokens, position_ids=positions, past_key_values=cache,
                             use_cache=True, cache_position=cache_position)
        return self.vlm.lm_head(out.last_hidden_state[:, -1]).float()

    def dynamic_cache(self) -> DynamicCache:
        """Return the filled positions as a DynamicCache (copies, for the expert)."""
        cache = DynamicCache()
        for index, layer in enumerate(self.cache.layers):
            cache.update(layer.keys[:, :, :self.length].clone(),
                         layer.values[:, :, :self.length].clone(), index)
        return cache
