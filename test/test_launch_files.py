"""Launch files and the RViz config, checked statically (no launch_ros in the pip world).

The launch files must start the same entry point as `ar1 run` with the shipped parameter file,
and the RViz config must show the topics the node really publishes.
"""
import ast
from pathlib import Path
import re

import yaml

REPO = Path(__file__).resolve().parents[1]


def _strings(path):
    tree = ast.parse(path.read_text())
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def _functions(path):
    return {node.name for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef)}


def test_vehicle_launch_runs_the_node_with_the_shipped_parameters():
    path = REPO / 'launch' / 'ar1.launch.py'
    strings = _strings(path)
    assert 'generate_launch_description' in _functions(path)
    assert {'ar1_ros', 'ar1', 'run', 'ar1_policy', 'config', 'ar1.yaml', '--no-autostart',
            'use_sim_time', 'params_file'} <= strings


def test_replay_launch_plays_with_clock_and_sim_time():
    path = REPO / 'launch' / 'ar1_replay.launch.py'
    source = path.read_text()
    strings = _strings(path)
    assert {'ros2', 'bag', 'play', '--clock', 'rviz2', 'ar1.rviz', 'run'} <= strings
    assert "{'use_sim_time': True}" in source


def _players(path):
    """Return {player name: command} of every ExecuteProcess(cmd=[...], condition=...).

    Names in a command (launch arguments, the ar1 path) come back as '<name>'.
    """
    players = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'ExecuteProcess':
            keywords = {k.arg: k.value for k in node.keywords}
            condition = keywords['condition']
            assert getattr(getattr(condition, 'func', None), 'id', '') == '_player_is'
            players[condition.args[0].value] = [
                e.value if isinstance(e, ast.Constant) else f'<{e.id}>'
                for e in keywords['cmd'].elts]
    return players


def test_replay_launch_offers_ar1_replay_as_the_player():
    path = REPO / 'launch' / 'ar1_replay.launch.py'
    strings = _strings(path)
    assert {'player', 'ros2', 'ar1', 'replay', 'lib', '--rate'} <= strings
    assert "choices=['ros2', 'ar1']" in path.read_text()
    players = _players(path)
    assert set(players) == {'ros2', 'ar1'}, 'one player per choice, each behind its condition'
    assert players['ros2'][:5] == ['ros2', 'bag', 'play', '<bag>', '--clock']
    # The same subcommand the pip world runs: `ar1 replay BAG --rate R`, parsed by our CLI.
    from ar1_ros.cli.main import build_parser
    command = players['ar1']
    assert command[0] == '<ar1>'
    values = {'<bag>': 'some_bag', '<rate>': '0.5'}
    args = build_parser().parse_args([values.get(a, a) for a in command[1:]])
    assert (args.command, str(args.bag), args.rate, args.loop) == ('replay', 'some_bag', 0.5,
                                                                   False)
    # `ar1` is the executable CMake installs into lib/ar1_ros (what `ros2 run` finds).
    assert "os.path.join(get_package_prefix('ar1_ros'), 'lib', 'ar1_ros', 'ar1')" in \
        path.read_text()
    assert 'install(PROGRAMS scripts/ar1 DESTINATION lib/${PROJECT_NAME})' in \
        (REPO / 'CMakeLists.txt').read_text()


def test_referenced_share_files_exist_and_are_installed():
    assert (REPO / 'config' / 'ar1.yaml').is_file()
    assert (REPO / 'rviz' / 'ar1.rviz').is_file()
    cmake = (REPO / 'CMakeLists.txt').read_text()
    assert re.search(r'foreach\(_share_dir launch config rviz\)', cmake)


def test_rviz_shows_what_the_node_publishes():
    config = yaml.safe_load((REPO / 'rviz' / 'ar1.rviz').read_text())
    displays = config['Visualization Manager']['Displays']
    topics = {d['Topic']['Value'] for d in displays if 'Topic' in d}
    published = set(re.findall(r"'~/([a-z_]+)'", (REPO / 'ar1_ros' / 'nodes' /
                                                  'outputs.py').read_text()))
    shown = {t.split('/')[-1] for t in topics if t.startswith('/ar1_policy/')}
    assert {'path', 'markers', 'overlay', 'diagnostics_markers'} <= shown
    assert shown <= published, f'RViz shows topics the node does not publish: {shown - published}'
    classes = {d['Class'] for d in displays}
    assert {'rviz_default_plugins/Path', 'rviz_default_plugins/MarkerArray',
            'rviz_default_plugins/Image'} <= classes
    assert config['Visualization Manager']['Global Options']['Fixed Frame'] == 'base_link'
