"""Replay a rosbag through ar1_policy with sim time, and watch it in RViz.

    ros2 launch ar1_ros ar1_replay.launch.py bag:=/path/to/bag [rate:=0.5] [rviz:=true]

`ros2 bag play --clock` publishes /clock from the bag's timeline; the node runs with
use_sim_time so buffers, t0 and staleness follow the bag, and a bag restart (clock jump back)
clears its buffers. The pip world does the same with `ar1 replay BAG` and
`ar1 run --params config/ar1.yaml --ros-args -p use_sim_time:=true`.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from launch import LaunchDescription


def generate_launch_description():
    """Return the replay launch description: bag player, policy node, RViz."""
    share = get_package_share_directory('ar1_ros')
    return LaunchDescription([
        DeclareLaunchArgument('bag', description='rosbag2 folder or file to play'),
        DeclareLaunchArgument('rate', default_value='1.0', description='playback rate'),
        DeclareLaunchArgument('params_file',
                              default_value=os.path.join(share, 'config', 'ar1.yaml')),
        DeclareLaunchArgument('rviz', default_value='true'),
        ExecuteProcess(
            cmd=['ros2', 'bag', 'play', LaunchConfiguration('bag'), '--clock',
                 '--rate', LaunchConfiguration('rate')],
            output='screen'),
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
