"""A tiny base VLM folder for the demo AR1: Qwen3-VL architecture, our own small tokenizer.

    python -m ar1_ros.training.tiny_vlm --out models/tiny_vlm --labels labels.jsonl

writes config.json (Qwen3VLConfig, tiny dims), the tokenizer (byte-level BPE trained here on
the prompt texts and driving CoC sentences, plus the Qwen-VL special tokens our code uses),
the chat template (our own; renders our chats exactly as the Qwen3-VL template does) and the
processor configs; no weights (`ar1 train` with `model.random_vlm: true`, see
`demo_model_settings`), no AR1 tokens (the factory adds them, as the official code does).
Same inputs -> byte-identical files.
"""
import argparse
import hashlib
import json
from pathlib import Path
import sys
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import tokenizers as tk
from transformers import Qwen3VLConfig
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

from ar1_ros.data.labels import read_labels
from ar1_ros.model.prompt import COC_REQUEST, SYSTEM_PROMPT, TRAJECTORY_REQUEST

PathLike = Union[str, Path]
PAD, IM_START, EOS = '<|endoftext|>', '<|im_start|>', '<|im_end|>'
VISION_TOKENS = ('<|vision_start|>', '<|vision_end|>', '<|image_pad|>', '<|video_pad|>')
# The Qwen-VL special tokens our code uses, in Qwen's relative order, after the BPE vocabulary.
SPECIAL_TOKENS = (PAD, IM_START, EOS, *VISION_TOKENS)
TEXT = {'hidden_size': 128, 'intermediate_size': 384, 'num_hidden_layers': 4,
        'num_attention_heads': 4, 'num_key_value_heads': 2, 'head_dim': 32}
VISION = {'depth': 2, 'hidden_size': 128, 'intermediate_size': 384, 'num_heads': 4,
          'patch_size': 16, 'temporal_patch_size': 2, 'spatial_merge_size': 2,
          'num_position_embeddings': 64}
MIN_PIXELS, MAX_PIXELS = 4096, 16384  # 4..16 merged tokens (32 x 32 cells) per camera frame
MAX_LENGTH = 32768

# Our own template. For the shapes it accepts (a leading system turn, user turns of text /
# image / video items, assistant text, add_generation_prompt) it renders what the Qwen3-VL
# template renders; tool turns and a late system turn are refused instead of dropped.
CHAT_TEMPLATE = r"""{%- for message in messages -%}
{%- if message.role not in ['system', 'user', 'assistant'] -%}
{{- raise_exception('demo chat template: unsupported role ' + message.role) -}}
{%- elif message.role == 'system' and not loop.first -%}
{{- raise_exception('demo chat template: the system turn must come first') -}}
{%- endif -%}
{{- '<|im_start|>' + message.role + '\n' -}}
{%- if message.content is string -%}{{- message.content -}}{%- else -%}
{%- set media = message.role == 'user' -%}
{%- for item in message.content -%}
{%- if media and (item.type == 'image' or 'image' in item or 'image_url' in item) -%}
{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}
{%- elif media and (item.type == 'video' or 'video' in item) -%}
{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}
{%- elif 'text' in item -%}{{- item.text -}}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{{- '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}
"""

# Driving sentences (driving_sentences): each action of a group with each reason of the group.
_GROUPS = (
    (('Decelerate', 'Slow down', 'Brake gently', 'Reduce speed'),
     ('because the lead vehicle brakes ahead', 'since the traffic light turns yellow',
      'as a pedestrian waits at the crosswalk', 'because the road is wet and slippery',
      'as the speed limit drops to 30 km/h')),
    (('Stop', 'Stay stopped', 'Wait at the stop line'),
     ('because the traffic light is red', 'since a pedestrian is crossing the road',
      'because the traffic queue is stopped', 'as there is a stop sign at the junction')),
    (('Start moving', 'Accelerate', 'Speed up', 'Resume driving'),
     ('as the light turned green', 'because the road ahead is clear',
      'since the lead vehicle drives away')),
    (('Keep lane', 'Keep the current speed', 'Follow the lead vehicle'),
     ('as the traffic flows smoothly', 'to keep a safe distance to the car ahead',
      'since the route continues straight')),
    (('Change lanes to the left', 'Overtake the slow truck', 'Nudge to the left'),
     ('because a parked car blocks the right lane', 'as the left lane is faster',
      'because construction cones narrow the lane')),
    (('Change lanes to the right', 'Merge into the right lane'),
     ('to reach the exit on the right', 'because the left lane ends ahead')),
    (('Pull over',), ('because an ambulance approaches from behind', 'to let the fire engine by')),
    (('Yield', 'Give way'),
     ('because a cyclist crosses from the right', 'as the bus pulls out of the stop',
      'since oncoming traffic has priority')),
    (('Turn left at the intersection', 'Turn right at the intersection',
      'Go straight through the intersection'),
     ('to follow the route', 'as the signal is green', 'since the crossing is clear')),
    (('Slow down for the curve',),
     ('because the road bends sharply ahead', 'as the curve limits the speed')))
_NUMBERED = (
    'The lead vehicle is {d} m ahead at {v} m/s, so decelerate at {a} m/s².',
    'Keep {v} m/s and a gap of {d} m to the car ahead.',
    'The light turns red {d} m ahead, so stop at {a} m/s².',
    'The road is clear, so accelerate at {a} m/s² to {v} m/s.',
    'Slow down to {v} m/s for the curve {d} m ahead.')
_VALUES = (('12', '8.5', '1.5'), ('25', '13.9', '0.8'), ('40', '5', '2.0'),
           ('7.5', '3.2', '3.5'), ('60', '20', '0.5'))


def driving_sentences() -> List[str]:
    """Return the built-in CoC-like driving sentences: 110, fixed order, no duplicates."""
    out = [f'{a} {r}.' for actions, reasons in _GROUPS for a in actions for r in reasons]
    return out + [t.format(d=d, v=v, a=a) for t in _NUMBERED for d, v, a in _VALUES]


def demo_corpus(extra: Iterable[str] = ()) -> List[str]:
    """Return the tokenizer's training texts: prompt texts, driving sentences, then `extra`.

    The prompt texts are the chat turns as the template writes them between special tokens
    (role, newline, text), so the fixed prompt becomes a few tokens. Repeats are dropped
    (first one kept): label files repeat their CoC templates many times.
    """
    prompt = [f'system\n{SYSTEM_PROMPT}', f'user\n{COC_REQUEST}', f'user\n{TRAJECTORY_REQUEST}',
              'assistant\n']
    # Whitespace collapsed as the training sequences collapse it in a CoC (sequences._answer).
    sentences = (' '.join(t.split()) for t in [*driving_sentences(), *extra])
    return list(dict.fromkeys(t for t in [*prompt, *sentences] if t))


def build_tokenizer(corpus: Iterable[str], vocab_size: int = 2048) -> tk.Tokenizer:
    """Train a byte-level BPE on `corpus` and add the Qwen-VL special tokens after it.

    The pipeline is the one transformers' Qwen2Tokenizer rebuilds from tokenizer.json (NFC,
    Qwen's pre-split regex, byte level without a regex of its own), so the tokenizer the model
    code loads encodes exactly like this one. All 256 bytes are in the alphabet: any text
    encodes, nothing is unknown. len <= vocab_size (less when the corpus runs out of pairs).
    """
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f'vocab_size {vocab_size} cannot hold the 256 bytes and '
                         f'{len(SPECIAL_TOKENS)} special tokens')
    pre = tk.pre_tokenizers
    tokenizer = tk.Tokenizer(tk.models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tokenizer.normalizer = tk.normalizers.NFC()
    tokenizer.pre_tokenizer = pre.Sequence([
        pre.Split(tk.Regex(PRETOKENIZE_REGEX), behavior='isolated', invert=False),
        pre.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = tk.decoders.ByteLevel()
    tokenizer.post_processor = tk.processors.ByteLevel(trim_offsets=False)
    trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size - len(SPECIAL_TOKENS),
                                     show_progress=False, special_tokens=[],
                                     initial_alphabet=pre.ByteLevel.alphabet())
    tokenizer.train_from_iterator(list(corpus), trainer=trainer)
    tokenizer.add_special_tokens([tk.AddedToken(t, special=True, normalized=False)
                                  for t in SPECIAL_TOKENS])
    return tokenizer


def vlm_config(tokenizer: tk.Tokenizer, text: Mapping[str, Any],
               vision: Mapping[str, Any]) -> Dict[str, Any]:
    """Return the Qwen3-VL config.json dict (golden layout) for these dims and token ids."""
    ids = {t: tokenizer.token_to_id(t) for t in SPECIAL_TOKENS}
    # Interleaved MRoPE (t, h, w) sections of head_dim / 2 in Qwen3-VL's 24:20:20 ratio.
    half = text['head_dim'] // 2
    hw = half * 5 // 16
    text_cfg = {
        'attention_bias': False, 'attention_dropout': 0.0, 'bos_token_id': ids[PAD],
        'dtype': 'float32', 'eos_token_id': ids[EOS], 'hidden_act': 'silu',
        'initializer_range': 0.02, 'max_position_embeddings': MAX_LENGTH,
        'model_type': 'qwen3_vl_text', 'rms_norm_eps': 1e-6, 'rope_theta': 5000000.0,
        'rope_scaling': {'mrope_interleaved': True, 'rope_type': 'default',
                         'mrope_section': [half - 2 * hw, hw, hw]},
        'use_cache': True, 'vocab_size': tokenizer.get_vocab_size(), **text}
    # Deepstack: features of the first (up to 3) vision blocks feed the first text layers.
    vision_cfg = {
        'deepstack_visual_indexes': list(range(min(vision['depth'], 3))),
        'hidden_act': 'gelu_pytorch_tanh', 'in_channels': 3, 'initializer_range': 0.02,
        'model_type': 'qwen3_vl', 'out_hidden_size': text['hidden_size'], **vision}
    deepstack = vision_cfg['deepstack_visual_indexes']
    if max(deepstack, default=0) >= vision['depth'] or len(deepstack) > text['num_hidden_layers']:
        raise ValueError(f'deepstack_visual_indexes {deepstack}: vision blocks (< depth '
                         f'{vision["depth"]}), at most one per text layer')
    raw = {'architectures': ['Qwen3VLForConditionalGeneration'], 'model_type': 'qwen3_vl',
           'image_token_id': ids['<|image_pad|>'], 'video_token_id': ids['<|video_pad|>'],
           'vision_start_token_id': ids['<|vision_start|>'],
           'vision_end_token_id': ids['<|vision_end|>'], 'tie_word_embeddings': False,
           'text_config': text_cfg, 'vision_config': vision_cfg}
    # transformers' own checks of the dims, on a copy: from_dict edits the dict it is given.
    Qwen3VLConfig.from_dict(json.loads(json.dumps(raw)))
    return raw


def tokenizer_config(tokenizer: tk.Tokenizer) -> Dict[str, Any]:
    """Return tokenizer_config.json: the Qwen2Tokenizer settings of a Qwen3-VL folder."""
    decoder = {str(tokenizer.token_to_id(t)): {
        'content': t, 'lstrip': False, 'normalized': False, 'rstrip': False,
        'single_word': False, 'special': True} for t in SPECIAL_TOKENS}
    return {'add_prefix_space': False, 'added_tokens_decoder': decoder,
            'additional_special_tokens': [IM_START, EOS, *VISION_TOKENS], 'bos_token': None,
            'clean_up_tokenization_spaces': False, 'eos_token': EOS, 'errors': 'replace',
            'model_max_length': MAX_LENGTH, 'pad_token': PAD, 'split_special_tokens': False,
            'tokenizer_class': 'Qwen2Tokenizer', 'unk_token': None}


def processor_configs(vision: Mapping[str, Any], min_pixels: int,
                      max_pixels: int) -> Dict[str, Dict[str, Any]]:
    """Return preprocessor_config.json and video_preprocessor_config.json (Qwen2-VL style)."""
    common = {'size': {'longest_edge': max_pixels, 'shortest_edge': min_pixels},
              'patch_size': vision['patch_size'],
              'temporal_patch_size': vision['temporal_patch_size'],
              'merge_size': vision['spatial_merge_size'], 'image_mean': [0.5, 0.5, 0.5],
              'image_std': [0.5, 0.5, 0.5], 'processor_class': 'Qwen3VLProcessor'}
    image = {**common, 'image_processor_type': 'Qwen2VLImageProcessorFast'}
    video = {**common, 'video_processor_type': 'Qwen3VLVideoProcessor'}
    return {'preprocessor_config.json': image, 'video_preprocessor_config.json': video}


def write_base_vlm(folder: PathLike, corpus: Iterable[str], *,
                   text: Optional[Mapping[str, Any]] = None,
                   vision: Optional[Mapping[str, Any]] = None, vocab_size: int = 2048,
                   max_pixels: int = MAX_PIXELS, min_pixels: int = MIN_PIXELS) -> Path:
    """Write a base VLM folder (no weights) and return its path.

    Args:
        folder: created if needed; the files below are overwritten, others left alone.
        corpus: the texts the tokenizer is trained on (usually demo_corpus(...)).
        text / vision: overrides of TEXT / VISION (Qwen3VLConfig text / vision fields).
        vocab_size: upper bound of the base tokenizer length (BPE + the 7 special tokens).
        max_pixels / min_pixels: image size limits of the processor configs [pixels].
    """
    if not 0 < min_pixels <= max_pixels:
        raise ValueError(f'need 0 < min_pixels <= max_pixels, got {min_pixels}, {max_pixels}')
    texts = list(corpus)
    tokenizer = build_tokenizer(texts, vocab_size)
    text, vision = {**TEXT, **(text or {})}, {**VISION, **(vision or {})}
    files: Dict[str, Any] = {
        'config.json': vlm_config(tokenizer, text, vision),
        'tokenizer_config.json': tokenizer_config(tokenizer),
        'special_tokens_map.json': {'additional_special_tokens': [IM_START, EOS, *VISION_TOKENS],
                                    'eos_token': EOS, 'pad_token': PAD},
        **processor_configs(vision, min_pixels, max_pixels)}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        (folder / name).write_text(json.dumps(value, indent=2, sort_keys=True) + '\n')
    (folder / 'tokenizer.json').write_text(tokenizer.to_str(pretty=True) + '\n')
    (folder / 'chat_template.jinja').write_text(CHAT_TEMPLATE)
    (folder / 'README.md').write_text(_readme(texts, tokenizer, text, vision))
    return folder


def _readme(corpus: Sequence[str], tokenizer: tk.Tokenizer, text: Mapping[str, Any],
            vision: Mapping[str, Any]) -> str:
    """Return the folder's README.md: what wrote it, from what (corpus hash), which dims."""
    digest = hashlib.sha256('\n'.join(corpus).encode()).hexdigest()
    return (
        '# Tiny base VLM for the ar1_ros demo\n\nWritten by `python -m ar1_ros.training.tiny_vlm`'
        ' (no weights: `ar1 train` builds them with `model.random_vlm: true`).\n\n'
        f'* Qwen3-VL (`config.json`): text {json.dumps(dict(text))}; vision '
        f'{json.dumps(dict(vision))}.\n* Tokenizer: byte-level BPE (`tokenizers`) trained on '
        f'{len(corpus)} texts (sha256 of the newline-joined texts: {digest}); '
        f'{tokenizer.get_vocab_size()} tokens, the last ones {" ".join(SPECIAL_TOKENS)}.\n'
        "* `chat_template.jinja`: ar1_ros's own; renders AR1's chats as Qwen3-VL's does.\n"
        '* The AR1 tokens (`<iK>`, `<|cot_start|>`, ...) are added when the AR1 model is built.\n')


def demo_model_settings(folder: PathLike) -> Dict[str, Any]:
    """Return the `model:` section of an `ar1 train` YAML that starts from this folder.

    The factory's defaults are release-sized (expert 2048 wide, in-projection 1024 x 4 layers,
    160..192 tokens per image); these give an expert as wide as the tiny text model, a
    2-layer in-projection of that width, and the folder's own pixel limits.
    """
    folder = Path(folder)
    text = json.loads((folder / 'config.json').read_text())['text_config']
    size = json.loads((folder / 'preprocessor_config.json').read_text())['size']
    width = text['hidden_size']
    return {'base_vlm': str(folder), 'random_vlm': True,
            'expert_cfg': {'hidden_size': width, 'intermediate_size': text['intermediate_size']},
            'overrides': {'min_pixels': size['shortest_edge'], 'max_pixels': size['longest_edge'],
                          'action_in_proj_cfg': {'hidden_size': width, 'num_enc_layers': 2}}}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write the demo base VLM folder from the demo corpus and the CoC texts of label files."""
    parser = argparse.ArgumentParser(prog='python -m ar1_ros.training.tiny_vlm',
                                     description=main.__doc__)
    parser.add_argument('--out', required=True, type=Path, help='folder to write')
    parser.add_argument('--labels', nargs='+', action='extend', default=[], type=Path,
                        help='labels JSONL files whose `coc` texts join the corpus')
    parser.add_argument('--vocab-size', type=int, default=2048, help='base tokenizer length cap')
    args = parser.parse_args(argv)
    try:
        extra = []
        for path in args.labels:
            labels = read_labels(path)
            sys.stderr.writelines(f'skipped {problem}\n' for problem in labels.problems)
            extra += [label.coc for label in labels.labels]
        folder = write_base_vlm(args.out, demo_corpus(extra), vocab_size=args.vocab_size)
    except ValueError as err:  # LabelError is one
        parser.error(str(err))
    sys.stdout.write(f'{folder}\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
