"""The parameter file read without a node (`ar1 eval`) gives what the node itself declares."""
from pathlib import Path

import pytest
import rclpy
from rclpy.parameter import Parameter
from ros.harness import CONFIG
import yaml

from ar1_ros.nodes.params import ConfigError, build_config, declare_parameters
from ar1_ros.nodes.params_file import load_config, read_values

pytestmark = pytest.mark.ros


def node_values(config_file, overrides=None):
    context = rclpy.Context()
    rclpy.init(context=context, args=['--ros-args', '--params-file', str(config_file)])
    try:
        node = rclpy.create_node('ar1_policy', context=context, parameter_overrides=[
            Parameter(k, value=v) for k, v in (overrides or {}).items()])
        values = declare_parameters(node)
        node.destroy_node()
        return values
    finally:
        rclpy.shutdown(context=context)


def test_shipped_config_reads_as_the_node_declares_it():
    assert read_values(CONFIG) == node_values(CONFIG)
    assert load_config(CONFIG) == build_config(node_values(CONFIG))


def test_overrides_and_node_section(tmp_path):
    document = yaml.safe_load(Path(CONFIG).read_text())
    document['ar1_policy'] = {'ros__parameters': {'backend': {'num_samples': 3}}}
    path = tmp_path / 'p.yaml'
    path.write_text(yaml.safe_dump(document))
    config = load_config(path, {'backend.seed': 7})
    assert (config.backend.num_samples, config.backend.seed) == (3, 7)
    assert read_values(path, {'backend.seed': 7}) == node_values(
        path, {'backend.seed': 7})


@pytest.mark.parametrize(('text', 'message'), [
    ('/**:\n  ros__parameters:\n    backend: {foo: 1}\n', 'unknown parameter(s) backend.foo'),
    ('/**: [1, 2]\n', 'has no ros__parameters'),
    ('other_node:\n  ros__parameters: {a: 1}\n', "no parameters for 'ar1_policy'"),
    ('/**: {ros__parameters: {cameras: []}}\n', 'parameter cameras is empty'),
    ('a: [\n', 'not valid YAML'),
])
def test_bad_files_are_clear_errors(tmp_path, text, message):
    path = tmp_path / 'p.yaml'
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match='cannot read parameter file'):
        load_config(tmp_path / 'none.yaml')
