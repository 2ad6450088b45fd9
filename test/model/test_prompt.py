"""Tokenizer extension, token ids, prompt ids and text extraction against the golden fixtures."""
import dataclasses
import json
import shutil

import pytest
import torch

from ar1_ros.model.prompt import (
    SPECIAL_TOKEN_KEYS,
    SPECIAL_TOKENS,
    TRAJ_TOKENS,
    TokenIds,
    build_prompt_ids,
    check_token_ids,
    create_messages,
    decode_reasoning,
    extend_tokenizer,
    extract_text,
    fuse_history_tokens,
    load_tokenizer,
    render_prompt,
)

from .golden import BASE_VLM, CASES, CHECKPOINT, GOLDEN, load

MODEL_INFO = json.loads((GOLDEN / 'model_info.json').read_text())
CONFIG = json.loads((CHECKPOINT / 'config.json').read_text())


@pytest.fixture(scope='module')
def tokenizer():
    return extend_tokenizer(load_tokenizer(BASE_VLM))


@pytest.fixture(scope='module')
def ids(tokenizer):
    return TokenIds.from_tokenizer(tokenizer, future_vocab_size=3000)


@pytest.fixture(scope='module', params=CASES)
def case(request):
    return load(f'cases/{request.param}')


def test_official_special_token_order():
    assert len(SPECIAL_TOKEN_KEYS) == 29
    assert SPECIAL_TOKEN_KEYS[:3] == ('prompt_start', 'prompt_end', 'image_start')
    assert SPECIAL_TOKEN_KEYS[12:18] == ('traj_future_start', 'traj_future_pre_tkn',
                                         'traj_future_end', 'traj_history', 'traj_future',
                                         'image_pad')
    assert SPECIAL_TOKEN_KEYS[-1] == 'answer_end'
    assert list(MODEL_INFO['special_token_ids']) == list(SPECIAL_TOKEN_KEYS)
    assert list(TRAJ_TOKENS) == ['history', 'future', 'history_start', 'future_start',
                                 'history_end', 'future_end']
    assert set(TRAJ_TOKENS) == set(CONFIG['traj_token_ids'])


def test_load_tokenizer_reads_chat_template():
    tok = load_tokenizer(BASE_VLM)
    assert tok.chat_template == (BASE_VLM / 'chat_template.jinja').read_text()
    assert len(tok) == MODEL_INFO['len(base tokenizer)']


def test_load_tokenizer_chat_template_fallbacks(tmp_path):
    shutil.copytree(BASE_VLM, tmp_path / 'json_only')
    (tmp_path / 'json_only' / 'chat_template.jinja').unlink()
    assert load_tokenizer(tmp_path / 'json_only').chat_template == \
        json.loads((BASE_VLM / 'chat_template.json').read_text())['chat_template']
    (tmp_path / 'json_only' / 'chat_template.json').unlink()
    with pytest.raises(ValueError, match='no chat template'):
        load_tokenizer(tmp_path / 'json_only')


def test_extension_gives_official_ids(tokenizer):
    assert len(tokenizer) == MODEL_INFO['vocab_size(len(tokenizer))'] == 4610
    assert tokenizer.convert_tokens_to_ids('<i0>') == MODEL_INFO['traj_token_start_idx(<i0>)']
    assert tokenizer.convert_tokens_to_ids('<i3999>') == MODEL_INFO['<i3999>']
    got = {k: tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS[k]) for k in SPECIAL_TOKEN_KEYS}
    assert got == MODEL_INFO['special_token_ids']
    for token, idx in MODEL_INFO['qwen_tokens'].items():
        assert tokenizer.convert_tokens_to_ids(token) == idx
    # the trajectory bins are normal tokens, the AR1 markers special ones
    assert tokenizer.tokenize('<i7><|cot_end|>') == ['<i7>', '<|cot_end|>']


def test_extension_without_special_tokens():
    tok = extend_tokenizer(load_tokenizer(BASE_VLM), add_special_tokens=False)
    assert len(tok) == 582 + 4000 + 6
    assert [tok.convert_tokens_to_ids(t) for t in TRAJ_TOKENS.values()] == list(range(4582, 4588))
    assert tok.convert_tokens_to_ids('<|cot_start|>') is None
    with pytest.raises(ValueError, match='cot_start'):
        TokenIds.from_tokenizer(tok, 3000)


def test_extension_twice_is_refused(tokenizer):
    with pytest.raises(ValueError, match='already holds 4000'):
        extend_tokenizer(tokenizer)


def test_token_ids(ids):
    assert ids.traj_token_start == 582
    assert ids.hist_token_start == MODEL_INFO['hist_token_start_idx'] == 3582
    assert ids.traj_token_ids() == CONFIG['traj_token_ids'] == MODEL_INFO['traj_token_ids']
    assert (ids.cot_start, ids.cot_end) == (4590, 4591)
    assert (ids.image_pad, ids.vision_start, ids.vision_end) == (568, 565, 566)
    assert (ids.pad, ids.eos, ids.vocab_size) == (556, 558, 4610)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ids.pad = 0
    check_token_ids(ids, CONFIG)
    ids.check_config(CONFIG)


@pytest.mark.parametrize(('change', 'match'), [
    ({'vocab_size': 4611}, 'vocab_size mismatch'),
    ({'traj_token_start_idx': 581}, 'traj_token_start_idx mismatch'),
    ({'traj_vocab_size': 3000}, 'traj_vocab_size mismatch'),
    ({'traj_token_ids': dict(CONFIG['traj_token_ids'], future_end=1)}, "'future_end'"),
    ({'traj_token_ids': None}, 'no traj_token_ids'),
    ({'traj_token_start_idx': None}, 'no traj_token_start_idx'),
])
def test_check_token_ids_names_the_mismatch(ids, change, match):
    with pytest.raises(ValueError, match=match):
        check_token_ids(ids, {**CONFIG, **change})


def test_token_ids_refuse_bad_tokenizers(tokenizer):
    with pytest.raises(ValueError, match='<i0>'):
        TokenIds.from_tokenizer(load_tokenizer(BASE_VLM), 3000)
    with pytest.raises(ValueError, match='future_vocab_size'):
        TokenIds.from_tokenizer(tokenizer, 4000)
    with pytest.raises(ValueError, match='<i4000>'):
        TokenIds.from_tokenizer(tokenizer, 3000, traj_vocab_size=4001)


def test_prompt_matches_golden(tokenizer, ids, case):
    meta, tensors = case
    prefix = meta['assistant_prefix']
    assert render_prompt(tokenizer, 16, assistant_prefix=prefix) == meta['prompt_text']
    per_image = (tensors['inputs/image_grid_thw'].prod(-1) // 4).tolist()
    raw = build_prompt_ids(tokenizer, per_image, assistant_prefix=prefix)
    assert raw.dtype == torch.int64
    assert torch.equal(raw, tensors['inputs/input_ids_raw'])
    fused = fuse_history_tokens(raw, tensors['inputs/hist_token_ids'], ids.traj_history)
    assert torch.equal(fused, tensors['inputs/input_ids'])
    assert torch.equal(raw, tensors['inputs/input_ids_raw'])  # not modified in place


def test_release_sized_prompt(tokenizer, ids):
    raw = build_prompt_ids(tokenizer, [180] * 16)
    assert int((raw == ids.image_pad).sum()) == 2880
    assert int((raw == ids.traj_history).sum()) == 48
    assert raw[0, -1] == ids.cot_start
    assert 2900 < raw.shape[1] < 3100


def test_messages_are_the_official_ones():
    messages = create_messages(2, n_history_tokens=3)
    assert [m['role'] for m in messages] == ['system', 'user', 'assistant']
    assert messages[1]['content'][:2] == [{'type': 'image'}, {'type': 'image'}]
    assert messages[1]['content'][2]['text'] == (
        '<|traj_history_start|>' + '<|traj_history|>' * 3 + '<|traj_history_end|>'
        'output the chain-of-thought reasoning of the driving process, '
        'then output the future trajectory.')
    assert messages[2]['content'] == [{'type': 'text', 'text': '<|cot_start|>'}]


def test_prompt_errors(tokenizer):
    with pytest.raises(ValueError, match='blank'):
        build_prompt_ids(tokenizer, [8], assistant_prefix='  ')
    with pytest.raises(ValueError, match='2 <\\|image_pad\\|> but 1 images'):
        build_prompt_ids(tokenizer, [8], assistant_prefix='<|image_pad|>')
    with pytest.raises(ValueError, match='positive'):
        build_prompt_ids(tokenizer, [8, 0])
    bare = load_tokenizer(BASE_VLM)
    bare.chat_template = None
    with pytest.raises(ValueError, match='chat template'):
        build_prompt_ids(bare, [8])


def test_fuse_errors(ids):
    input_ids = torch.tensor([[1, ids.traj_history, 2, ids.traj_history]])
    assert fuse_history_tokens(input_ids, torch.tensor([[7, 9]]), ids.traj_history).tolist() == \
        [[1, 7, 2, 9]]
    with pytest.raises(ValueError, match='2 history slot tokens .* but 3'):
        fuse_history_tokens(input_ids, torch.tensor([[7, 8, 9]]), ids.traj_history)


@pytest.mark.parametrize(('text', 'key', 'expected'), [
    ('<|cot_start|> Go. <|cot_end|><|traj_future_start|>', 'cot', 'Go.'),
    ('a<|cot_start|>x<|cot_start|>y <|cot_end|>z<|cot_end|>', 'cot', 'y'),
    ('no start here <|cot_end|>', 'cot', 'no start here'),
    ('<|cot_start|>never closed', 'cot', ''),
    ('<|meta_action_start|>keep lane<|meta_action_end|>', 'meta_action', 'keep lane'),
    ('<|answer_start|><|answer_end|>', 'answer', ''),
    ('<|cot_start|>a<|cot_end|>', 'answer', ''),
])
def test_extract_text(text, key, expected):
    assert extract_text(text, key) == expected


def test_extract_text_bad_key():
    with pytest.raises(ValueError, match='key'):
        extract_text('', 'traj_future')


def test_decode_reasoning_matches_golden(tokenizer, case):
    meta, tensors = case
    sequences = tensors['vlm/sequences']  # prompt + generated, as the official code decodes
    for b, cot in enumerate(meta['cot']):
        assert decode_reasoning(tokenizer, sequences[b]) == cot
        assert decode_reasoning(tokenizer, sequences[b], key='answer') == meta['answer'][b]
        generated = meta['generated_token_ids'][b]
        assert decode_reasoning(tokenizer, generated) == ('' if meta['prompt_fed_cot'] else cot)
    with pytest.raises(ValueError, match='1-D'):
        decode_reasoning(tokenizer, sequences)
