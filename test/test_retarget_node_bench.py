"""benchmarks/retarget_bench.py runs and prints its tables (figures are not asserted: speed
targets are checked by reading the benchmark's output, not by timed tests)."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "retarget_bench.py"


@pytest.mark.ros
def test_retarget_bench_smoke():
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--clips", "cmu_02_01_walk", "--repeat", "1", "--rates", "200",
         "--duration", "1"],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "| cmu_02_01_walk.bvh | 171 |" in out and "MET" in out
    assert "| retarget_node | 200 Hz |" in out and "| echo (baseline) | 200 Hz |" in out
    row = next(line for line in out.splitlines() if line.startswith("| retarget_node | 200 Hz"))
    sent = int(row.split("|")[3])
    assert sent > 0, row  # input went through the node (how much is the benchmark's figure, not a test's)
