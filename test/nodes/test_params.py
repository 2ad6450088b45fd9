"""The node's parameters: the shipped config/ar1.yaml, descriptions, and refused values."""
import pytest
import rclpy
from rclpy.parameter import Parameter
from ros.harness import CONFIG

pytestmark = pytest.mark.ros


@pytest.fixture
def declared():
    contexts = []

    def declare(overrides=None, config_file=CONFIG):
        from ar1_ros.nodes.params import build_config, declare_parameters
        context = rclpy.Context()
        args = ['--ros-args', '--params-file', config_file] if config_file else []
        rclpy.init(context=context, args=args)
        contexts.append(context)
        node = rclpy.create_node('ar1_policy', context=context, parameter_overrides=[
            Parameter(k, value=v) for k, v in (overrides or {}).items()])
        values = declare_parameters(node)
        return node, values, (lambda: build_config(values))
    yield declare
    for context in contexts:
        rclpy.shutdown(context=context)


def test_shipped_config(declared):
    node, values, build = declared()
    config = build()
    assert config.runtime.camera_names == (
        'camera_cross_left_120fov', 'camera_front_wide_120fov', 'camera_cross_right_120fov',
        'camera_front_tele_30fov')
    assert [c.id for c in config.inputs] == ['cross_left', 'front_wide', 'cross_right',
                                             'front_tele']
    assert all(c.compressed for c in config.inputs)
    assert config.backend.kind == 'torch'
    assert config.backend.dtype == 'bfloat16'
    assert config.backend.preprocess_device == 'model'
    assert config.runtime.selection.frame_offsets_s == (-0.3, -0.2, -0.1, 0.0)
    assert config.runtime.camera('camera_front_wide_120fov').calibrated
    assert config['output.frame_id'] == 'base_link'
    for name in values:
        description = node.describe_parameter(name).description
        assert len(description) > 10, f'{name} has no description'


def test_every_yaml_key_is_a_declared_parameter(declared):
    import yaml
    with open(CONFIG) as f:
        params = yaml.safe_load(f)['/**']['ros__parameters']

    def flatten(tree, prefix=''):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from flatten(value, f'{prefix}{key}.')
            else:
                yield f'{prefix}{key}'
    _, values, _ = declared()
    assert set(flatten(params)) - set(values) == set(), 'YAML keys the node ignores'


@pytest.mark.parametrize(('overrides', 'needle'), [
    ({'cameras': ['front_wide'], 'camera.front_wide.topic': ''}, 'camera.front_wide.topic'),
    ({'camera.front_tele.ar1_name': 'camera_roof'}, 'camera_roof'),
    ({'camera.front_tele.ar1_name': 'camera_front_wide_120fov'}, 'repeat'),
    ({'camera.cross_left.intrinsics': [1.0, 2.0]}, 'intrinsics'),
    ({'selection.frame_tolerance_s': 0.0}, 'frame_tolerance_s'),
    ({'selection.frame_offsets_s': [0.0, -0.1]}, 'frame_offsets_s'),
    ({'validator.max_accel': -20.0}, 'min_accel'),
    ({'backend.num_samples': 0}, 'num_samples'),
    ({'backend.kind': 'tensorrt'}, 'kind'),
    ({'backend.dtype': 'fp8', 'backend.device': 'cpu'}, "fp8 needs a CUDA device .* 'cpu'"),
    ({'backend.preprocess_device': 'gpu'}, r"preprocess_device must be one of \('cpu', 'model'\)"),
    ({'output.overlay': True, 'output.overlay_camera': 'camera_cross_left_120fov'},
     'intrinsics and extrinsics'),
    ({'cycle_rate_hz': 0.0}, 'cycle_rate_hz'),
])
def test_refused_values_name_the_parameter(declared, overrides, needle):
    from ar1_ros.nodes.params import ConfigError
    _, _, build = declared(overrides)
    with pytest.raises(ConfigError, match=needle):
        build()


def test_wrong_type_is_a_config_error(declared):
    from ar1_ros.nodes.params import ConfigError
    with pytest.raises(ConfigError, match='cycle_rate_hz'):
        declared({'cycle_rate_hz': 'fast'})


def test_no_cameras_is_a_config_error(declared):
    from ar1_ros.nodes.params import ConfigError
    _, _, build = declared(config_file=None)
    with pytest.raises(ConfigError, match='cameras'):
        build()
