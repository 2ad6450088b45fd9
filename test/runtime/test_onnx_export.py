"""ONNX export of the expert step and the vision tower, run with onnxruntime against torch.

One `ar1 export-onnx` run on the tiny golden checkpoint (a module fixture: the export is the slow
part) provides the files; the parity tests feed them real prefixes from golden rollouts and the
golden pixels, with the fixtures' float32 tolerance (1e-4).
"""
import json

from model.golden import BASE_VLM, CHECKPOINT, load
from model.test_parity import _rollout
import numpy as np
import pytest
import torch

from ar1_ros.cli.main import main
from ar1_ros.model import AR1Model
from ar1_ros.model.conditioning import expert_conditioning
from ar1_ros.model.inference import flow_actions
from ar1_ros.model.onnx_expert import EXPERT_INPUTS, ExpertStep, stack_cache
from ar1_ros.model.onnx_vision import VisionEncoder
from ar1_ros.runtime import onnx_runner
from ar1_ros.runtime.onnx_runner import OnnxExpertStep, OnnxVision, max_abs_error

TOL = 1e-4
GRID = [1, 4, 8]  # the golden cameras: 64x128 pixels, 16-pixel patches


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp('onnx')
    (out / 'expert.onnx.data').write_bytes(b'weights of an earlier, larger export')
    rc = main(['export-onnx', '--checkpoint', str(CHECKPOINT), '--vlm-path', str(BASE_VLM),
               '--out', str(out), '--image-size', '64x128'])
    assert rc == 0
    return out


@pytest.fixture(scope='module')
def model():
    return AR1Model.from_pretrained(CHECKPOINT, dtype=torch.float32, vlm_path=BASE_VLM)


@pytest.fixture(scope='module')
def expert(exported):
    return OnnxExpertStep(exported / 'expert.onnx', providers=['CPUExecutionProvider'])


# case_001: 1 sample, prefix 266 (prompt-fed CoC); case_002: 2 samples, prefix 264.
@pytest.fixture(scope='module', params=['case_001', 'case_002'])
def prefix(request, model):
    meta, tensors = load(f'cases/{request.param}')
    *_, roll = _rollout(model, meta, tensors)
    cond = expert_conditioning(roll.sequences, roll.cache.get_seq_length(),
                               model.preprocessor.ids.traj_future_start, roll.rope_delta, 64)
    return roll, cond, stack_cache(roll.cache), tensors


def test_cli_writes_files_and_report(exported):
    report = json.loads((exported / 'export.json').read_text())
    assert (report['opset'], report['dtype']) == (20, 'float32')
    expert, vision = report['parts']['expert'], report['parts']['vision']
    assert list(expert['inputs']) == list(EXPERT_INPUTS)
    assert expert['inputs']['past_keys']['shape'] == [2, 'batch', 2, 'prefix', 32]
    assert expert['inputs']['position_ids']['dtype'] == 'int64'
    assert expert['outputs'] == {'velocity': {'shape': ['batch', 64, 2], 'dtype': 'float32'}}
    assert [(c['batch'], c['prefix']) for c in expert['checks']] == [(1, 41), (3, 7)]
    assert (vision['grid_thw'], vision['resized']) == (GRID, [64, 128])
    assert vision['outputs']['deepstack_features']['shape'] == [2, '8*images', 64]
    assert all(0 <= part['max_abs_error'] <= TOL for part in (expert, vision))
    assert (exported / expert['file']).is_file()
    assert (exported / vision['file']).is_file()
    # Small models keep their weights inline; a stale external weight file is removed.
    assert expert['external_data'] is None
    assert not (exported / 'expert.onnx.data').exists()


def test_cli_float16_expert(tmp_path):
    """float16 weights: the prefix and mask are float16, actions and velocity stay float32."""
    assert main(['export-onnx', '--checkpoint', str(CHECKPOINT), '--vlm-path', str(BASE_VLM),
                 '--out', str(tmp_path), '--parts', 'expert', '--dtype', 'float16']) == 0
    report = json.loads((tmp_path / 'export.json').read_text())
    assert list(report['parts']) == ['expert']
    assert not (tmp_path / 'vision.onnx').exists()
    dtypes = {k: v['dtype'] for k, v in report['parts']['expert']['inputs'].items()}
    assert dtypes == {'x': 'float32', 't': 'float32', 'past_keys': 'float16',
                      'past_values': 'float16', 'position_ids': 'int64', 'mask': 'float16'}
    assert report['parts']['expert']['outputs']['velocity']['dtype'] == 'float32'
    assert 0 < report['parts']['expert']['max_abs_error'] <= 1e-2


@pytest.mark.parametrize(('argv', 'message'), [
    (['--checkpoint', 'no/such/folder'], 'checkpoint folder no/such/folder not found'),
    (['--checkpoint', str(CHECKPOINT), '--parts', 'expert,decoder'], 'unknown or no part'),
    (['--checkpoint', str(CHECKPOINT), '--image-size', '1080'], '--image-size must be HxW'),
])
def test_cli_refuses_bad_arguments(tmp_path, capsys, argv, message):
    assert main(['export-onnx', '--out', str(tmp_path / 'out'), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_expert_step_is_expert_velocity(model, prefix):
    roll, cond, (keys, values), tensors = prefix
    x, t = tensors['diffusion/x_steps'][4], tensors['diffusion/t_steps'][4]
    with torch.inference_mode():
        expected = model.network.expert_velocity(x, t, roll.cache, cond.position_ids, cond.mask)
        got = ExpertStep(model.network)(x, t, keys, values, cond.position_ids, cond.mask)
    assert torch.equal(got, expected)
    assert roll.cache.get_seq_length() == keys.shape[3]


def test_onnx_expert_matches_torch(model, expert, prefix):
    roll, cond, (keys, values), tensors = prefix
    assert keys.shape[1] == roll.sequences.shape[0]
    for step in (0, 5, 9):
        x, t = tensors['diffusion/x_steps'][step], tensors['diffusion/t_steps'][step]
        with torch.inference_mode():
            expected = model.network.expert_velocity(x, t, roll.cache, cond.position_ids,
                                                     cond.mask)
        got = expert(x, t, keys, values, cond.position_ids, cond.mask)
        assert (got.shape, got.dtype) == (tuple(expected.shape), np.float32)
        assert max_abs_error(expected, got) <= TOL


def test_onnx_expert_on_a_shorter_prefix(model, expert, prefix):
    """First 100 cached tokens of one sample: another batch size and prefix length."""
    _, cond, (keys, values), tensors = prefix
    keys, values = keys[:, :1, :, :100], values[:, :1, :, :100]
    mask = torch.cat([cond.mask[:1, ..., :100], cond.mask[:1, ..., -64:]], dim=-1)
    args = (tensors['diffusion/x_steps'][3][:1], tensors['diffusion/t_steps'][3][:1], keys,
            values, cond.position_ids[:, :1], mask)
    with torch.inference_mode():
        expected = ExpertStep(model.network)(*args)
    assert max_abs_error(expected, expert(*args)) <= TOL


def test_onnx_euler_loop_matches_torch(model, expert, prefix):
    roll, cond, (keys, values), tensors = prefix
    net, noise = model.network, tensors['diffusion/noise']
    with torch.inference_mode():
        expected, _ = flow_actions(net, roll, model.preprocessor.ids.traj_future_start, noise,
                                   None, None)
    velocity = onnx_runner.onnx_velocity_fn(expert, keys, values, cond.position_ids, cond.mask)
    actions = net.diffusion.sample(velocity, noise)
    assert (actions.shape, actions.dtype) == (noise.shape, torch.float32)
    assert max_abs_error(expected, actions) <= TOL
    assert max_abs_error(tensors['diffusion/sampled_action'], actions) <= TOL


def test_onnx_expert_rejects_a_mask_of_another_prefix(expert):
    keys = np.zeros((2, 1, 2, 10, 32), np.float32)
    args = (np.zeros((1, 64, 2), np.float32), np.zeros((1, 1, 1), np.float32), keys, keys,
            np.zeros((3, 1, 64), np.int64), np.zeros((1, 1, 64, 75), np.float32))
    with pytest.raises(ValueError, match=r'mask \(1, 1, 64, 75\) must be'):
        expert(*args)


def test_onnx_vision_matches_torch(model, exported):
    _, tensors = load('cases/case_000')
    pixels, grid = tensors['inputs/pixel_values'], tensors['inputs/image_grid_thw']
    vision = OnnxVision(exported / 'vision.onnx', providers=['CPUExecutionProvider'])
    assert list(vision.grid_thw) == GRID
    for images in (16, 3):  # the number of images is a dynamic axis
        rows = images * 32
        with torch.inference_mode():
            expected = model.network.vlm.model.get_image_features(pixels[:rows], grid[:images])
        embeds, deepstack = vision(pixels[:rows], grid[:images])
        assert (embeds.shape, deepstack.shape) == ((images * 8, 64), (2, images * 8, 64))
        assert max_abs_error(torch.cat(expected.pooler_output), embeds) <= TOL
        for level, features in enumerate(expected.deepstack_features):
            assert max_abs_error(torch.cat(features), deepstack[level]) <= TOL


def test_onnx_vision_refuses_other_grids(exported):
    vision = OnnxVision(exported / 'vision.onnx', providers=['CPUExecutionProvider'])
    pixels = np.zeros((64, 1536), np.float32)
    with pytest.raises(ValueError, match=r'exported for images of grid \(1, 4, 8\)'):
        vision(pixels, np.array([[1, 4, 8], [1, 8, 4]]))
    with pytest.raises(ValueError, match='pixel_values has 64 rows'):
        vision(pixels, np.array([[1, 4, 8]]))


def test_vision_encoder_refuses_unmergeable_grids_and_other_towers(model):
    with pytest.raises(ValueError, match='multiples of 2'):
        VisionEncoder(model.network.vlm.model.visual, (1, 3, 8))
    with pytest.raises(ValueError, match='supports Qwen3-VL only, got Linear'):
        VisionEncoder(torch.nn.Linear(2, 2), (1, 4, 8))


def test_default_providers_prefer_cuda(monkeypatch):
    monkeypatch.setattr(onnx_runner.ort, 'get_available_providers',
                        lambda: ['CUDAExecutionProvider', 'CPUExecutionProvider'])
    assert onnx_runner.default_providers() == ['CUDAExecutionProvider', 'CPUExecutionProvider']
    monkeypatch.setattr(onnx_runner.ort, 'get_available_providers',
                        lambda: ['AzureExecutionProvider', 'CPUExecutionProvider'])
    assert onnx_runner.default_providers() == ['CPUExecutionProvider']


def test_missing_onnx_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='expert.onnx not found'):
        OnnxExpertStep(tmp_path / 'expert.onnx')
