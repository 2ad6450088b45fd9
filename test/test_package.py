"""The ROS package description agrees with the code: package.xml, CMake, setup.py, msgs."""
import os
from pathlib import Path
import re
import sys

from catkin_pkg.package import parse_package

import ar1_ros

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_a_valid_interface_package():
    package = parse_package(str(ROOT / 'package.xml'))
    package.validate()
    assert package.name == 'ar1_ros'
    assert package.version == ar1_ros.__version__
    assert package.get_build_type() == 'ament_cmake'
    buildtool = {d.name for d in package.buildtool_depends}
    assert {'ament_cmake', 'ament_cmake_python', 'rosidl_default_generators'} <= buildtool
    assert 'rosidl_interface_packages' in {g.name for g in package.member_of_groups}
    assert {'rclpy', 'rosidl_default_runtime'} <= {d.name for d in package.exec_depends}


def test_setup_py_version_matches():
    setup_py = (ROOT / 'setup.py').read_text()
    assert f"version='{ar1_ros.__version__}'" in setup_py


def test_every_msg_file_is_generated():
    listed = set(re.findall(r'"(msg/\w+\.msg)"', (ROOT / 'CMakeLists.txt').read_text()))
    on_disk = {f'msg/{p.name}' for p in (ROOT / 'msg').glob('*.msg')}
    assert listed == on_disk


def test_generated_types_have_the_documented_fields():
    from ar1_ros.msg import Reasoning, Trajectory, TrajectoryPoint
    assert Trajectory.get_fields_and_field_types() == {
        'header': 'std_msgs/Header', 'horizon': 'builtin_interfaces/Duration',
        'time_step': 'builtin_interfaces/Duration',
        'points': 'sequence<ar1_ros/TrajectoryPoint>', 'sample_index': 'uint32',
        'num_samples': 'uint32', 'model_id': 'string'}
    assert TrajectoryPoint.get_fields_and_field_types() == {
        'time_from_start': 'builtin_interfaces/Duration', 'x': 'double', 'y': 'double',
        'z': 'double', 'yaw': 'double', 'velocity': 'double', 'acceleration': 'double',
        'curvature': 'double'}
    assert Reasoning.get_fields_and_field_types() == {
        'header': 'std_msgs/Header', 'text': 'string', 'decision': 'string',
        'token_count': 'uint32', 'latency': 'sequence<ar1_ros/StageLatency>',
        'sample_index': 'uint32', 'num_samples': 'uint32', 'model_id': 'string'}


def test_package_is_registered_in_the_ament_index(monkeypatch):
    # launch_ros finds packages and their share folders through the ament index.
    from ament_index_python.packages import get_package_share_directory
    monkeypatch.setenv('AMENT_PREFIX_PATH', sys.prefix)
    share = Path(get_package_share_directory('ar1_ros'))
    assert (share / 'package.xml').is_file()
    assert (share / 'msg' / 'Trajectory.msg').is_file()
    assert os.path.samefile(share, Path(sys.prefix) / 'share' / 'ar1_ros')


def test_every_ros_package_the_nodes_import_is_declared():
    import ast
    from pathlib import Path

    from catkin_pkg.package import parse_package
    repo = Path(__file__).resolve().parents[1]
    declared = {d.name for d in parse_package(str(repo / 'package.xml')).exec_depends}
    imported = set()
    for path in (repo / 'ar1_ros' / 'nodes').glob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split('.')[0])
            elif isinstance(node, ast.Import):
                imported.update(alias.name.split('.')[0] for alias in node.names)
    ros = {m for m in imported if m == 'rclpy' or m.endswith(('_msgs', '_interfaces'))}
    assert ros, 'the nodes import no ROS package?'
    assert ros - declared == set(), 'imported by ar1_ros/nodes but not an exec_depend'
