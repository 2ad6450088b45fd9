r"""The AR1 inference prompt (official `helper.create_message`) and its text outputs.

The prompt is a 3-message chat rendered with the base VLM's chat template, assistant turn left
open:

    <|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n
    <|im_start|>user\n(<|vision_start|><|image_pad|>*n_i<|vision_end|>) per image
    <|traj_history_start|><|traj_history|>*48<|traj_history_end|>{COC_REQUEST}<|im_end|>\n
    <|im_start|>assistant\n<|cot_start|>

The 48 `<|traj_history|>` slot tokens are then replaced by the history token ids. The model
answers `CoC text<|cot_end|><|traj_future_start|>`. Tokenizer set-up lives in tokens.py and
is re-exported here.
"""
from typing import Dict, List, Sequence, Union

import torch
from transformers import PreTrainedTokenizerBase

from ar1_ros.model.tokens import (
    SPECIAL_TOKEN_KEYS,
    SPECIAL_TOKENS,
    TRAJ_TOKENS,
    TokenIds,
    check_token_ids,
    extend_tokenizer,
    load_tokenizer,
    token_id,
)

__all__ = [
    'COC_REQUEST', 'DEFAULT_ASSISTANT_PREFIX', 'IMAGE_PAD', 'SPECIAL_TOKENS', 'SPECIAL_TOKEN_KEYS',
    'SYSTEM_PROMPT', 'TRAJECTORY_REQUEST', 'TRAJ_TOKENS', 'TokenIds', 'build_chat_ids',
    'build_prompt_ids', 'check_token_ids', 'create_messages', 'decode_reasoning',
    'extend_tokenizer', 'extract_text', 'fuse_history_tokens', 'load_tokenizer', 'render_prompt',
    'token_id',
]

SYSTEM_PROMPT = 'You are a driving assistant that generates safe and accurate actions.'
COC_REQUEST = ('output the chain-of-thought reasoning of the driving process, '
               'then output the future trajectory.')
# The official SFT processor's request when a sample has no reasoning label (trajectory only).
TRAJECTORY_REQUEST = 'output the future trajectory.'
DEFAULT_ASSISTANT_PREFIX = '<|cot_start|>'
IMAGE_PAD = '<|image_pad|>'
TEXT_KEYS = ('cot', 'meta_action', 'answer')


def create_messages(n_images: int, n_history_tokens: int = 48,
                    assistant_prefix: str = DEFAULT_ASSISTANT_PREFIX,
                    request: str = COC_REQUEST) -> List[Dict]:
    """Return the official chat messages: system text, n_images images + request, assistant.

    assistant_prefix opens the assistant turn: `<|cot_start|>` for inference, or e.g.
    `<|cot_start|>{CoC}<|cot_end|><|traj_future_start|>` to feed a given CoC; training passes
    the whole answer. request: the user's instruction after the history tokens.
    """
    history = (SPECIAL_TOKENS['traj_history_start'] +
               SPECIAL_TOKENS['traj_history'] * n_history_tokens +
               SPECIAL_TOKENS['traj_history_end'])
    user = [{'type': 'image'} for _ in range(n_images)]
    user.append({'type': 'text', 'text': history + request})
    return [
        {'role': 'system', 'content': [{'type': 'text', 'text': SYSTEM_PROMPT}]},
        {'role': 'user', 'content': user},
        {'role': 'assistant', 'content': [{'type': 'text', 'text': assistant_prefix}]},
    ]


def render_prompt(tokenizer: PreTrainedTokenizerBase, n_images: int, n_history_tokens: int = 48,
                  assistant_prefix: str = DEFAULT_ASSISTANT_PREFIX,
                  request: str = COC_REQUEST) -> str:
    """Render the messages with the chat template, the assistant turn left open.

    One `<|image_pad|>` per image (not expanded yet). The cut after the assistant prefix follows
    transformers 4.57.1 (`continue_final_message=True`, the official pin): the full chat is
    rendered and cut right after the last occurrence of the stripped prefix. Done here rather
    than by the installed transformers, whose newer cut keeps a prefix's trailing whitespace.
    """
    prefix = assistant_prefix.strip()
    if not prefix:
        raise ValueError('assistant_prefix must not be blank')
    if not tokenizer.chat_template:
        raise ValueError('tokenizer has no chat template (use load_tokenizer)')
    messages = create_messages(n_images, n_history_tokens, assistant_prefix, request)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    cut = text.rfind(prefix)
    if cut < 0:
        raise ValueError('the chat template dropped the assistant prefix')
    return text[:cut + len(prefix)]


def build_prompt_ids(tokenizer: PreTrainedTokenizerBase, tokens_per_image: Sequence[int],
                     n_history_tokens: int = 48,
                     assistant_prefix: str = DEFAULT_ASSISTANT_PREFIX,
                     request: str = COC_REQUEST) -> torch.Tensor:
    """Return the prompt token ids, int64 (1, L), before the history tokens are fused in.

    tokens_per_image: `<|image_pad|>` count of each image in prompt order (grid h * w / merge^2,
    180 for a 320x576 AR1 image), as the Qwen-VL processor expands them.
    """
    text = render_prompt(tokenizer, len(tokens_per_image), n_history_tokens, assistant_prefix,
                         request)
    return _tokenize_with_images(tokenizer, text, tokens_per_image)


def build_chat_ids(tokenizer: PreTrainedTokenizerBase, tokens_per_image: Sequence[int],
                   request: str, answer: str, n_history_tokens: int = 48) -> torch.Tensor:
    """Return the ids of a whole training conversation, int64 (1, L), slots not yet fused.

    The chat template renders the closed conversation (the assistant turn ends with
    `<|im_end|>` and a newline), as the official SFT processor does.
    """
    if not tokenizer.chat_template:
        raise ValueError('tokenizer has no chat template (use load_tokenizer)')
    messages = create_messages(len(tokens_per_image), n_history_tokens, answer, request)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    return _tokenize_with_images(tokenizer, text, tokens_per_image)


def _tokenize_with_images(tokenizer: PreTrainedTokenizerBase, text: str,
                          tokens_per_image: Sequence[int]) -> torch.Tensor:
    """Expand each `<|image_pad|>` to its image's token count and tokenize -> (1, L)."""
    parts = text.split(IMAGE_PAD)
    if len(parts) != len(tokens_per_image) + 1:
        raise ValueError(f'prompt holds {len(parts) - 1} {IMAGE_PAD} but '
                         f'{len(tokens_per_image)} images were given')
    pieces = [parts[0]]
    for n, part in zip(tokens_per_image, parts[1:], strict=True):
        if n <= 0:
            raise ValueError(f'tokens_per_image must be positive, got {n}')
        pieces += [IMAGE_PAD * int(n), part]
    ids = tokenizer(''.join(pieces), add_special_tokens=False)['input_ids']
    return torch.tensor([ids], dtype=torch.int64)


def fuse_history_tokens(input_ids: torch.Tensor, hist_token_ids: torch.Tensor,
                        slot_id: int) -> torch.Tensor:
    """Replace the history slot tokens of input_ids (B, L) by hist_token_ids (B, n), row-major.

    Returns a new tensor (official `replace_pad_token`, a masked scatter). Raises ValueError
    unless the slot count equals hist_token_ids.numel(): masked_scatter would otherwise
    silently use only part of the history, or fail with an opaque error.
    """
    mask = input_ids == slot_id
    n_slots, n_ids = int(mask.sum()), hist_token_ids.numel()
    if n_slots != n_ids:
        raise ValueError(f'{n_slots} history slot tokens ({slot_id}) in input_ids but '
                         f'{n_ids} history token ids')
    return input_ids.masked_scatter(mask, hist_token_ids.to(input_ids))


def extract_text(text: str, key: str) -> str:
    """Return the text of one `<|key_start|> ... <|key_end|>` span of decoded output, stripped.

    key: 'cot', 'meta_action' or 'answer'. As the official `extract_text_tokens`: the text
    before the first `<|key_end|>`, from after the last `<|key_start|>` before it (from the
    beginning when there is none); "" when there is no end token.
    """
    if key not in TEXT_KEYS:
        raise ValueError(f'key must be one of {TEXT_KEYS}, got {key!r}')
    before_end, sep, _ = text.partition(f'<|{key}_end|>')
    if not sep:
        return ''
    start_token = f'<|{key}_start|>'
    start = before_end.rfind(start_token)
    return (before_end[start + len(start_token):] if start >= 0 else before_end).strip()


def decode_reasoning(tokenizer: PreTrainedTokenizerBase,
                     token_ids: Union[Sequence[int], torch.Tensor], key: str = 'cot') -> str:
    """Return the reasoning (CoC) text of one token sequence (1-D ids).

    token_ids: the generated ids (`Slow down ...<|cot_end|><|traj_future_start|>`) or, as the
    official code does, prompt + generated ids; a CoC fed in the prompt is only found in the
    latter. Decoded with special tokens kept, then `extract_text(text, key)`.
    """
    if isinstance(token_ids, torch.Tensor):
        if token_ids.ndim != 1:
            raise ValueError(f'token_ids must be 1-D, got shape {tuple(token_ids.shape)}')
        token_ids = token_ids.tolist()
    text = tokenizer.decode(list(token_ids), skip_special_tokens=False)
    return extract_text(text, key)
