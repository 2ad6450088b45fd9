"""backend.expert_engine: the expert's flow steps on ONNX Runtime plan as torch does."""
from model.golden import BASE_VLM, CHECKPOINT, load
import pytest
import torch

from ar1_ros.cli.main import main
from ar1_ros.model import AR1Model
from ar1_ros.model.onnx_expert import ExpertStep, expert_example
from ar1_ros.runtime.backends.base import BackendSettings
from ar1_ros.runtime.backends.compiled_expert import pad_prefix
from ar1_ros.runtime.backends.expert_engines import expert_file, make_expert_step
from ar1_ros.runtime.backends.torch_backend import TorchBackend


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp('onnx')
    assert main(['export-onnx', '--checkpoint', str(CHECKPOINT), '--vlm-path', str(BASE_VLM),
                 '--out', str(out), '--parts', 'expert']) == 0
    return out / 'expert.onnx'


def test_predict_with_the_onnx_expert_equals_torch(exported):
    model = AR1Model.from_pretrained(CHECKPOINT, dtype=torch.float32, vlm_path=BASE_VLM)
    meta, t = load('cases/case_002')
    images = t['inputs/image_frames'].permute(0, 1, 3, 4, 2).contiguous()
    args = (images, t['inputs/ego_history_xyz'][0, 0], t['inputs/ego_history_rot'][0, 0])
    kwargs = {'num_samples': meta['num_traj_samples'], 'noise': t['diffusion/noise'],
              'greedy': True, 'max_reasoning_tokens': 32}
    step = make_expert_step('onnx', str(exported), CHECKPOINT)
    onnx = model.predict(*args, expert_step=step, **kwargs)
    torch_plan = model.predict(*args, **kwargs)
    torch.testing.assert_close(onnx.trajectory_xyz, torch_plan.trajectory_xyz, rtol=0, atol=1e-4)
    torch.testing.assert_close(onnx.trajectory_xyz, t['outputs/pred_xyz'][0, 0], rtol=0,
                               atol=1e-4)


def test_backend_builds_the_configured_engine(exported):
    settings = BackendSettings(checkpoint=str(CHECKPOINT), vlm_path=str(BASE_VLM),
                               expert_engine='onnx', expert_file=str(exported))
    backend = TorchBackend(settings)
    assert backend.expert_step is not None
    assert TorchBackend(BackendSettings(checkpoint=str(CHECKPOINT),
                                        vlm_path=str(BASE_VLM))).expert_step is None


def test_missing_files_and_bad_engines_are_explained(tmp_path):
    assert make_expert_step('torch', '', tmp_path) is None
    assert expert_file('onnx', '', tmp_path) == tmp_path / 'onnx' / 'expert.onnx'
    with pytest.raises(FileNotFoundError, match='ar1 export-onnx --checkpoint'):
        make_expert_step('onnx', '', tmp_path)
    with pytest.raises(FileNotFoundError, match='expert.engine does not exist'):
        make_expert_step('tensorrt', '', tmp_path)
    with pytest.raises(ValueError, match='expert_engine must be one of'):
        make_expert_step('openvino', '', tmp_path)
    with pytest.raises(ValueError, match='backend expert_engine '):
        BackendSettings(expert_engine='openvino')


def test_prefix_padding_keeps_the_velocity():
    model = AR1Model.from_pretrained(CHECKPOINT, dtype=torch.float32, vlm_path=BASE_VLM)
    ex = expert_example(model.network, batch=2, prefix=37)
    step = ExpertStep(model.network)
    keys, values, mask = pad_prefix(ex['past_keys'], ex['past_values'], ex['mask'], 16)
    assert keys.shape[3] == 48
    assert mask.shape[-1] == 48 + 64
    with torch.no_grad():
        plain = step(ex['x'], ex['t'], ex['past_keys'], ex['past_values'], ex['position_ids'],
                     ex['mask'])
        padded = step(ex['x'], ex['t'], keys, values, ex['position_ids'], mask)
    torch.testing.assert_close(padded, plain, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_compiled_expert_plans_as_eager():
    """torch.compile of the expert step (about 30 s to compile on this CPU)."""
    model = AR1Model.from_pretrained(CHECKPOINT, dtype=torch.float32, vlm_path=BASE_VLM)
    _, t = load('cases/case_000')
    images = t['inputs/image_frames'].permute(0, 1, 3, 4, 2).contiguous()
    args = (images, t['inputs/ego_history_xyz'][0, 0], t['inputs/ego_history_rot'][0, 0])
    kwargs = {'noise': t['diffusion/noise'], 'greedy': True, 'max_reasoning_tokens': 32}
    compiled = make_expert_step('compiled', '', CHECKPOINT, model.network)
    plan = model.predict(*args, expert_step=compiled, **kwargs)
    again = model.predict(*args, expert_step=compiled, **kwargs)
    eager = model.predict(*args, **kwargs)
    torch.testing.assert_close(plan.trajectory_xyz, eager.trajectory_xyz, rtol=0, atol=1e-4)
    torch.testing.assert_close(again.trajectory_xyz, plan.trajectory_xyz, rtol=0, atol=0)
    assert compiled.compiled_shapes == {(1, 384): 2}  # 264-token prefix -> one bucket


def test_tensorrt_without_tensorrt_is_explained(tmp_path):
    from ar1_ros.runtime.trt_runner import TensorRTUnavailable, tensorrt_available
    if tensorrt_available():
        pytest.skip('TensorRT is available here')
    engine = tmp_path / 'expert.engine'
    engine.write_bytes(b'not an engine')
    with pytest.raises(TensorRTUnavailable, match='expert_engine'):
        make_expert_step('tensorrt', str(engine), tmp_path)
