"""benchmarks/bench_bag.py runs and prints its ratios (tiny settings; numbers are not checked)."""
from pathlib import Path
import subprocess
import sys

BENCH = Path(__file__).resolve().parents[1] / 'benchmarks' / 'bench_bag.py'


def test_bench_bag_prints_ratios():
    result = subprocess.run([sys.executable, str(BENCH), '--seconds', '2.5', '--width', '160',
                             '--height', '96', '--repeat', '1', '--decode-threads', '2'],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert 'ratio ours / raw reading:' in result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith('samples')]
    assert len(lines) == 2
    assert all('real-time factor' in line and ' 0.0 samples/s' not in line for line in lines)
