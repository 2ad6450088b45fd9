"""Replay a rosbag through ar1_policy with sim time, and watch it in RViz.

    ros2 launch ar1_ros ar1_replay.launch.py bag:=/path/to/bag [rate:=0.5] [rviz:=true]
        [player:=ros2|ar1]

`ros2 bag play --clock` (player:=ros2, the default) or this package's `ar1 replay`
(player:=ar1: the same bytes, timing and /clock, without ros2bag) publishes the bag with
/clock; the node runs with use_sim_time so buffers, t0 and staleness follow the bag, and a bag
restart (clock jump back) clears its buffers. The pip world does the same with `ar1 replay BAG`
and `ar1 run --params config/ar1.yaml --ros-args -p use_sim_time:=true`.
"""
import os

from ament_index_python.packages import get_package_prefix, get_package_share_directory
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import LifecycleNode, Node

from launch import LaunchDescription


def _player_is(name: str) -> IfCondition:
    return IfCondition(PythonExpression(["'", LaunchConfiguration('player'), f"' == '{name}'"]))


def generate_launch_description():
    """Return the replay launch description: bag player, policy node, RViz."""
    share = get_package_share_directory('ar1_ros')
    ar1 = os.path.join(get_package_prefix('ar1_ros'), 'lib', 'ar1_ros', 'ar1')
    bag, rate = LaunchConfiguration('bag'), LaunchConfiguration('rate')
    return LaunchDescription([
        DeclareLaunchArgument('bag', description='rosbag2 folder or file to play'),
        DeclareLaunchArgument('rate', default_value='1.0', description='playback rate'),
        DeclareLaunchArgument('player', default_value='ros2', choices=['ros2', 'ar1'],
                              description="'ros2': ros2 bag play; 'ar1': ar1 replay"),
        DeclareLaunchArgument('params_file',
                              default_value=os.path.join(share, 'config', 'ar1.yaml')),
        DeclareLaunchArgument('rviz', default_value='true'),
        ExecuteProcess(cmd=['ros2', 'bag', 'play', bag, '--clock', '--rate', rate],
                       output='screen', condition=_player_is('ros2')),
        ExecuteProcess(cmd=[ar1, 'replay', bag, '--rate', rate, '--delay', '1.0'],
                       output='screen', condition=_player_is('ar1')),
        LifecycleNode(
            package='ar1_ros', executable='ar1', name='ar1_policy', namespace='',
            arguments=['run'],
            parameters=[LaunchConfiguration('params_file'), {'use_sim_time': True}],
            output='screen', emulate_tty=True),
        Node(package='rviz2', executable='rviz2', name='rviz2',
             arguments=['-d', os.path.join(share, 'rviz', 'ar1.rviz')],
             parameters=[{'use_sim_time': True}],
             condition=IfCondition(LaunchConfiguration('rviz'))),
    ])
