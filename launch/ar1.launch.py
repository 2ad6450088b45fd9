"""Launch the ar1_policy lifecycle node on a vehicle (ROS 2 Jazzy/Kilted with launch_ros).

    ros2 launch ar1_ros ar1.launch.py [params_file:=...] [namespace:=...] [autostart:=true]

The node runs through the same `ar1 run` entry point the pip world uses, with the parameter
file given here, so both paths share one configuration. With autostart the node configures and
activates itself; without it, drive it with `ros2 lifecycle set /ar1_policy configure`.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

from launch import LaunchDescription


def _node(condition, arguments):
    return LifecycleNode(
        package='ar1_ros', executable='ar1', name='ar1_policy',
        namespace=LaunchConfiguration('namespace'), arguments=arguments,
        parameters=[LaunchConfiguration('params_file'),
                    {'use_sim_time': LaunchConfiguration('use_sim_time')}],
        output='screen', emulate_tty=True, condition=condition)


def generate_launch_description():
    """Return the vehicle launch description."""
    default_params = os.path.join(get_package_share_directory('ar1_ros'), 'config', 'ar1.yaml')
    autostart = LaunchConfiguration('autostart')
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='ar1_policy parameter file'),
        DeclareLaunchArgument('namespace', default_value='', description='node namespace'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='use /clock (replay, simulation)'),
        DeclareLaunchArgument('autostart', default_value='true',
                              description='configure and activate on start'),
        _node(IfCondition(autostart), ['run']),
        _node(UnlessCondition(autostart), ['run', '--no-autostart']),
    ])
