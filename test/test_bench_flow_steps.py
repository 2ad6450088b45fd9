"""benchmarks/bench_flow_steps.py prints errors against the official 10-step plans."""
from pathlib import Path
import re
import subprocess
import sys

BENCH = Path(__file__).resolve().parents[1] / 'benchmarks' / 'bench_flow_steps.py'


def test_bench_flow_steps_prints_errors_and_ratios():
    result = subprocess.run([sys.executable, str(BENCH), '--steps', '5', '10', '--runs', '1'],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = re.findall(r'^(case_00\d) steps +(\d+): mean error ([0-9.]+) m, worst ([0-9.]+) m',
                       result.stdout, re.M)
    assert [(c, s) for c, s, _, _ in lines] == [('case_000', '5'), ('case_000', '10'),
                                               ('case_002', '5'), ('case_002', '10')]
    for _, steps, _mean, worst in lines:
        # 10 steps is the official plan (parity within 1e-4 m); 5 steps is another plan.
        assert (float(worst) < 1e-3) == (steps == '10')
    assert re.search(r'^ratio flow time 5 / 10 steps: [0-9.]+$', result.stdout, re.M)


def test_bench_flow_steps_refuses_bad_steps():
    result = subprocess.run([sys.executable, str(BENCH), '--steps', '0'], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert 'must be >= 1' in result.stderr
