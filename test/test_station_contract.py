"""The station contract without DDS (issue 18): floor.yaml `streams:`, the gate's root causes, the
station check's judging, `config init` (ROS-free; the DDS floor tests are test_station_floor.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from robot_capture.config_schema import ConfigError
from robot_capture.console.manager import EpisodeManager
from robot_capture.console.commands import CommandError
from robot_capture.floor import graph
from robot_capture.floor.contract import streams_from_params
from robot_capture.floor.station_check import Sample, judge
from robot_capture.record.recorder import Recorder

S = 1_000_000_000
JS = "sensor_msgs/msg/JointState"


def _exe() -> str:
    return str(Path(sys.executable).parent / "robot-capture")


def _recorder_streams(specs):
    rec = next(s for s in specs if s.role == "recorder")
    return {s.topic: s for s in streams_from_params(rec.parameters["expected_streams"],
                                                    rec.parameters.get("optional_streams") or [])}


@pytest.mark.parametrize("sim", [False, True])
def test_robot_joint_state_is_required_in_every_mode(sim):
    streams = _recorder_streams(graph.build(None, sim=sim))
    js = streams["/joint_states"]
    assert js.required and js.name == "robot joint state" and js.role == "robot" and js.source == "robot driver"
    assert streams["/exo/joint_states"].required and streams["/exo/joint_states"].name == "exoskeleton"
    assert not streams["/vr/head"].required  # retarget.source exo: the headset is recorded, not gated
    cmd = streams["/retarget/joint_command"]
    assert cmd.role == "derived" and "/exo/joint_states" in cmd.derived_from
    cam = streams["/camera/head/image_raw"]  # from `cameras:`, named for a person
    assert cam.name == "head camera" and cam.role == "camera" and cam.required
    assert "/joint_states" in graph.expected_topics(graph.build(None, sim=sim))


def test_old_config_without_streams_loads_and_record_topics_are_not_gated(tmp_path):
    old = yaml.safe_load(graph.default_config_path().read_text())
    del old["streams"], old["check"]
    old["record"]["topics"] = ["/exo/joint_states", "/joint_states", "/my/force_sensor"]
    p = tmp_path / "old_floor.yaml"
    p.write_text(yaml.safe_dump(old))
    cfg = graph.load_config(p)
    assert cfg["_streams_from"]  # the shipped contract stands in
    specs = graph.build(cfg, overrides={"cameras": "none"})
    rec = next(s for s in specs if s.role == "recorder").parameters
    assert "/my/force_sensor" in rec["topics"]
    expected = graph.expected_topics(specs)
    assert "/my/force_sensor" not in expected and "/joint_states" in expected


def test_a_contract_without_the_robot_joint_state_is_refused(tmp_path):
    cfg = yaml.safe_load(graph.default_config_path().read_text())
    cfg["streams"] = [s for s in cfg["streams"] if s["topic"] != "/joint_states"]
    p = tmp_path / "floor.yaml"
    p.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as e:
        graph.build(graph.load_config(p))
    assert "floor.yaml: streams: no required robot stream" in str(e.value)


@pytest.mark.parametrize("stream, message", [
    ({"name": "x", "topic": "/x", "type": "std_msgs/msg/Bool", "role": "robto"}, "streams.{i}.role"),
    ({"name": "x", "topic": "no slash", "type": "std_msgs/msg/Bool", "role": "robot"},
     "streams.{i}.topic: not a valid ROS topic name"),
    ({"name": "x", "topic": "/x", "type": "std_msgs/msg/Bool", "role": "robot", "rate": 3}, "unknown key"),
    ({"name": "x", "topic": "/x", "type": "Bool", "role": "robot"}, "streams.{i}.type: not a ROS message type"),
    ({"name": "x", "topic": "/x", "type": "std_msgs/msg/Bool", "role": "robot", "rate_hz": -1}, "streams.{i}.rate_hz"),
    ({"name": "x", "topic": "/x", "type": "std_msgs/msg/Bool", "role": "derived", "derived_from": ["/nope"]},
     "derived_from /nope is not a declared stream"),
    ({"name": "x", "topic": "/joint_states", "type": JS, "role": "robot"}, "/joint_states declared twice"),
])
def test_bad_stream_is_one_line_naming_it(tmp_path, stream, message):
    cfg = yaml.safe_load(graph.default_config_path().read_text())
    cfg["streams"].append(stream)
    message = message.replace("{i}", str(len(cfg["streams"]) - 1))  # the appended stream's index
    p = tmp_path / "floor.yaml"
    p.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as e:
        graph.build(graph.load_config(p))
    assert message in str(e.value) and "floor.yaml" in str(e.value)


class Clock:
    def __init__(self):
        self.t = 1_800_000_000 * S

    def __call__(self):
        return self.t


def _manager(tmp_path, cameras="none"):
    specs = graph.build(None, overrides={"cameras": cameras, "output_dir": str(tmp_path)})
    rec = Recorder(tmp_path / "out", disk_min_free_bytes=0)
    streams = list(_recorder_streams(specs).values())
    for s in streams:
        rec.add_topic(s.topic, s.type)
    clock = Clock()
    return rec, EpisodeManager(rec, streams, robot="g1", clock=clock), clock, streams


def _run(rec, m, clock, live: set, seconds=3.0):
    """Every stream in ``live`` at its contract rate (presence-only ones at 2 Hz) for ``seconds``."""
    rates = {s.topic: s.expected_hz or 2.0 for s in m.tracker.states.values()}
    for _ in range(int(seconds * 4)):
        clock.t += S // 4
        for t in live:
            for _k in range(max(1, int(rates[t] / 4))):
                rec.on_message(t, JS, b"\x00\x01\x00\x00", clock.t)
        m.tick()


def test_refusal_names_the_robot_joint_state_first(tmp_path):
    rec, m, clock, streams = _manager(tmp_path)
    required = {s.topic for s in streams if s.required}
    _run(rec, m, clock, required - {"/joint_states"})
    with pytest.raises(CommandError) as e:
        m.start()
    assert str(e.value).startswith("not starting: robot joint state (/joint_states, robot driver) silent for")
    st = {s["topic"]: s for s in m.status()["streams"]}["/joint_states"]
    assert st["name"] == "robot joint state" and st["role"] == "robot"  # what the console renders


def test_no_exoskeleton_names_the_exoskeleton_not_the_retarget_command(tmp_path):
    rec, m, clock, streams = _manager(tmp_path)
    required = {s.topic for s in streams if s.required}
    # no operator input: the retarget node has nothing to command either
    _run(rec, m, clock, required - {"/exo/joint_states", "/retarget/joint_command", "/retarget/targets"})
    reasons = m.status()["reasons"]
    assert len(reasons) == 1 and reasons[0].startswith("exoskeleton (/exo/joint_states, exoskeleton driver) silent")
    # the operator input is there but the retarget node is down: now the command is the cause
    rec2, m2, clock2, _ = _manager(tmp_path / "b")
    _run(rec2, m2, clock2, required - {"/retarget/joint_command", "/retarget/targets"})
    assert [r.split(" (")[0] for r in m2.status()["reasons"]] == ["robot command"]


def test_every_required_stream_fresh_starts_and_the_bag_names_its_streams(tmp_path):
    rec, m, clock, streams = _manager(tmp_path)
    _run(rec, m, clock, {s.topic for s in streams if s.required})
    assert m.ready, m.status()["reasons"]
    path = m.start()
    m.stop(True)
    meta = yaml.safe_load((Path(path) / "metadata.yaml").read_text())
    custom = meta["rosbag2_bagfile_information"]["custom_data"]
    assert custom["stream//joint_states"] == "robot joint state | robot | robot driver"
    assert custom["expected_hz//joint_states"] == "500" and "expected_hz//vr/head" not in custom


def _contract(cameras="none"):
    return graph.station_contract(None, {"cameras": cameras})


def _good_samples(contract, window=3.0, offset_s=0.002, joints=("a", "b")):
    out = {}
    for s in contract.streams:
        if not s.required:
            continue
        n = int((s.rate_hz or 1.0) * window)
        out[s.topic] = Sample(s.topic, types=[s.type], count=n, bytes_total=n * 100,
                              offsets_s=[offset_s] * n if s.type != "std_msgs/msg/Bool" else [],
                              joint_names=list(joints) if s.topic == "/joint_states" else None)
    return out


def test_station_check_passes_a_good_station_and_fails_each_missing_stream():
    c = _contract()
    rep = judge(c, _good_samples(c), 3.0, robot_joints=["a", "b"], free=10**13)
    assert rep.ok, rep.text()
    assert "station check: PASS" in rep.text() and "robot joint state" in rep.text()
    for s in c.required():
        samples = _good_samples(c)
        del samples[s.topic]
        rep = judge(c, samples, 3.0, robot_joints=["a", "b"], free=10**13)
        assert not rep.ok and any(f.startswith(f"{s.name} ({s.topic}") and "no message" in f
                                  for f in rep.failures), rep.text()


def test_station_check_fails_a_200_ms_clock_offset_and_missing_joints_and_a_full_disk():
    c = _contract()
    samples = _good_samples(c)
    samples["/exo/joint_states"].offsets_s = [-0.2] * 300  # that PC's clock is 200 ms ahead
    rep = judge(c, samples, 3.0, robot_joints=["a", "b"], free=10**13)
    assert [f for f in rep.failures] == [
        "exoskeleton (/exo/joint_states, exoskeleton driver): header stamps -200 ms off the station clock "
        "(limit 100 ms): is that PC's clock synced?"]
    rep = judge(c, _good_samples(c, joints=("a",)), 3.0, robot_joints=["a", "b"], free=10**13)
    assert not rep.ok and "joints of the g1 mapping missing: b" in rep.failures[0]
    rep = judge(c, _good_samples(c), 3.0, robot_joints=["a", "b"], free=1000)
    assert not rep.ok and rep.failures[0].startswith("disk: 0 min of recording left")
    slow = _good_samples(c)
    slow["/joint_states"].count = 300  # 100 Hz of a declared 500
    rep = judge(c, slow, 3.0, robot_joints=["a", "b"], free=10**13)
    assert not rep.ok and "100.0 Hz, expected 500 Hz" in rep.failures[0]


def test_config_init_copies_and_refuses_to_overwrite(tmp_path):
    dst = tmp_path / "station_cfg"
    r = subprocess.run([_exe(), "config", "init", str(dst)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (dst / "floor.yaml").is_file() and (dst / "robots" / "g1.yaml").is_file()
    (dst / "floor.yaml").write_text("robot: h1\n")
    r = subprocess.run([_exe(), "config", "init", str(dst)], capture_output=True, text=True)
    assert r.returncode == 1 and "not overwriting (--force overwrites)" in r.stderr
    assert (dst / "floor.yaml").read_text() == "robot: h1\n"
    r = subprocess.run([_exe(), "config", "init", str(dst), "--force"], capture_output=True, text=True)
    assert r.returncode == 0 and "streams:" in (dst / "floor.yaml").read_text()


def test_up_dry_run_says_which_config_it_loaded(tmp_path):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text(graph.default_config_path().read_text())
    r = subprocess.run([_exe(), "up", str(cfg), "--dry-run", "--cameras", "none"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith(f"[up] config: {cfg.resolve()} | robot: ")


def test_up_runs_the_station_check_once_when_every_node_runs_and_the_recorder_answers():
    from robot_capture.floor.readiness import FloorWatch

    class Sup:
        children = {"recorder": None, "retarget": None}
        alive_n = 1

        def alive(self):
            return list(self.children)[:self.alive_n]

        def log(self, msg):
            pass

    state = {"state": "offline", "ready": False, "reasons": [], "streams": []}
    calls = []
    w = FloorWatch(lambda: state, on_up=calls.append)
    sup = Sup()
    w(sup)
    sup.alive_n = 2
    w(sup)  # every node runs, but the recorder has not answered yet
    assert calls == []
    state["state"] = "idle"
    w(sup)
    w(sup)
    assert calls == [sup]


def test_export_names_a_missing_stream_as_the_station_does():
    from types import SimpleNamespace

    from robot_capture.export.mapping import MissingStreamError, load_mapping, resolve

    topics = {"/retarget/joint_command": SimpleNamespace(type=JS, count=10)}
    names = {"/joint_states": {"name": "robot joint state", "role": "robot", "source": "robot driver"}}
    with pytest.raises(MissingStreamError) as e:
        resolve(load_mapping(), topics, None, names)
    assert str(e.value) == "robot joint state (/joint_states, robot driver) missing from the bag " \
                           "(feature observation.state)"


def test_qa_and_console_say_which_config_they_loaded(tmp_path):
    rig = tmp_path / "rig.yaml"
    rig.write_text("rate: {warn_below: 0.9}\n")
    r = subprocess.run([_exe(), "qa", str(tmp_path), "--rig", str(rig)], capture_output=True, text=True)
    assert "config: " in r.stderr and "qa.yaml + rig " + str(rig.resolve()) in r.stderr, r.stderr
    # no recorder, stdin at its end: the key console says what it loaded, then quits
    r = subprocess.run([_exe(), "console", "--keys", "--timeout", "1"], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=120)
    assert "config: key map " in r.stderr and "console_keys.yaml" in r.stderr, r.stderr
