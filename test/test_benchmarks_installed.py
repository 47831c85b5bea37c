"""Benchmarks measure the installed package: run from a checkout (as the README says) they
print C figures; with a source tree without built extensions first on sys.path they refuse
with a one-line error instead of reporting NumPy times as "C _ik" rows."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
IK_QUICK = ["--duration", "0.3", "--seeds", "1", "--baseline-seeds", "1", "--baselines", "numpy", "--speeds", "1"]


def run(script, args, env_extra=None, cwd=ROOT):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, str(BENCH / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=240)


@pytest.mark.timeout(300)
def test_ik_bench_from_checkout_runs_the_c_fast_path():
    r = run("ik_bench.py", IK_QUICK)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith("C _ik")]
    assert any("solve_into" in ln for ln in rows), r.stdout  # the fast path ran, not a trailing note
    assert "failed" not in r.stdout
    c_med = float(next(ln for ln in rows if "solve_into" in ln).split()[4])
    np_med = float(next(ln for ln in r.stdout.splitlines() if ln.startswith("NumPy")).split()[3])
    assert np_med > 10 * c_med, r.stdout  # C really is C (the NumPy twin is ~100x slower)


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory):
    """A copy of the package source without any built extension (a fresh clone)."""
    dst = tmp_path_factory.mktemp("clone") / "robot_capture"
    shutil.copytree(ROOT / "robot_capture", dst, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    return dst.parent


@pytest.mark.timeout(120)
@pytest.mark.parametrize("script,args", [("ik_bench.py", IK_QUICK),
                                         ("retarget_bench.py", ["--quick", "--skip-latency"]),
                                         ("sim_bench.py", ["--duration", "0.5"])])
def test_bench_refuses_a_source_tree_without_extensions(source_tree, script, args):
    r = run(script, args, {"PYTHONPATH": str(source_tree)})
    assert r.returncode != 0
    assert "pip install ." in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "C _ik" not in r.stdout
