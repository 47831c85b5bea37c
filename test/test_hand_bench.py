"""benchmarks/hand_bench.py (issue 20): the last line is one JSON object with exactly the issue's keys;
dex-retargeting missing gives null columns and says why."""
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "hand_bench.py"
KEYS = {"mode", "median_us", "p99_us", "fingertip_err_mm_p95", "pinch_gap_mm_max", "limit_violations",
        "dex_retargeting_median_us", "dex_retargeting_fingertip_err_mm_p95"}


def test_hand_bench_last_line_is_the_json_summary(tmp_path):
    p = subprocess.run([sys.executable, str(BENCH), "--hands", "g1_dex3_left", "inspire_left", "--passes", "1",
                        "--dex-python", str(tmp_path / "no-venv" / "python")],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    last = json.loads(p.stdout.strip().splitlines()[-1])
    assert set(last) == {"hands"} and set(last["hands"]) == {"g1_dex3_left", "inspire_left"}
    for row in last["hands"].values():
        assert set(row) == KEYS
        assert row["limit_violations"] == 0 and row["mode"] == "dexpilot"
        assert row["dex_retargeting_median_us"] is None
    assert "inspire_left: dex-retargeting not run:" in p.stdout and "not found" in p.stdout
