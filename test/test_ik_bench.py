"""Smoke test of benchmarks/ik_bench.py: it runs on a short workload and prints its table
(the speed targets themselves are read from the script's output, not asserted here)."""
import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ik_bench.py"


def load():
    if str(SCRIPT.parent) not in sys.path:  # benchmarks/_installed.py (not the package source tree)
        sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("ik_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ik_bench_runs_and_prints_table(capsys):
    bench = load()
    rc = bench.main(["--duration", "0.5", "--seeds", "1", "--baseline-seeds", "1", "--baselines", "numpy",
                     "--speeds", "1", "3"])
    out = capsys.readouterr().out
    assert rc == 0
    rows = [ln for ln in out.splitlines() if ln.startswith(("C _ik", "NumPy"))]
    assert len(rows) == 6, out
    for ln in rows:
        cols = ln.split()
        success = float(cols[7] if ln.startswith("C _ik") else cols[6])
        assert success == 100.0, ln  # reachable smooth targets: every frame tracked
        assert " ok " in ln  # limits held


def test_default_lock_keeps_only_arm_joints():
    bench = load()
    from robot_capture.kinematics.model import RobotModel
    from robot_capture.paths import data_dir

    m = RobotModel.from_urdf(data_dir() / bench.G1)
    lock = bench.default_lock(m, ["left_wrist_yaw_link", "right_wrist_yaw_link"])
    kept = [n for n in m.joint_names if n not in lock]
    assert len(kept) == 14 and all(("shoulder" in n or "elbow" in n or "wrist" in n) for n in kept)
    assert "waist_yaw_joint" in lock and "left_knee_joint" in lock
