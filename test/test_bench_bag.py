"""benchmarks/bench_bag.py prints its table and ratios (tiny settings; numbers not checked)."""
from pathlib import Path
import re
import subprocess
import sys

BENCH = Path(__file__).resolve().parents[1] / 'benchmarks' / 'bench_bag.py'


def bench(*args):
    return subprocess.run([sys.executable, str(BENCH), *map(str, args)], capture_output=True,
                          text=True, timeout=60)


def test_bench_bag_prints_rates_and_ratios():
    result = bench('--seconds', 2.5, '--width', 160, '--height', 96, '--repeat', 1,
                   '--decode-threads', 2, '--storage', 'sqlite3')
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '(db3): 225 messages' in out
    assert '4 cameras 160x96 JPEG' in out
    assert re.search(r'^raw rosbags read \+ deserialize +\d+ msg/s +\d+ MB/s$', out, re.M)
    assert re.search(r'^ar1_ros BagReader \+ conversions +\d+ msg/s$', out, re.M)
    rates = re.findall(r'^samples .*, (\d) threads +([0-9.]+) samples/s  real-time factor '
                       r'([0-9.]+)$', out, re.M)
    assert [threads for threads, _, _ in rates] == ['0', '2']
    assert all(float(rate) > 0 and float(factor) > 0 for _, rate, factor in rates)
    assert re.search(r'^ratio ours / raw reading: [0-9.]+', out, re.M)
    assert re.search(r'^ratio samples/s / 10 Hz real time: [0-9.]+ \(0 decode threads\), '
                     r'[0-9.]+ \(2 decode threads\)$', out, re.M)


def test_bench_bag_refuses_bad_input(tmp_path):
    result = bench('--bag', tmp_path / 'missing', '--repeat', 1)
    assert result.returncode == 2
    assert 'missing: no such bag' in result.stderr
    assert 'Traceback' not in result.stderr
    result = bench('--seconds', 1)
    assert result.returncode == 2
    assert 'need --seconds >= 2' in result.stderr
