"""robot_capture.floor.graph: config -> node specs, overrides, params files."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from robot_capture.floor import graph
from _cmd import module_command


def test_shipped_config_builds_capture_graph():
    specs = graph.build(None, sim=False)
    roles = [s.role for s in specs]
    assert roles[0] == "recorder"  # subscribed before data flows
    assert set(roles) == {"recorder", "retarget", "camera"}
    assert all(s.package == "robot_capture" for s in specs)
    # every executable is one setup.py installs under lib/robot_capture
    import importlib.util

    setup_py = open(os.path.join(os.path.dirname(__file__), "..", "setup.py")).read()
    for s in specs:
        assert f'"{s.executable}": "{s.module}"' in setup_py
        assert importlib.util.find_spec("robot_capture.nodes") is not None
    cam = next(s for s in specs if s.role == "camera")
    assert cam.parameters["source"] != "synthetic"  # a real station uses a real camera


def test_sim_graph_adds_simulators_and_synthetic_cameras(data_dir):
    specs = graph.build(None, sim=True)
    by_role = {s.role: s for s in specs}
    assert {"mocap_replay", "robot_sim"} <= set(by_role)
    clip = by_role["mocap_replay"].parameters["clip"]
    assert os.path.isfile(clip) and clip.startswith(str(data_dir))
    assert by_role["camera"].parameters["source"] == "synthetic"
    assert specs[-1].role == "mocap_replay"  # the data source starts last
    order = graph.shutdown_order(specs)
    assert order[-1].role == "recorder" and order[0].role == "mocap_replay"


def test_recorder_records_every_expected_topic():
    specs = graph.build(None, sim=True)
    rec = next(s for s in specs if s.role == "recorder")
    expected = graph.expected_topics(specs)
    assert set(expected) <= set(rec.parameters["topics"])
    assert expected["/joint_states"] == 500.0
    assert expected["/camera/head/image_raw"] == 30.0
    # the shipped sim clip is 30 Hz (Frame Time 0.033334 in its header)
    assert abs(expected["/exo/joint_states"] - 30.0) < 0.01


def test_overrides_reach_node_parameters(tmp_path):
    specs = graph.build(None, sim=True, overrides={
        "robot": "h1", "task": "pick cup", "operator": "alice", "output_dir": str(tmp_path),
        "topics": "/joint_states, /my/extra", "cameras": "none",
        "clip": "cmu_02_05_punch_strike.bvh", "loop": "false", "scene": ""})
    by_role = {s.role: s for s in specs}
    rec = by_role["recorder"].parameters
    assert rec["task"] == "pick cup" and rec["operator"] == "alice"
    assert rec["scene"] == "floor"  # '' means: keep the config's value
    assert rec["output_dir"] == str(tmp_path)
    # the contract's streams are always recorded; `topics` adds recorded, non-gated ones
    assert rec["topics"][-1] == "/my/extra" and rec["topics"].count("/joint_states") == 1
    assert "/my/extra" not in graph.expected_topics(specs)
    assert "camera" not in by_role
    assert by_role["retarget"].parameters["robot"] == "h1"
    assert by_role["robot_sim"].parameters["robot"] == "h1"
    assert by_role["mocap_replay"].parameters["loop"] is False
    assert by_role["mocap_replay"].parameters["clip"].endswith("cmu_02_05_punch_strike.bvh")
    assert abs(graph.expected_topics(specs)["/exo/joint_states"] - 1 / 0.033334) < 1e-6


def test_compressed_camera_topics(tmp_path):
    cfg = graph.load_config(None)
    cfg["cameras"] = {"wrist": {"source": "1", "compressed": True}, "head": {"source": "0"}}
    specs = graph.build(cfg)
    topics = next(s for s in specs if s.role == "recorder").parameters["topics"]
    assert "/camera/wrist/image_raw/compressed" in topics and "/camera/wrist/image_raw" not in topics
    assert "/camera/head/image_raw" in topics and "/camera/wrist/camera_info" in topics
    assert len([s for s in specs if s.role == "camera"]) == 2


def test_bad_configs_raise_clear_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("robott: g1\n")
    with pytest.raises(ValueError, match="did you mean 'robot'"):
        graph.load_config(bad)
    with pytest.raises(FileNotFoundError):
        graph.load_config(tmp_path / "missing.yaml")
    with pytest.raises(KeyError, match="did you mean 'operator'"):
        graph.build(None, overrides={"operater": "x"})
    with pytest.raises(KeyError, match="not in config"):
        graph.build(None, overrides={"cameras": "nosuchcam"})
    with pytest.raises(FileNotFoundError, match="shipped"):
        graph.build(None, sim=True, overrides={"clip": "no_such_clip.bvh"})
    with pytest.raises(ValueError, match="boolean"):
        graph.build(None, sim=True, overrides={"loop": "maybe"})
    cfg = graph.load_config(None)
    cfg["parameters"] = {"recorderr": {"x": 1}}
    with pytest.raises(KeyError, match="unknown nodes"):
        graph.build(cfg)
    cfg["parameters"] = {"recorder": {"topics": [1, "a"]}}
    with pytest.raises(ValueError, match="homogeneous"):
        graph.build(cfg)


def test_extra_parameters_merge_and_empty_lists_dropped():
    cfg = graph.load_config(None)
    cfg["parameters"] = {"recorder": {"flush_interval_s": 0.5, "exclude": [], "attach_configs": ["a.yaml"]}}
    rec = next(s for s in graph.build(cfg) if s.role == "recorder")
    assert rec.parameters["flush_interval_s"] == 0.5
    assert "exclude" not in rec.parameters  # ROS params files cannot type an empty list
    assert rec.parameters["attach_configs"] == ["a.yaml"]  # the extra parameters win
    assert graph._clean_params({"weights": [1, 2.5]}, "node x")["weights"] == [1.0, 2.5]


@pytest.mark.ros
def test_params_file_is_read_by_rclpy_unchanged(tmp_path):
    """The generated params file, given to a real rclpy node, yields exactly the spec's parameters."""
    pytest.importorskip("rclpy")
    specs = graph.build(None, sim=True, overrides={"task": "it's: a \"task\"", "operator": "ünï"})
    code = (
        "import json, sys, rclpy\n"
        "from rclpy.node import Node\n"
        "rclpy.init(args=sys.argv)\n"
        "n = Node('placeholder', automatically_declare_parameters_from_overrides=True)\n"
        "skip = {'use_sim_time', 'start_type_description_service'}\n"
        "print(json.dumps({'name': n.get_name(), 'params': {k: v.value for k, v in\n"
        "      n.get_parameters_by_prefix('').items() if k not in skip}}))\n"
        "n.destroy_node(); rclpy.shutdown()\n"
    )
    for spec in specs:
        pfile = graph.write_params_file(spec, tmp_path)
        assert yaml.safe_load(pfile.read_text())["/**"]["ros__parameters"] == spec.parameters
        res = subprocess.run([sys.executable, "-c", code, *graph.ros_arguments(spec, pfile)],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        got = json.loads(res.stdout.strip().splitlines()[-1])
        assert got["name"] == spec.name
        want = {k: (list(v) if isinstance(v, list) else v) for k, v in spec.parameters.items()}
        assert {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in got["params"].items()} == want


def test_clip_rate_rejects_non_bvh(tmp_path):
    f = tmp_path / "x.bvh"
    f.write_text("HIERARCHY\nMOTION\nFrames: 3\n")
    with pytest.raises(ValueError, match="Frame Time"):
        graph.clip_rate_hz(f)


def test_up_dry_run_prints_the_graph(tmp_path):
    res = subprocess.run([*module_command("robot_capture.cli"), "up", "--sim", "--dry-run", "--robot", "h1",
                          "--task", "stack blocks", "--output-dir", str(tmp_path), "--cameras", "none"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    for name in ("recorder (robot_capture/recorder_node)", "retarget (robot_capture/retarget_node)",
                 "robot_sim (robot_capture/robot_sim_node)", "mocap_replay (robot_capture/mocap_replay_node)"):
        assert name in res.stdout
    assert "camera_" not in res.stdout
    assert "task: stack blocks" in res.stdout and f"output_dir: {tmp_path}" in res.stdout
    bad = subprocess.run([*module_command("robot_capture.cli"), "up", "--clip", "nope.bvh", "--sim"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "nope.bvh" in bad.stderr


def test_nice_from_config_and_override():
    assert all(s.nice == 0 for s in graph.build(None, sim=True))
    specs = graph.build(None, sim=True, overrides={"nice": "-5"})
    assert {s.nice for s in specs} == {-5}
    with pytest.raises(ValueError, match="integer"):
        graph.build(None, overrides={"nice": "high"})
    with pytest.raises(ValueError, match="-20..19"):
        graph.build(None, overrides={"nice": "-40"})


def test_dds_transport_from_config_and_override():
    specs = graph.build(None, sim=True, overrides={"dds_transport": "large_data"})
    assert [s.env for s in specs] == [{"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}] * len(specs)
    assert all(s.env == {} for s in graph.build(None, sim=True, overrides={"dds_transport": "inherit"}))
    with pytest.raises(ValueError, match="dds_transport must be"):
        graph.build(None, overrides={"dds_transport": "carrier_pigeon"})


def test_every_floor_node_gets_the_shipped_dds_profile_by_default():
    import xml.etree.ElementTree as ET

    specs = graph.build(None, sim=True)
    envs = {tuple(sorted(s.env.items())) for s in specs}
    assert len(envs) == 1
    env = dict(envs.pop())
    assert env and set(env) <= {"FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"}
    (path,) = set(env.values())
    assert path == str(graph.dds_profile_path()) and os.path.isfile(path)
    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(path).getroot()
    (part,) = [p for p in root.iterfind(".//d:participant", ns) if p.get("is_default_profile") == "true"]
    used = [t.text for t in part.iterfind(".//d:userTransports/d:transport_id", ns)]
    kinds = {d.findtext("d:transport_id", namespaces=ns): d for d in root.iterfind(".//d:transport_descriptor", ns)}
    assert sorted(kinds[t].findtext("d:type", namespaces=ns) for t in used) == ["SHM", "UDPv4"]  # as the default
    shm = next(kinds[t] for t in used if kinds[t].findtext("d:type", namespaces=ns) == "SHM")
    assert int(shm.findtext("d:segment_size", namespaces=ns)) >= 8 << 20  # >= LARGE_DATA's 8500 KiB
