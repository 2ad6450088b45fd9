"""Python packaging of ar1_ros for the pip world (editable development, the `ar1` command).

colcon builds this repository through CMakeLists.txt (build type ament_cmake); this file serves
`pip install -e .` in the virtual environment that `make setup` creates. Dependencies are not
listed here: their exact versions come from requirements/constraints.txt (see README).
"""
from setuptools import find_packages, setup

setup(
    name='ar1_ros',
    version='0.1.0',
    description='NVIDIA Alpamayo-R1 driving policy as ROS 2 nodes, rosbag tools and training.',
    license='Apache-2.0',
    python_requires='>=3.11',
    packages=find_packages(include=('ar1_ros', 'ar1_ros.*')),
    # The shipped backbone architecture (ar1_ros/model/configs) is data the loader reads; the
    # review page's script and style (ar1_ros/data/review) are inlined into every page written.
    package_data={'ar1_ros.model': ['configs/*.json', 'configs/*/*.json', 'configs/*/*.md'],
                  'ar1_ros.data': ['review/*.js', 'review/*.css']},
    entry_points={'console_scripts': ['ar1 = ar1_ros.cli:main']},
)
