"""`robot-capture info` and `robot-capture recover` on real bags."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from bag_msgs import g1_joint_names, joint_state, pose, ser
from robot_capture.bag import BagWriter, WriterOptions
from robot_capture.cli import main
from _cmd import module_command

T0 = 1_763_700_000_000_000_000


@pytest.fixture(scope="module")
def gap_bag(tmp_path_factory, data_dir):
    """100 Hz joint states for 3 s with a 0.4 s hole at t = 1.0 s, 50 Hz poses without holes."""
    d = tmp_path_factory.mktemp("cli") / "20260101-000000_pick_0001"
    names = g1_joint_names(data_dir)
    w = BagWriter(d, WriterOptions(background_flush=False),
                  custom_data={"task": "pick", "operator": "ana", "success": "true"})
    w.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    w.add_topic("/vr/head", "geometry_msgs/msg/PoseStamped")
    w.add_metadata("episode", {"task": "pick", "operator": "ana", "scene": "table", "success": "true"})
    w.attach("g1.urdf", (data_dir / "robots" / "unitree_g1" / "g1_29dof_rev_1_0.urdf").read_bytes())
    ev = [(T0 + i * 10_000_000, "/joint_states", i) for i in range(300) if not 100 < i < 140]
    ev += [(T0 + i * 20_000_000 + 1, "/vr/head", i) for i in range(150)]
    for t, topic, i in sorted(ev):
        msg = joint_state(names, i, t) if topic == "/joint_states" else pose(i, t)
        w.write(topic, ser(msg), t)
    w.close()
    return d


def test_info_text_like_ros2_bag_info(gap_bag, capsys):
    assert main(["info", str(gap_bag)]) == 0
    out = capsys.readouterr().out
    for want in ("Files:", "20260101-000000_pick_0001_0.mcap", "Bag size:", "Storage id:         mcap",
                 "Duration:", "Start:", "End:", "Messages:           411", "Chunk compression:  none",
                 "Topic: /joint_states | Type: sensor_msgs/msg/JointState | Count: 261",
                 "Serialization Format: cdr", "Verdict:", "Drops (recorder): none", "g1.urdf"):
        assert want in out, want
    assert "1 gap(s)" in out and "at +1.000s: 400.0 ms" in out
    assert "Missing: 39 | Longest gap: 400.0 ms" in out  # the QA's definition: 39 periods missing at 100 Hz


def test_info_json_gaps_and_rates(gap_bag, capsys):
    assert main(["info", str(gap_bag), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    t = {x["topic"]: x for x in info["topics"]}
    js = t["/joint_states"]
    assert js["count"] == 261 and js["gap_count"] == 1 and js["missing"] == 39 and js["timebase"] == "stamp"
    assert js["longest_gap_s"] == pytest.approx(0.4) and js["longest_gap_at_s"] == pytest.approx(1.0)
    assert js["gaps"] == [{"at_s": pytest.approx(1.0), "length_s": pytest.approx(0.4)}]
    assert t["/vr/head"]["gap_count"] == 0 and t["/vr/head"]["rate_hz"] == pytest.approx(50.0)
    assert isinstance(js["count"], int) and isinstance(js["rate_hz"], float)
    assert info["duration_s"] == pytest.approx(2.99, abs=0.011)
    assert info["records"]["episode"]["scene"] == "table"
    assert info["custom_data"]["success"] == "true"
    # a fixed threshold overrides the per-topic one
    assert main(["info", str(gap_bag), "--json", "--gap-threshold", "0.015"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {x["topic"]: x["gap_count"] for x in info["topics"]} == {"/joint_states": 1, "/vr/head": 149}


def test_info_clear_error_on_non_bag(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope")]) == 2
    assert "not a bag directory" in capsys.readouterr().err
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("hello")
    assert main(["info", str(tmp_path / "plain")]) == 2
    assert "no bags found" in capsys.readouterr().err
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    assert main(["info", str(tmp_path / "x.png")]) == 2
    assert "not a bag (a file" in capsys.readouterr().err


def test_info_on_crashed_bag_points_to_recover_then_recover_cli(tmp_path, gap_bag, capsys):
    import shutil

    d = tmp_path / "crashed"
    shutil.copytree(gap_bag, d)
    f = next(d.glob("*.mcap"))
    os.truncate(f, f.stat().st_size - 2000)  # lose the footer and summary
    assert main(["info", str(d)]) == 1
    assert "robot-capture recover" in capsys.readouterr().err
    assert main(["recover", str(d), "-q"]) == 0
    out = capsys.readouterr().out
    assert "recovered bag" in out and "/joint_states  261" in out and "/vr/head" in out
    assert main(["info", str(d), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["message_count"] == 411 and info["records"]["episode"]["operator"] == "ana"
    assert main(["recover", str(d), "--json", "-q"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["files"][0]["status"] == "intact" and rep["topics"] == {"/joint_states": 261, "/vr/head": 150}


def test_recover_cli_errors(tmp_path, capsys):
    assert main(["recover", str(tmp_path / "missing")]) == 2
    assert "not a bag directory" in capsys.readouterr().err


def test_console_entry_point_runs(gap_bag):
    proc = subprocess.run([*module_command("robot_capture.cli"), "info", str(gap_bag), "--no-gaps"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Messages:           411" in proc.stdout and "Gaps:" not in proc.stdout


def test_live_bag_info_and_recover_refusal(tmp_path, capsys):
    """While a writer holds the bag, `recover` refuses and `info` says it is being recorded."""
    from robot_capture.bag.lock import LOCK_NAME, is_recording

    w = BagWriter(tmp_path / "live", WriterOptions(metadata_interval_s=0.1, flush_interval_s=0.1))
    w.add_topic("/j", "sensor_msgs/msg/JointState")
    w.write("/j", b"\x00\x01\x00\x00" + bytes(64), T0)
    try:
        assert is_recording(tmp_path / "live")
        import time

        deadline = time.monotonic() + 3
        while not (tmp_path / "live" / "metadata.yaml").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert main(["recover", str(tmp_path / "live")]) == 1
        assert "being recorded" in capsys.readouterr().err
        assert main(["info", str(tmp_path / "live")]) == 0
        out = capsys.readouterr().out
        assert "being recorded" in out and "Topic: /j" in out
    finally:
        w.close()
    assert not is_recording(tmp_path / "live") and not (tmp_path / "live" / LOCK_NAME).exists()
    assert main(["info", str(tmp_path / "live"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["message_count"] == 1
