"""A teacher VLM that drafts Chain-of-Causation labels: a local Qwen2.5-VL or Qwen3-VL folder.

The folder is loaded with transformers (Qwen2_5_VLForConditionalGeneration or
Qwen3VLForConditionalGeneration by its config's model_type), local files only, safetensors
only, no remote code; images are preprocessed by model.image_processing (the node's own Qwen-VL
preprocessing: no torchvision needed), each bounded to max_pixels.

The prompt shows, per camera, the frames the node selected for t0 (its 4-frame grid) that are
stamped at or before t0; a frame after t0 (a jittery camera's nearest frame can be) or without a
stamp (a black fill) is left out, and `check_not_after` refuses to build a prompt from a frame
after t0 whatever the caller passes. Then the priors at t0 (speed, its trend, heading) and the
recorded meta-action, and the request for one JSON object. Decoding is greedy with a bounded
max_new_tokens. `parse_answer` turns the answer into a Draft or rejects it with a reason
(label_drafts.DraftRejectedError).
"""
import json
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from ar1_ros.data.label_drafts import Draft, DraftRejectedError, Priors, prior_lines
from ar1_ros.model.image_processing import ImageProcessor
from ar1_ros.model.tokens import load_tokenizer
from ar1_ros.runtime.images import ImageError
from ar1_ros.runtime.presentation import DECISIONS, parse_decision
from ar1_ros.runtime.types import NS_PER_S, Observation

MODEL_TYPES = ('qwen2_5_vl', 'qwen3_vl')
DEFAULT_MAX_PIXELS = 320 * 576  # per image: AR1's own input size, ~180 tokens on Qwen3-VL
SYSTEM = 'You are a driving expert who explains the decisions of an automated vehicle.'
REQUEST = (
    'Explain the driving decision at t0 as a chain of causation: the action first, then the '
    'cause you see in the images. Answer with one JSON object and nothing else: '
    '{"decision": "<one of: ' + ', '.join(DECISIONS) + '>", "critical_components": '
    '["<what the decision hinges on>", ...], "coc": "<one or two sentences that start with '
    'the action>"}. The decision must agree with the recorded motion.')


class TeacherError(RuntimeError):
    """The teacher folder cannot be loaded; the message says why."""


def check_not_after(stamps_ns: Sequence[int], t0_ns: int) -> None:
    """Raise ValueError if a frame stamp lies after t0: a label must not see the future."""
    late = [s for s in stamps_ns if s > t0_ns]
    if late:
        raise ValueError(f'{len(late)} frame(s) after t0 {t0_ns} (first {late[0]}): the teacher '
                         'sees history frames only')


def history_frames(observation: Observation) -> List[Tuple[str, List[Tuple[int, object]]]]:
    """Return [(camera, [(stamp_ns, frame), ...])]: the selected frames stamped in [0, t0].

    Cameras whose every frame is left out are left out too.
    """
    out = []
    for camera, frames in zip(observation.camera_names, observation.frames, strict=True):
        kept = [(int(f.stamp_ns), f) for f in frames
                if 0 <= getattr(f, 'stamp_ns', -1) <= observation.t0_ns]
        if kept:
            out.append((camera, kept))
    return out


def _first_object(text: str) -> dict:
    """Return the first JSON object in text (code fences and chatter around it ignored)."""
    decoder = json.JSONDecoder()
    found_brace = False
    for start in (i for i, c in enumerate(text) if c == '{'):
        found_brace = True
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    raise DraftRejectedError('no_json', 'no JSON object could be decoded' if found_brace
                             else 'the answer holds no JSON object')


def parse_answer(text: str) -> Draft:
    """Return the Draft of a teacher answer; raise DraftRejectedError(reason) when unusable.

    Reasons: no_json, unknown_decision, empty_coc, bad_components (not a list of strings),
    coc_disagrees (parse_decision(coc) is not the stated decision).
    """
    obj = _first_object(text or '')
    decision = obj.get('decision')
    if not isinstance(decision, str) or decision.strip() not in DECISIONS:
        raise DraftRejectedError('unknown_decision', f'{decision!r} is not one of DECISIONS')
    decision = decision.strip()
    coc = obj.get('coc')
    if not isinstance(coc, str) or not coc.strip():
        raise DraftRejectedError('empty_coc', f'coc is {coc!r}')
    components = obj.get('critical_components', [])
    if not isinstance(components, list) or not all(isinstance(c, str) for c in components):
        raise DraftRejectedError('bad_components', f'{components!r} is not a list of strings')
    stated = parse_decision(coc)
    if stated != decision:
        raise DraftRejectedError('coc_disagrees', f'the coc states {stated or "no decision"!r}, '
                                                  f'the answer says {decision!r}')
    return Draft(decision, ' '.join(coc.split()), tuple(c.strip() for c in components))


def _model_class(model_type: str):
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen3VLForConditionalGeneration
    return {'qwen2_5_vl': Qwen2_5_VLForConditionalGeneration,
            'qwen3_vl': Qwen3VLForConditionalGeneration}[model_type]


def _read_config(folder: Path) -> dict:
    try:
        config = json.loads((folder / 'config.json').read_text())
    except (OSError, ValueError) as exc:
        raise TeacherError(f'{folder}: no readable config.json ({exc})') from exc
    if config.get('model_type') not in MODEL_TYPES:
        raise TeacherError(f'{folder}: model_type {config.get("model_type")!r} is not one of '
                           f'{", ".join(MODEL_TYPES)} (a Qwen2.5-VL or Qwen3-VL folder)')
    if not any(folder.glob('*.safetensors')):
        raise TeacherError(f'{folder}: no *.safetensors weights (only safetensors are loaded)')
    return config


class Teacher:
    """A loaded teacher VLM; draft(observation, priors) returns a Draft or raises a rejection.

    folder: a local Qwen2.5-VL / Qwen3-VL model folder (config, tokenizer with chat template,
    preprocessor_config.json, safetensors). device: torch device ('cpu', 'cuda'); float32 on
    CPU, bfloat16 elsewhere. max_new_tokens bounds the answer; max_pixels each image.
    """

    def __init__(self, folder, device: str = 'cpu', max_new_tokens: int = 256,
                 max_pixels: int = DEFAULT_MAX_PIXELS):
        self.folder, self.device = Path(folder), torch.device(device)
        self.max_new_tokens = int(max_new_tokens)
        config = _read_config(self.folder)
        if self.device.type == 'cuda' and not torch.cuda.is_available():
            raise TeacherError(f'device {device}: CUDA is not available here')
        try:
            self.tokenizer = load_tokenizer(self.folder)
            # No upscaling floor beyond Qwen's smallest (56 x 56): Qwen3-VL's default floor
            # (65536 px) would blow small camera images up, to no use for the answer.
            processor = ImageProcessor.from_folder(self.folder, max_pixels=max_pixels,
                                                   min_pixels=min(max_pixels, 56 * 56))
            dtype = torch.float32 if self.device.type == 'cpu' else torch.bfloat16
            self.model = _model_class(config['model_type']).from_pretrained(
                str(self.folder), dtype=dtype, local_files_only=True, use_safetensors=True,
                trust_remote_code=False).to(self.device).eval()
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise TeacherError(f'{self.folder}: cannot load the teacher: {exc}') from exc
        self.images = processor
        self.image_token = self.tokenizer.convert_ids_to_tokens(int(config['image_token_id']))

    def messages(self, observation: Observation, priors: Priors) -> Tuple[List[Dict], list]:
        """Return (chat messages, [(H, W, 3) uint8 per image, in prompt order])."""
        content, images = [], []
        cameras = history_frames(observation)
        check_not_after([s for _, kept in cameras for s, _ in kept], observation.t0_ns)
        for camera, kept in cameras:
            offsets = ', '.join(f'{(s - observation.t0_ns) / NS_PER_S:+.1f} s' for s, _ in kept)
            content.append({'type': 'text', 'text': f'Camera {camera}, frames at t0 {offsets}:'})
            for _, frame in kept:
                content.append({'type': 'image'})
                images.append(frame.rgb())
        text = '\n'.join(['Ego vehicle at t0 (odometry):', *prior_lines(priors), REQUEST])
        content.append({'type': 'text', 'text': text})
        return [{'role': 'system', 'content': [{'type': 'text', 'text': SYSTEM}]},
                {'role': 'user', 'content': content}], images

    def inputs(self, observation: Observation, priors: Priors) -> Dict[str, torch.Tensor]:
        """Return the model inputs: input_ids, attention_mask (1, L), pixel_values, grids."""
        messages, images = self.messages(observation, priors)
        text = self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=True)
        values, grids = [], []
        for rgb in images:  # one call per image: cameras may differ in size
            pixels, grid = self.images(np.asarray(rgb)[None])
            values.append(pixels)
            grids.append(grid)
        merge = self.images.merge_size ** 2
        parts = text.split(self.image_token)
        if len(parts) != len(images) + 1:
            raise ValueError(f'the chat template rendered {len(parts) - 1} images, '
                             f'{len(images)} were given')
        pieces = [parts[0]]
        for grid, part in zip(grids, parts[1:], strict=True):
            pieces += [self.image_token * (int(grid.prod()) // merge), part]
        ids = torch.tensor([self.tokenizer(''.join(pieces), add_special_tokens=False)
                            ['input_ids']], dtype=torch.int64)
        inputs = {'input_ids': ids, 'attention_mask': torch.ones_like(ids)}
        if images:
            inputs.update(pixel_values=torch.cat(values), image_grid_thw=torch.cat(grids))
        return inputs

    def generate(self, inputs: Dict[str, torch.Tensor]) -> str:
        """Return the decoded answer of a greedy decode of at most max_new_tokens tokens."""
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        if 'pixel_values' in inputs:
            inputs['pixel_values'] = inputs['pixel_values'].to(self.model.dtype)
        pad = self.tokenizer.pad_token_id
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens,
                                      do_sample=False, pad_token_id=pad)
        return self.tokenizer.decode(out[0, inputs['input_ids'].shape[1]:].tolist(),
                                     skip_special_tokens=True)

    def draft(self, observation: Observation, priors: Priors) -> Draft:
        """Return the teacher's Draft for one moment; raise DraftRejectedError with the reason.

        Reasons: those of parse_answer, and bad_image (a frame to show does not decode).
        """
        try:
            inputs = self.inputs(observation, priors)
        except ImageError as exc:
            raise DraftRejectedError('bad_image', str(exc)) from exc
        return parse_answer(self.generate(inputs))
