"""QA core without DDS: config, bad input, the CLI, determinism (the verdict at stop: test_verdict_at_stop.py).

Bags are written with the project's BagWriter (and, for the foreign bag, with rosbags'
own rosbag2 writer in MCAP storage, as `ros2 bag record` lays it out).
"""
from __future__ import annotations

import json
import os
import shutil
import struct

import numpy as np
import pytest

from robot_capture.bag.writer import BagWriter, WriterOptions
from robot_capture.cli import main
from robot_capture.config_schema import ConfigError
from robot_capture.episodes import load_episode, read_verdict
from robot_capture.qa.config import load_config
from robot_capture.qa.run import qa_episode, qa_paths

T0 = 1_800_000_000_000_000_000


def _stamped(t_ns: int, payload: bytes = b"") -> bytes:
    """CDR bytes whose first field is a Header stamped ``t_ns`` (empty frame_id)."""
    return b"\x00\x01\x00\x00" + struct.pack("<iII", t_ns // 10**9, t_ns % 10**9, 1) + b"\x00\x00\x00\x00" + payload


def _bag(path, rate=100.0, secs=3.0, holes=(), labels=True, expected=True):
    custom = {"episode.task": "pick", "episode.operator": "ana", "episode.success": "true" if labels else "unknown",
              "episode.start_time_ns": str(T0), "episode.stop_time_ns": str(T0 + int(secs * 1e9)),
              "episode.duration_s": f"{secs:.3f}"}
    if expected:
        custom["expected_hz//vr/head"] = f"{rate:g}"
    w = BagWriter(path, WriterOptions(compression="none", background_flush=False), custom_data=custom)
    w.add_topic("/vr/head", "geometry_msgs/msg/PoseStamped")
    for i in range(int(rate * secs) + 1):
        if any(a <= i < b for a, b in holes):
            continue
        t = T0 + int(i * 1e9 / rate)
        w.write("/vr/head", _stamped(t, bytes(56)), t + 1_000_000)
    w.close()
    return path


def test_config_defaults_are_the_published_thresholds_and_typos_are_named(tmp_path):
    c = load_config()
    assert (c.rate.warn_below, c.rate.fail_below, c.gaps.drop_periods, c.gaps.fail_drops) == (0.95, 0.84, 1.5, 6)
    assert (c.gaps.fast_max_gap_s, c.gaps.max_gap_s, c.duration.fail_below_s, c.command.jump_sigma) == (0.1, 0.5, 1.0, 8.0)
    rig = tmp_path / "rig.yaml"
    rig.write_text("rate: {warn_below: 0.9}\nexpected_hz: {/joint_states: 250}\n")
    c2 = load_config(rig=rig)
    assert c2.rate.warn_below == 0.9 and c2.rate.fail_below == 0.84 and c2.expected_hz == {"/joint_states": 250}
    assert c2.sha256 != c.sha256
    rig.write_text("rate: {warn_belw: 0.9}\n")
    with pytest.raises(ConfigError, match=r"rate.warn_belw: unknown key \(did you mean 'warn_below'\?\)"):
        load_config(rig=rig)
    rig.write_text("gaps: {max_gap_s: fast}\n")
    with pytest.raises(ConfigError, match="gaps.max_gap_s"):
        load_config(rig=rig)


def test_clean_synthetic_bag_passes_and_qa_twice_is_identical(tmp_path):
    bag = _bag(tmp_path / "ok")
    v = qa_episode(bag)
    assert v.verdict == "pass", v.summary()
    assert v.metrics["expected_source"] == "bag" and v.metrics["rates"]["/vr/head"]["rate_hz"] == pytest.approx(100.0)
    first = (bag / "qa.json").read_bytes()
    qa_episode(bag)
    assert (bag / "qa.json").read_bytes() == first


def test_gaps_thresholds(tmp_path):
    # 3 missing at 100 Hz: warn (1-5 drops); 8 missing: fail (> 5 drops)
    v = qa_episode(_bag(tmp_path / "w", holes=[(100, 103)]), write=False)
    assert [(f.check, f.severity, f.figures["missing"]) for f in v.findings] == [("gaps", "warn", 3)]
    v = qa_episode(_bag(tmp_path / "f", holes=[(100, 108)]), write=False)
    assert [(f.check, f.severity) for f in v.findings] == [("gaps", "fail")]
    assert "/vr/head: 8 messages missing (2.7 %), longest gap 90 ms" in v.findings[0].message


def test_bad_input_truncated_bag_gets_a_fail_verdict_and_no_traceback(tmp_path, capsys):
    bag = _bag(tmp_path / "t")
    f = next(bag.glob("*.mcap"))
    os.truncate(f, f.stat().st_size // 2)
    v = qa_episode(bag)
    assert v.verdict == "fail" and v.findings[0].check == "bag" and "robot-capture recover" in v.findings[0].message
    assert main(["qa", str(bag)]) == 1
    out = capsys.readouterr()
    assert "FAIL t" in out.out and "recover" in out.out and "Traceback" not in out.err


def test_bad_input_no_metadata_yaml_is_judged_from_the_files(tmp_path):
    bag = _bag(tmp_path / "nometa")
    (bag / "metadata.yaml").unlink()
    v = qa_episode(bag)
    # no labels without metadata.yaml (and no MCAP episode record): cannot be delivered, said so
    assert [f.check for f in v.findings] == ["labels"] and v.metrics["expected_source"] == "none"
    assert read_verdict(bag).verdict == "fail"


def test_bad_input_folder_without_bags_and_missing_path(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    assert main(["qa", str(tmp_path / "empty")]) == 2
    assert "no bags found" in capsys.readouterr().err
    assert main(["qa", str(tmp_path / "nope")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no bags found"):
        qa_paths([tmp_path / "empty"])


def test_bad_input_foreign_ros2_bag_record_layout(tmp_path, capsys):
    """A bag from another recorder: rosbags' rosbag2 writer, MCAP storage, other topics, no labels."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    Imu = ts.types["sensor_msgs/msg/Imu"]
    Header = ts.types["std_msgs/msg/Header"]
    Time = ts.types["builtin_interfaces/msg/Time"]
    Quat = ts.types["geometry_msgs/msg/Quaternion"]
    Vec = ts.types["geometry_msgs/msg/Vector3"]
    path = tmp_path / "rosbag2_2026_01_01-00_00_00"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection("/imu/data", Imu.__msgtype__, typestore=ts)
        for i in range(400):
            t = T0 + i * 5_000_000
            msg = Imu(header=Header(stamp=Time(sec=t // 10**9, nanosec=t % 10**9), frame_id="imu"),
                      orientation=Quat(x=0.0, y=0.0, z=0.0, w=1.0), orientation_covariance=np.zeros(9),
                      angular_velocity=Vec(x=0.0, y=0.0, z=0.0), angular_velocity_covariance=np.zeros(9),
                      linear_acceleration=Vec(x=0.0, y=0.0, z=9.8), linear_acceleration_covariance=np.zeros(9))
            w.write(conn, t + 2_000_000, ts.serialize_cdr(msg, Imu.__msgtype__))
    v = qa_episode(path)
    assert v.metrics["expected_source"] == "none" and v.metrics["topics"] == {"/imu/data": 400}
    assert [f.check for f in v.findings] == ["labels"], v.summary()
    assert "missing task, operator, success labels" in v.reasons[0]
    assert main(["qa", str(path), "--json"]) == 1
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["verdict"] == "fail" and line["path"].endswith(path.name)


def test_cli_qa_text_exit_codes_and_info_table(tmp_path, capsys):
    day = tmp_path / "day"
    _bag(day / "ep1")
    _bag(day / "ep2", holes=[(100, 108)])
    _bag(day / "ep3", labels=False)
    assert main(["qa", str(day)]) == 1
    out = capsys.readouterr().out
    assert "PASS ep1" in out and "FAIL ep2" in out and "missing success label" in out
    assert "3 episodes: 1 pass, 0 warn, 2 fail" in out
    assert main(["qa", str(day / "ep1")]) == 0
    capsys.readouterr()
    assert main(["info", str(day)]) == 0
    table = capsys.readouterr().out
    lines = table.splitlines()
    assert lines[0].split() == ["episode", "task", "operator", "success", "duration", "verdict"]
    row = next(x for x in lines if x.startswith("ep3"))
    assert "pick" in row and "ana" in row and "unknown" in row and "fail (missing success label" in row
    assert main(["info", str(day / "ep1"), str(day / "ep2"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["verdict"], r["success"], r["duration_s"]) for r in rows] == [
        ("ep1", "pass", True, 3.0), ("ep2", "fail", True, 3.0)]
    shutil.rmtree(day / "ep2")
    assert main(["info", str(day / "ep1")]) == 0
    single = capsys.readouterr().out
    assert single.count("task: pick") == 1 and "Verdict:".ljust(20) + "pass (qa)" in single


def test_cli_report_on_synthetic_bags_and_bad_input(tmp_path, capsys):
    day = tmp_path / "day"
    _bag(day / "ep1")
    _bag(day / "ep2", labels=False)
    out = tmp_path / "r.html"
    assert main(["report", str(day), "--out", str(out)]) == 0
    assert "2 episodes" in capsys.readouterr().out
    text = out.read_text()
    assert text.count('<div class="ep" id="ep') == 2 and "missing success label" in text
    assert 'src="http' not in text and "data:image/png;base64," in text  # self-contained
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "no bags found" in capsys.readouterr().err
    assert main(["report", str(day), "--out", str(tmp_path / "nope" / "r.html")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_idle_head_counts_a_late_first_sample_once(tmp_path):
    # robot joint states begin 0.5 s after the start label, still until 2.0 s, then move:
    # the idle head is 2.0 s from the start (it was 2.5 s: the 0.5 s counted twice)
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import JointState

    secs = 4.0
    custom = {"episode.start_time_ns": str(T0), "episode.stop_time_ns": str(T0 + int(secs * 1e9)),
              "episode.duration_s": f"{secs:.3f}", "episode.task": "pick", "episode.success": "true"}
    w = BagWriter(tmp_path / "late", WriterOptions(compression="none", background_flush=False), custom_data=custom)
    w.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    for i in range(50, 401):  # 100 Hz from 0.5 s to 4.0 s
        t = T0 + i * 10_000_000
        m = JointState(name=["a", "b"], position=[0.0, 0.1 * max(0.0, i / 100 - 2.0)])
        m.header.stamp.sec, m.header.stamp.nanosec = t // 10**9, t % 10**9
        w.write("/joint_states", bytes(serialize_message(m)), t)
    w.close()
    v = qa_episode(tmp_path / "late", write=False)
    assert v.trim["head_s"] == pytest.approx(2.0), v.trim
    assert [f.figures for f in v.findings if f.check == "idle"] == [{"head_s": 2.0}]
