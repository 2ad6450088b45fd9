"""The demo's tiny base VLM folder (ar1_ros.training.tiny_vlm) through our real code paths.

The folder must be accepted exactly like the golden base_vlm (official Qwen3-VL tokenizer
files): factory, save/load round trip, predict, `ar1 train`, and a chat template that renders
our prompts as the official one does.
"""
import json
from pathlib import Path
import subprocess
import sys

import jinja2
from model.golden import BASE_VLM
import pytest
import torch

from ar1_ros.model import AR1Model
from ar1_ros.model.factory import new_ar1_model
from ar1_ros.model.prompt import (
    COC_REQUEST,
    TRAJECTORY_REQUEST,
    build_chat_ids,
    build_prompt_ids,
    create_messages,
    load_tokenizer,
    render_prompt,
)
from ar1_ros.training import tiny_vlm
from ar1_ros.training.config import load_train_config
from ar1_ros.training.loop import Trainer
from training.tiny_run import COC, build_dataset, write_config

EXTRA = (*COC, 'Nudge to the left to increase clearance from the parked truck.')
UNSEEN = ('Zebra crossing: ÄÖÜ ß, 東京, 🚗 at 13.75 m/s²!\n\tDone.', '  two  spaces ',
          'x<|im_end|>y')
FEED_COC = '<|cot_start|>Slow down because the lead vehicle brakes ahead.<|cot_end|>'


@pytest.fixture(scope='module')
def folder(tmp_path_factory) -> Path:
    return tiny_vlm.write_base_vlm(tmp_path_factory.mktemp('vlm') / 'base',
                                   tiny_vlm.demo_corpus(EXTRA))


@pytest.fixture(scope='module')
def tokenizer(folder):
    return load_tokenizer(folder)


@pytest.fixture(scope='module')
def golden():
    return load_tokenizer(BASE_VLM)


@pytest.fixture(scope='module')
def model(folder) -> AR1Model:
    settings = tiny_vlm.demo_model_settings(folder)
    return new_ar1_model(folder, random_vlm=True, seed=0, expert_cfg=settings['expert_cfg'],
                         overrides=settings['overrides'])


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_folder_has_the_golden_layout_and_consistent_ids(folder, tokenizer):
    config, gold = _json(folder / 'config.json'), _json(BASE_VLM / 'config.json')
    assert set(config) == set(gold) - {'transformers_version'}
    for sub in ('text_config', 'vision_config'):
        assert set(config[sub]) == set(gold[sub])
    for name in ('preprocessor_config.json', 'video_preprocessor_config.json'):
        assert set(_json(folder / name)) == set(_json(BASE_VLM / name))
        assert _json(folder / name)['size'] == {'shortest_edge': 4096, 'longest_edge': 16384}
    assert set(_json(folder / 'tokenizer_config.json')) <= set(
        _json(BASE_VLM / 'tokenizer_config.json'))
    ids = tokenizer.convert_tokens_to_ids
    assert config['image_token_id'] == ids('<|image_pad|>')
    assert config['video_token_id'] == ids('<|video_pad|>')
    assert config['vision_start_token_id'] == ids('<|vision_start|>')
    assert config['vision_end_token_id'] == ids('<|vision_end|>')
    text = config['text_config']
    assert (text['bos_token_id'], text['eos_token_id']) == (ids('<|endoftext|>'),
                                                            ids('<|im_end|>'))
    assert text['vocab_size'] == len(tokenizer) <= 2048
    assert (tokenizer.pad_token, tokenizer.eos_token) == ('<|endoftext|>', '<|im_end|>')


def test_special_tokens_have_single_ids(tokenizer, model):
    base = len(tokenizer)
    for token in tiny_vlm.SPECIAL_TOKENS:
        ids = tokenizer(token, add_special_tokens=False)['input_ids']
        assert ids == [tokenizer.convert_tokens_to_ids(token)], token
        assert ids[0] >= base - len(tiny_vlm.SPECIAL_TOKENS)  # after the BPE vocabulary
    ids = model.preprocessor.ids
    assert ids.traj_token_start == base == model.config.raw['traj_token_start_idx']
    assert ids.vocab_size == base + 4000 + 28  # <iK> and the AR1 specials (image_pad exists)
    assert ids.image_pad == model.network.vlm.config.image_token_id


def test_tokenizer_is_lossless_and_compact(folder, tokenizer):
    ours = tiny_vlm.tk.Tokenizer.from_file(str(folder / 'tokenizer.json'))
    sentences = [*tiny_vlm.driving_sentences(), *EXTRA]
    for text in [*sentences, *UNSEEN]:
        ids = tokenizer(text, add_special_tokens=False)['input_ids']
        # The library loads its own Qwen2 pipeline: it must encode exactly as ours.
        assert ids == ours.encode(text).ids, text
        assert tokenizer.decode(ids) == text
    counts = [len(tokenizer(s, add_special_tokens=False)['input_ids']) for s in sentences]
    print(f'tokens per CoC sentence: mean {sum(counts) / len(counts):.2f}, max {max(counts)}')
    assert sum(counts) / len(counts) < 14
    for coc in EXTRA:  # whole words: one token per word, plus the full stop
        assert len(tokenizer(coc, add_special_tokens=False)['input_ids']) == len(coc.split()) + 1


@pytest.mark.parametrize(('n_images', 'request_text', 'prefix'), [
    (1, COC_REQUEST, '<|cot_start|>'), (4, TRAJECTORY_REQUEST, '<|traj_future_start|>'),
    (16, COC_REQUEST, FEED_COC + '<|traj_future_start|>')])
def test_chat_template_renders_like_qwen3_vl(tokenizer, golden, n_images, request_text, prefix):
    ours = render_prompt(tokenizer, n_images, 48, prefix, request_text)
    assert ours == render_prompt(golden, n_images, 48, prefix, request_text)
    # The training answers (sequences._answer): with a CoC label, or trajectory only.
    answer = ((FEED_COC if request_text == COC_REQUEST else '') + '<|traj_future_start|>'
              + '<|traj_future|>' * 3 + '<|traj_future_end|>')
    messages = create_messages(n_images, 48, answer, request_text)
    messages.append({'role': 'user', 'content': 'and now?'})
    for generation in (False, True):
        texts = [t.apply_chat_template(messages, tokenize=False,
                                       add_generation_prompt=generation)
                 for t in (tokenizer, golden)]
        assert texts[0] == texts[1]
    # Same text through our tokenizer: the ids decode back to the official rendering.
    builders = (lambda tok: build_prompt_ids(tok, [4] * n_images, 48, prefix, request_text),
                lambda tok: build_chat_ids(tok, [4] * n_images, request_text, answer))
    for build in builders:
        assert tokenizer.decode(build(tokenizer)[0]) == golden.decode(build(golden)[0])


def test_chat_template_refuses_what_it_does_not_render(tokenizer):
    with pytest.raises(jinja2.TemplateError, match='unsupported role'):
        tokenizer.apply_chat_template([{'role': 'tool', 'content': 'x'}], tokenize=False)
    late = [{'role': 'user', 'content': 'x'}, {'role': 'system', 'content': 'y'}]
    with pytest.raises(jinja2.TemplateError, match='system turn must come first'):
        tokenizer.apply_chat_template(late, tokenize=False)


def test_vocab_size_caps_the_tokenizer():
    tokenizer = tiny_vlm.build_tokenizer(tiny_vlm.demo_corpus(), vocab_size=300)
    assert tokenizer.get_vocab_size() == 300  # 256 bytes, 37 merges, 7 special tokens
    assert tokenizer.decode(tokenizer.encode(UNSEEN[0]).ids) == UNSEEN[0]
    with pytest.raises(ValueError, match='256 bytes'):
        tiny_vlm.build_tokenizer(['a'], vocab_size=262)


def test_other_dims_give_a_consistent_config(tmp_path):
    folder = tiny_vlm.write_base_vlm(
        tmp_path / 'wide', ['Stop.'], text={'head_dim': 64, 'num_hidden_layers': 3},
        vision={'depth': 4, 'hidden_size': 64, 'num_heads': 2}, min_pixels=1024,
        max_pixels=4096)
    config = _json(folder / 'config.json')
    assert config['text_config']['rope_scaling']['mrope_section'] == [12, 10, 10]
    assert config['vision_config']['deepstack_visual_indexes'] == [0, 1, 2]
    assert config['vision_config']['out_hidden_size'] == 128
    settings = tiny_vlm.demo_model_settings(folder)
    assert (settings['overrides']['min_pixels'], settings['overrides']['max_pixels']) == (
        1024, 4096)
    with pytest.raises(ValueError, match='deepstack'):
        tiny_vlm.write_base_vlm(tmp_path / 'bad', ['Stop.'],
                                vision={'deepstack_visual_indexes': [0, 2]})
    with pytest.raises(ValueError, match='min_pixels'):
        tiny_vlm.write_base_vlm(tmp_path / 'bad', ['Stop.'], min_pixels=4096, max_pixels=1024)


def _labels(path: Path) -> Path:
    rows = [{'bag': 'b', 't0_ns': i, 'decision': 'decelerate', 'coc': c}
            for i, c in enumerate(EXTRA * 3)]
    path.write_text(''.join(json.dumps(r) + '\n' for r in rows) + '{"bag": 1}\n')
    return path


def test_same_inputs_write_identical_files(folder, tmp_path, capsys):
    labels = _labels(tmp_path / 'labels.jsonl')
    assert tiny_vlm.main(['--out', str(tmp_path / 'cli'), '--labels', str(labels)]) == 0
    assert 'skipped labels.jsonl:' in capsys.readouterr().err
    subprocess.run([sys.executable, '-m', 'ar1_ros.training.tiny_vlm', '--out',
                    str(tmp_path / 'process'), '--labels', str(labels)], check=True,
                   capture_output=True)
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(p.name for p in (tmp_path / 'cli').iterdir())
    for other in ('cli', 'process'):  # another process: another hash seed for the trainer
        for name in names:
            assert (tmp_path / other / name).read_bytes() == (folder / name).read_bytes(), name
    with pytest.raises(SystemExit) as exit_info:
        tiny_vlm.main(['--out', str(tmp_path / 'x'), '--labels', str(tmp_path / 'missing')])
    assert exit_info.value.code == 2


def test_new_model_saves_reloads_and_predicts(model, tmp_path):
    model.save_pretrained(tmp_path)
    params = sum(p.numel() for p in model.network.parameters())
    size = sum(p.stat().st_size for p in tmp_path.glob('*.safetensors'))
    print(f'demo AR1: {params} parameters, {size / 1e6:.1f} MB float32')
    assert size <= 30e6
    again = AR1Model.from_pretrained(tmp_path)
    assert again.backbone.folder == (tmp_path / 'base_vlm').resolve()
    assert (tmp_path / 'base_vlm' / 'chat_template.jinja').is_file()
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (4, 4, 64, 128, 3), generator=gen, dtype=torch.uint8)
    xyz = torch.zeros(16, 3)
    xyz[:, 0] = torch.arange(-15, 1, dtype=torch.float32) * 0.5
    noise = torch.randn(1, 64, 2, generator=gen)
    first, second = (m.predict(images, xyz, torch.eye(3).expand(16, 3, 3), noise=noise,
                               greedy=True, max_reasoning_tokens=6) for m in (model, again))
    assert first.trajectory_xyz[0].shape == (64, 3)
    assert torch.isfinite(first.trajectory_xyz).all()
    assert torch.equal(first.trajectory_xyz, second.trajectory_xyz)
    assert first.token_ids == second.token_ids
    assert isinstance(first.reasoning[0], str)
    assert model.preprocessor.tokenizer.decode(first.token_ids[0])


def test_ar1_train_starts_from_the_folder(folder, tmp_path):
    build_dataset(tmp_path, label_times_s=(2.5,))
    section = {**tiny_vlm.demo_model_settings(folder), 'checkpoint': None, 'vlm_path': None}
    config = write_config(tmp_path / 'vlm.yaml', 'vlm', tmp_path / 'dataset', tmp_path / 'run',
                          model=section, train={'max_steps': 2, 'save_every': 2})
    trainer = Trainer(load_train_config(config))
    final = trainer.run()
    assert len(trainer.history) == 2
    assert all(torch.isfinite(torch.tensor(h['loss'])) for h in trainer.history)
    trained = AR1Model.from_pretrained(final / 'model')
    assert trained.config.raw['max_pixels'] == 16384
    assert trained.network.expert.config.hidden_size == tiny_vlm.TEXT['hidden_size']
    start = new_ar1_model(folder, random_vlm=True, seed=7, expert_cfg=section['expert_cfg'],
                          overrides=section['overrides'])  # the run's seed (write_config)
    before = dict(start.network.named_parameters())
    changed = {n for n, p in trained.network.named_parameters() if not torch.equal(p, before[n])}
    assert changed
    assert all(n.startswith('vlm.') for n in changed)
