#!/usr/bin/env bash
# Build ar1_ros's messages (msg/*.msg) with plain cmake against the ros-rosidl-* wheels and
# install them into a virtual environment, for the pip world where colcon and apt ROS are absent.
#
# Usage: scripts/build_msgs.sh [VENV]        (default: .venv next to this repository)
#
# It builds the repository's own CMakeLists.txt with AR1_INSTALL_PYTHON_SOURCES=OFF, so the
# messages are exactly what `colcon build` produces, while the Python sources stay an editable
# install of the checkout. Idempotent: it skips the build when its inputs have not changed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$(realpath "${1:-$ROOT/.venv}")
PY=$VENV/bin/python
BUILD=$ROOT/build/msgs
[ -x "$PY" ] || { echo "build_msgs: no Python at $PY; run 'make setup' first" >&2; exit 2; }

SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
STAMP=$VENV/share/ar1_ros/.msgs-stamp
hash_inputs() {
  cat "$ROOT"/msg/*.msg "$ROOT/CMakeLists.txt" "$ROOT/package.xml" "${BASH_SOURCE[0]}" \
    | sha256sum | cut -d' ' -f1
}
WANT=$(hash_inputs)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -d "$SITE/ar1_ros/msg" ]; then
  echo "build_msgs: messages are up to date ($VENV)"
  exit 0
fi

# The wheels' exported cmake targets hard-code the manylinux build interpreter's include dirs
# (/opt/python/cp3XX-cp3XX/...); point them at this interpreter's (environment.md §3).
INC=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
NPI=$("$PY" -c 'import numpy; print(numpy.get_include())')
# (grep finds nothing once patched; `|| true` keeps pipefail from ending the script there.)
{ grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$VENV"/share/*/cmake 2>/dev/null || true; } \
  | xargs -r sed -i -E \
  -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$INC#g" \
  -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$NPI#g"

export PATH=$VENV/bin:$PATH CMAKE_PREFIX_PATH=$VENV AMENT_PREFIX_PATH=$VENV
mkdir -p "$BUILD"
LOG=$BUILD/build_msgs.log
: > "$LOG"
# Run a build step with its output in $LOG; on failure show why, not just an exit code.
step() {
  if ! "$@" >>"$LOG" 2>&1; then
    echo "build_msgs: '$*' failed; last lines of $LOG:" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
}
step cmake -S "$ROOT" -B "$BUILD" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$PY" \
  -DAR1_INSTALL_PYTHON_SOURCES=OFF -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release
step cmake --build "$BUILD" -j"$(nproc)"
step cmake --install "$BUILD"

# rosidl installs the generated modules as a package `ar1_ros` with an empty __init__.py and an
# egg-info. Both would shadow the editable checkout (a regular package found first on sys.path
# wins, and two metadata records would claim the ar1_ros distribution). Without the empty
# __init__.py the installed folder is a namespace portion: `import ar1_ros` finds the checkout,
# whose __init__.py extends __path__ to this folder, so ar1_ros.msg imports from here.
if [ -f "$SITE/ar1_ros/__init__.py" ] && [ ! -s "$SITE/ar1_ros/__init__.py" ]; then
  rm -f "$SITE/ar1_ros/__init__.py"
fi
rm -rf "$SITE"/ar1_ros-*.egg-info

"$PY" - <<'PY'
from ar1_ros.msg import Reasoning, StageLatency, Trajectory, TrajectoryPoint  # noqa: F401
import ar1_ros.model  # noqa: F401  (the checkout, not the installed messages folder)
PY
echo "$WANT" > "$STAMP"
echo "build_msgs: installed ar1_ros messages into $VENV"
