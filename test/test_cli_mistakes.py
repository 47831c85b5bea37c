"""CLI answers to common mistakes: `play --topics` that match nothing exits non-zero and says
what the bag has; `play` waits for subscribers by default (shown in --help); `retarget --out`
creates at most the last folder of the path."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _cmd import module_command

ROOT = Path(__file__).resolve().parents[1]


def _cli():
    exe = Path(sys.executable).parent / "robot-capture"
    return [str(exe)] if exe.exists() else module_command("robot_capture.cli")


def _run(*args, cwd, timeout=120):
    return subprocess.run([*_cli(), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def _bag(path: Path) -> Path:
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import JointState

    from robot_capture.bag import BagWriter

    w = BagWriter(path)
    w.add_topic("/joint_states", "sensor_msgs/msg/JointState", [])
    for i in range(5):
        w.write("/joint_states", bytes(serialize_message(JointState(name=["j"], position=[0.1 * i]))),
                1_000_000_000 + i * 10_000_000)
    w.close()
    return path


@pytest.mark.ros
@pytest.mark.timeout(120)
def test_play_topics_that_match_nothing_is_an_error(tmp_path):
    bag = _bag(tmp_path / "bag")
    res = _run("play", str(bag), "--topics", "/joint_state", "--wait-for-subscribers", "0", cwd=tmp_path)
    assert res.returncode != 0, res.stderr
    err = res.stderr.strip().splitlines()[-1]
    assert "/joint_state" in err and "did you mean /joint_states" in err and "Traceback" not in res.stderr, res.stderr


def test_play_waits_for_subscribers_by_default_and_help_says_so():
    from robot_capture.cli import build_parser

    args = build_parser().parse_args(["play", "somebag"])
    assert args.wait_for_subscribers == 1 and args.wait_timeout == 10.0
    res = subprocess.run([*_cli(), "play", "--help"], capture_output=True, text=True, timeout=60)
    assert "(default 1)" in res.stdout and "(default 10)" in res.stdout


@pytest.mark.timeout(120)
def test_retarget_out_creates_at_most_the_last_folder(tmp_path):
    deep = tmp_path / "nonexistent" / "dir" / "x.npz"
    res = _run("retarget", "cmu_02_05_punch_strike.bvh", "--robot", "g1", "--out", str(deep), "--quiet",
               cwd=tmp_path)
    assert res.returncode == 2 and "does not exist" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "nonexistent").exists()
    one = tmp_path / "newdir" / "x.npz"  # the last folder is created
    res = _run("retarget", "cmu_02_05_punch_strike.bvh", "--robot", "g1", "--out", str(one), "--quiet",
               cwd=tmp_path)
    assert res.returncode == 0 and one.is_file(), res.stderr
