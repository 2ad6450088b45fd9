"""AR1 vocabulary: tokenizer loading, the official vocabulary extension and the ids it yields.

AR1 extends the Qwen3-VL tokenizer at model construction, and every id the checkpoint was
trained with depends on the order: first `<i0>` .. `<i{n-1}>` as normal tokens (n =
traj_vocab_size, 4000 in the release), then the special tokens `<|key|>` for the keys of
`SPECIAL_TOKEN_KEYS` in that order (`<|image_pad|>` already exists and keeps its Qwen id).
With the release Qwen3-VL tokenizer (151669 tokens) that gives `<i0>` = 151669,
`<|traj_future_start|>` = 155681, `<|traj_history|>` = 155684 and 155697 tokens in all.
"""
import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from transformers import AutoTokenizer, PreTrainedTokenizerBase

# The official SPECIAL_TOKENS keys, in the official order (the order fixes the ids).
SPECIAL_TOKEN_KEYS = (
    'prompt_start', 'prompt_end', 'image_start', 'image_pre_tkn', 'image_end',
    'traj_history_start', 'traj_history_pre_tkn', 'traj_history_end', 'cot_start', 'cot_end',
    'meta_action_start', 'meta_action_end', 'traj_future_start', 'traj_future_pre_tkn',
    'traj_future_end', 'traj_history', 'traj_future', 'image_pad', 'vectorized_wm',
    'vectorized_wm_start', 'vectorized_wm_end', 'vectorized_wm_pre_tkn', 'route_start',
    'route_pad', 'route_end', 'question_start', 'question_end', 'answer_start', 'answer_end',
)
SPECIAL_TOKENS = {key: f'<|{key}|>' for key in SPECIAL_TOKEN_KEYS}

# The official TRAJ_TOKEN set, in its order: the keys of config.json `traj_token_ids`, and the
# only special tokens added when `add_special_tokens` is false.
TRAJ_TOKENS = {
    'history': '<|traj_history|>',
    'future': '<|traj_future|>',
    'history_start': '<|traj_history_start|>',
    'future_start': '<|traj_future_start|>',
    'history_end': '<|traj_history_end|>',
    'future_end': '<|traj_future_end|>',
}


def load_tokenizer(folder: Union[str, Path]) -> PreTrainedTokenizerBase:
    """Load the base VLM tokenizer of a local model folder (no network), with its chat template.

    transformers reads chat_template.jinja (or chat_template.json) itself; the fallback below
    covers versions that do not. Raises ValueError when the folder has no chat template.
    """
    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if not tokenizer.chat_template:
        jinja, js = folder / 'chat_template.jinja', folder / 'chat_template.json'
        if jinja.is_file():
            tokenizer.chat_template = jinja.read_text()
        elif js.is_file():
            tokenizer.chat_template = json.loads(js.read_text())['chat_template']
        else:
            raise ValueError(f'{folder} has no chat template (chat_template.jinja/json)')
    return tokenizer


def extend_tokenizer(tokenizer: PreTrainedTokenizerBase, traj_vocab_size: Optional[int] = 4000,
                     add_special_tokens: bool = True) -> PreTrainedTokenizerBase:
    """Add the AR1 tokens to `tokenizer` in place, in the official order, and return it.

    `<i0>` .. `<i{traj_vocab_size - 1}>` as normal tokens (skipped when traj_vocab_size is None
    or 0), then SPECIAL_TOKENS (add_special_tokens, the release) or only the 6 TRAJ_TOKENS as
    special tokens. Raises ValueError if the `<iK>` tokens were already there: a second
    extension would silently leave ids that no longer follow the official layout.
    """
    if traj_vocab_size:
        added = tokenizer.add_tokens([f'<i{v}>' for v in range(traj_vocab_size)])
        if added != traj_vocab_size:
            raise ValueError(f'tokenizer already holds {traj_vocab_size - added} of the '
                             f'<iK> tokens: extend a fresh base tokenizer')
    tokens = SPECIAL_TOKENS if add_special_tokens else TRAJ_TOKENS
    tokenizer.add_tokens(list(tokens.values()), special_tokens=True)
    return tokenizer


def token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    """Return the id of one whole token; ValueError if the tokenizer does not have it."""
    idx = tokenizer.convert_tokens_to_ids(token)
    if idx is None or idx == tokenizer.unk_token_id or \
            tokenizer.convert_ids_to_tokens(idx) != token:
        raise ValueError(f'token {token!r} is not in the tokenizer (not extended for AR1?)')
    return int(idx)


def _optional_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    """Return the id of token, or -1 when the tokenizer does not have it."""
    try:
        return token_id(tokenizer, token)
    except ValueError:
        return -1


@dataclasses.dataclass(frozen=True)
class TokenIds:
    """The token ids the AR1 model needs, read from an extended tokenizer.

    `<iK>` tokens: [traj_token_start, traj_token_start + traj_vocab_size); the future
    trajectory bins come first (future_vocab_size of them), the history bins start at
    hist_token_start = traj_token_start + future_vocab_size. traj_history / traj_future are
    the slot tokens; eos is `<|im_end|>` (end of a chat turn); vocab_size = len(tokenizer),
    the number of embedding rows.
    """

    traj_token_start: int
    traj_vocab_size: int
    future_vocab_size: int
    hist_token_start: int
    traj_history: int
    traj_future: int
    traj_history_start: int
    traj_history_end: int
    traj_future_start: int
    traj_future_end: int
    cot_start: int
    cot_end: int
    image_pad: int
    vision_start: int
    vision_end: int
    video_pad: int  # -1 when the tokenizer has no video token
    pad: int
    eos: int
    vocab_size: int

    @classmethod
    def from_tokenizer(cls, tokenizer: PreTrainedTokenizerBase, future_vocab_size: int,
                       traj_vocab_size: int = 4000) -> 'TokenIds':
        """Read the ids from a tokenizer extended by `extend_tokenizer`.

        future_vocab_size: number of future-trajectory bins (traj_tokenizer_cfg.num_bins, 3000
        in the release). Raises ValueError when a token is missing, the `<iK>` block is not
        contiguous, or future_vocab_size does not leave room for history bins.
        """
        if not 0 <= future_vocab_size < traj_vocab_size:
            raise ValueError(f'future_vocab_size {future_vocab_size} must be in '
                             f'[0, traj_vocab_size={traj_vocab_size})')
        start = token_id(tokenizer, '<i0>')
        if token_id(tokenizer, f'<i{traj_vocab_size - 1}>') != start + traj_vocab_size - 1:
            raise ValueError('the <iK> tokens are not contiguous')
        if tokenizer.pad_token_id is None:
            raise ValueError('tokenizer has no pad token')
        named = {k: token_id(tokenizer, SPECIAL_TOKENS[k]) for k in (
            'traj_history', 'traj_future', 'traj_history_start', 'traj_history_end',
            'traj_future_start', 'traj_future_end', 'cot_start', 'cot_end', 'image_pad')}
        return cls(traj_token_start=start, traj_vocab_size=traj_vocab_size,
                   future_vocab_size=future_vocab_size,
                   hist_token_start=start + future_vocab_size, **named,
                   vision_start=token_id(tokenizer, '<|vision_start|>'),
                   vision_end=token_id(tokenizer, '<|vision_end|>'),
                   video_pad=_optional_id(tokenizer, '<|video_pad|>'),
                   pad=int(tokenizer.pad_token_id), eos=token_id(tokenizer, '<|im_end|>'),
                   vocab_size=len(tokenizer))

    def traj_token_ids(self) -> dict:
        """Return the config.json-style `traj_token_ids` dict (TRAJ_TOKENS keys -> ids)."""
        return {key: getattr(self, 'traj_' + key) for key in TRAJ_TOKENS}

    def check_config(self, config: Mapping[str, Any]) -> None:
        """Check these ids against an AR1 config.json dict (see `check_token_ids`)."""
        check_token_ids(self, config)


def check_token_ids(ids: TokenIds, config: Mapping[str, Any]) -> None:
    """Check `ids` against the ids stored in an AR1 config.json dict.

    Compares `traj_token_start_idx`, every entry of `traj_token_ids`, `vocab_size` and, when
    present, `traj_vocab_size`. Raises ValueError naming the first missing key or mismatch
    (a tokenizer that does not match the checkpoint would feed the model wrong tokens).
    """
    traj = config.get('traj_token_ids')
    if not isinstance(traj, Mapping):
        raise ValueError('config has no traj_token_ids dict')
    expected = [('traj_token_start_idx', config.get('traj_token_start_idx'), ids.traj_token_start)]
    expected += [(f'traj_token_ids[{k!r}]', traj.get(k), v)
                 for k, v in ids.traj_token_ids().items()]
    expected.append(('vocab_size', config.get('vocab_size'), ids.vocab_size))
    if 'traj_vocab_size' in config:
        expected.append(('traj_vocab_size', config['traj_vocab_size'], ids.traj_vocab_size))
    for name, stored, ours in expected:
        if stored is None:
            raise ValueError(f'config has no {name}')
        if int(stored) != ours:
            raise ValueError(f'{name} mismatch: config.json has {stored}, tokenizer gives {ours}')
