"""`robot-capture demo` (the README's first command), shortened: 2 episodes of 2 s."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from _cmd import module_command

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.xdist_group("sim_floor")]  # one floor at a time


def _cli() -> list[str]:
    exe = Path(sys.executable).parent / "robot-capture"
    found = str(exe) if exe.exists() else shutil.which("robot-capture")
    return [found] if found else module_command("robot_capture.cli")


def test_demo_records_labelled_episodes_and_prints_info_and_qa(tmp_path):
    out_dir = tmp_path / "demo"
    t0 = time.monotonic()
    res = subprocess.run([*_cli(), "demo", "--output-dir", str(out_dir), "--episodes", "2",
                          "--episode-seconds", "2"], capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t0
    text = res.stdout + res.stderr
    qa_lines = [ln for ln in text.splitlines() if ln.startswith("QA ")]
    # exit 1 exactly when an episode fails QA (a loaded machine can lose data: then the QA says so)
    assert res.returncode == (1 if any(ln.startswith("QA FAIL") for ln in qa_lines) else 0), text[-5000:]
    assert took < 90, f"demo took {took:.0f} s"
    bags = sorted(p.parent for p in out_dir.glob("*/metadata.yaml"))
    assert len(bags) == 2, text[-3000:]
    labels = []
    for bag in bags:
        assert f"$ robot-capture info {bag}" in text
        custom = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]["custom_data"]
        labels.append((custom["episode.task"], custom["episode.operator"], custom["episode.success"]))
    assert labels == [("scoop_lift", "demo_operator", "true"), ("scoop_lift", "demo_operator", "false")]
    assert len(qa_lines) == 2
    from robot_capture.episodes import read_verdict

    for ln, bag in zip(qa_lines, bags):
        v = read_verdict(bag)  # the printed verdict is the stored one, with its reasons
        assert v is not None and v.source == "qa" and ln.startswith(f"QA {v.verdict.upper()} {bag.name}")
        for reason in v.reasons:
            assert f"    - {reason}" in text
        assert v.metrics["retarget"]["wrist_error_p95_m"] > 0  # the retarget diagnostics were recorded
        assert v.metrics["expected_source"] == "bag"  # the verdict at stop: the graph's rates stored in the bag
    assert (out_dir / "floor.log").read_text().count("[recorder]") > 0
