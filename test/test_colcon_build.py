"""`colcon build` of this repository in a workspace, as on a machine with ROS 2 installed.

The ROS 2 here is the pip wheels' (no apt ROS exists for Debian 12), so this exercises our
package.xml and CMakeLists.txt under colcon with ament_cmake, ament_cmake_python and rosidl: the
installed ar1_ros must hold both the generated messages and our Python sources.
"""
import os
from pathlib import Path
import shutil
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def copy_checkout(dest: Path) -> None:
    """Copy the files git would commit (tracked and untracked-not-ignored) into dest."""
    files = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split('\0')
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_colcon_build_installs_messages_and_python(tmp_path):
    copy_checkout(tmp_path / 'src' / 'ar1_ros')
    env = dict(os.environ, PATH=f'{VENV_BIN}:{os.environ["PATH"]}',
               CMAKE_PREFIX_PATH=sys.prefix, AMENT_PREFIX_PATH=sys.prefix)
    build = subprocess.run(
        [str(VENV_BIN / 'colcon'), 'build', '--event-handlers', 'console_direct-',
         '--cmake-args', f'-DPython3_EXECUTABLE={sys.executable}', '-DBUILD_TESTING=OFF'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    logs = '\n'.join(p.read_text() for p in (tmp_path / 'log').rglob('stderr.log'))
    assert build.returncode == 0, build.stdout[-4000:] + logs[-4000:]

    prefix = tmp_path / 'install' / 'ar1_ros'
    site = prefix / 'lib' / f'python{sys.version_info.major}.{sys.version_info.minor}' / (
        'site-packages')
    assert (prefix / 'lib' / 'ar1_ros' / 'ar1').is_file()  # `ros2 run ar1_ros ar1`
    assert (prefix / 'share' / 'ar1_ros' / 'package.xml').is_file()
    assert (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'ar1_ros').exists()
    # Our __init__.py, not rosidl's empty one, must win in the merged install folder.
    assert (site / 'ar1_ros' / '__init__.py').read_text() == (ROOT / 'ar1_ros' / '__init__.py'
                                                              ).read_text()
    # Import from the install only: drop the editable checkout from sys.path.
    probe = (
        'import sys; sys.path = [p for p in sys.path if p != sys.argv[1]]\n'
        'import ar1_ros, ar1_ros.cli, ar1_ros.model\n'
        'from ar1_ros.msg import Reasoning, Trajectory\n'
        'assert ar1_ros.__file__.startswith(sys.argv[2]), ar1_ros.__file__\n'
        'assert Trajectory.__module__ == "ar1_ros.msg._trajectory"\n'
        'import ar1_ros.msg; assert ar1_ros.msg.__file__.startswith(sys.argv[2])\n'
        'print("ok")\n')
    run_env = dict(os.environ, PYTHONPATH=str(site),
                   LD_LIBRARY_PATH=f'{prefix / "lib"}:{os.environ.get("LD_LIBRARY_PATH", "")}')
    result = subprocess.run([sys.executable, '-c', probe, str(ROOT), str(site)], env=run_env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == 'ok', result.stdout + result.stderr
