"""One station per ROS domain (issue 18, W2): the bring-up claim, the nodes' duplicate watch,
the recorder's publisher count and the QA ``sources`` check.

A second `robot-capture up` on the same domain once published into a running episode for
about 4 s (29-joint /joint_states among the 23-joint robot's). These tests plant each part
of that and check it is refused, held or named.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robot_capture.bag.writer import BagWriter, WriterOptions
from robot_capture.floor import station_guard
from robot_capture.floor.station_guard import StationBusyError, claim_station
from robot_capture.qa.run import qa_episode
from robot_capture.record.recorder import Recorder
from robot_capture.record.stats import TopicStats

T0 = 1_800_000_000_000_000_000


@pytest.fixture
def lock_dir(tmp_path, monkeypatch):
    d = tmp_path / "locks"
    monkeypatch.setenv("ROBOT_CAPTURE_LOCK_DIR", str(d))
    return d


# ---------------------------------------------------------------------------- the host lock
def test_a_second_claim_on_the_same_domain_and_namespace_is_refused_naming_the_first(lock_dir):
    first = claim_station("", "robot-capture up", probe_s=0)
    with pytest.raises(StationBusyError) as err:
        claim_station("", "robot-capture up", probe_s=0)
    msg = str(err.value)
    assert "another station is up on ROS_DOMAIN_ID" in msg and f"pid {os.getpid()}" in msg, msg
    assert "\n" not in msg
    other_ns = claim_station("station_b", "robot-capture up", probe_s=0)  # another namespace is another slot
    other_ns.release()
    first.release()
    claim_station("", "robot-capture up", probe_s=0).release()  # free again after release


def test_a_killed_holder_leaves_no_stale_claim(lock_dir):
    code = ("import os, sys, time; from robot_capture.floor.station_guard import claim_station; "
            "c = claim_station('', 'holder', probe_s=0); print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "ROBOT_CAPTURE_LOCK_DIR": str(lock_dir)})
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(StationBusyError, match=f"holder \\(pid {proc.pid}"):
            claim_station("", "robot-capture up", probe_s=0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        claim_station("", "robot-capture up", probe_s=0).release()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ----------------------------------------------------------------- the recorder's publishers
def test_topic_stats_count_the_publishers_of_an_episode():
    st = TopicStats("/joint_states")
    st.on_written(10, 1, b"gid-a")
    st.on_written(10, 2, b"gid-a")
    assert st.publishers == 1
    st.on_written(10, 3, b"gid-b")
    assert st.publishers == 2
    st.reset_episode()
    assert st.publishers == 0
    st.on_written(10, 4, None)  # rclpy 7 (Jazzy) gives no GID: not counted, never a crash
    assert st.publishers == 0


def _joint_state(names, t_ns):
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import JointState

    m = JointState(name=list(names), position=[0.0] * len(names))
    m.header.stamp.sec, m.header.stamp.nanosec = t_ns // 10**9, t_ns % 10**9
    return bytes(serialize_message(m))


def test_the_recorder_stores_the_publisher_count_in_the_bag(tmp_path):
    from robot_capture.episodes import load_episode

    rec = Recorder(tmp_path)
    rec.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    path = rec.start_episode()
    names = [f"j{i}" for i in range(23)]
    for i in range(20):
        t = time.time_ns()
        rec.on_message("/joint_states", "sensor_msgs/msg/JointState", _joint_state(names, t), t, t, i + 1,
                       b"robot-driver" if i % 2 else b"second-station")
    rec.stop_episode(True)
    ep = load_episode(path)
    assert ep.custom_data.get("publishers//joint_states") == "2", ep.custom_data
    v = qa_episode(path, write=False)
    src = [f for f in v.findings if f.check == "sources"]
    assert any("2 publishers inside the episode" in f.message for f in src), v.findings


# ------------------------------------------------------------------------ the QA sources check
def _bag(path, second_source: bool, publishers: dict | None = None):
    secs, rate = 3.0, 100.0
    custom = {"episode.task": "pick", "episode.operator": "ana", "episode.success": "true",
              "episode.start_time_ns": str(T0), "episode.stop_time_ns": str(T0 + int(secs * 1e9)),
              "episode.duration_s": f"{secs:.3f}", "expected_hz//joint_states": "100"}
    custom.update({f"publishers/{t}": str(n) for t, n in (publishers or {}).items()})
    w = BagWriter(path, WriterOptions(compression="none", background_flush=False), custom_data=custom)
    w.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    robot = [f"joint_{i}" for i in range(23)]
    other = [f"other_{i}" for i in range(29)]
    for i in range(int(rate * secs) + 1):
        t = T0 + int(i * 1e9 / rate)
        w.write("/joint_states", _joint_state(robot, t), t + 1_000_000)
        if second_source and 100 <= i < 140:  # a second station's robot_sim for 0.4 s
            w.write("/joint_states", _joint_state(other, t + 3_000_000), t + 4_000_000)
    w.close()
    return path


def test_sources_check_names_a_second_joint_name_set(tmp_path):
    clean = qa_episode(_bag(tmp_path / "clean", False), write=False)
    assert not [f for f in clean.findings if f.check == "sources"], clean.findings
    mixed = qa_episode(_bag(tmp_path / "mixed", True), write=False)
    src = [f for f in mixed.findings if f.check == "sources"]
    assert mixed.verdict == "fail" and len(src) == 1, mixed.findings
    assert src[0].severity == "fail" and src[0].topic == "/joint_states"
    assert "joint names change inside the episode (301 with 23 joints, 40 with 29 joints)" in src[0].message
    assert "second station" in src[0].message
    assert src[0].message in mixed.reasons


def test_sources_check_uses_the_recorder_publisher_count_except_on_shared_topics(tmp_path):
    v = qa_episode(_bag(tmp_path / "pubs", False, {"/joint_states": 2, "/diagnostics": 3}), write=False)
    src = [f for f in v.findings if f.check == "sources"]
    assert [f.topic for f in src] == ["/joint_states"], v.findings
    assert src[0].figures == {"publishers": 2}
    assert v.metrics["publishers"] == {"/diagnostics": 3, "/joint_states": 2}


# ------------------------------------------------------------------- the nodes' duplicate watch
class _FakeNode:
    def __init__(self, graph):
        self.graph = graph
        self.logs = []
        self.context = type("C", (), {"ok": staticmethod(lambda: True)})()

    def create_timer(self, _period, _fn):
        return None

    def get_name(self):
        return "retarget"

    def get_namespace(self):
        return "/"

    def get_node_names_and_namespaces(self):
        return list(self.graph)

    def get_logger(self):
        node = self

        class _L:
            def error(self, m):
                node.logs.append(("error", m))

            def warning(self, m):
                node.logs.append(("warning", m))
        return _L()


def test_duplicate_watch_blocks_while_a_namesake_is_on_the_graph_and_says_so_once():
    from robot_capture.nodes._duplicate import DuplicateWatch

    node = _FakeNode([("retarget", "/"), ("recorder", "/"), ("retarget", "/station_b")])
    w = DuplicateWatch(node, act="not commanding")
    assert w.check() is False and not node.logs  # another namespace is another station slot
    node.graph.append(("retarget", "/"))
    assert w.check() is True and w.check() is True
    assert node.logs == [("error", f"another node named /retarget is on ROS_DOMAIN_ID "
                                   f"{os.environ.get('ROS_DOMAIN_ID', '0')} (a second station?): not commanding")]
    assert w.diagnostic_flag() == "duplicate_node"
    node.graph.pop()
    assert w.check() is False
    assert node.logs[-1] == ("warning", "the other /retarget is gone: publishing again")


# ------------------------------------------------------------- two `up`s on one domain (DDS)
def _exe() -> str:
    return str(Path(sys.executable).parent / "robot-capture")


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.xdist_group("sim_floor")
@pytest.mark.timeout(400)
def test_a_second_up_refuses_before_publishing_and_the_running_episode_stays_clean(tmp_path, lock_dir):
    """Floor A records; floor B on the same domain is refused (this host's lock), and again when
    it looks like another PC (its own lock folder: the DDS probe finds A's live recorder)."""
    import yaml

    from robot_capture.floor import graph
    from robot_capture.floor.client import EpisodeClient

    cfg = {k: v for k, v in graph.load_config(None).items() if not k.startswith("_")}
    cfg["parameters"] = {"recorder": {"min_rate_fraction": 0.05, "stream_lost_s": 30.0}}
    config = tmp_path / "floor.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    log_a = open(tmp_path / "a.log", "wb")
    a = subprocess.Popen([_exe(), "up", str(config), "--sim", "--cameras", "none", "--output-dir", str(out_a)],
                         stdout=log_a, stderr=subprocess.STDOUT, start_new_session=True)
    client = EpisodeClient(discovery_timeout_s=60.0, timeout_s=20.0, node_name="one_station_test")
    try:
        end = time.monotonic() + 120
        s = client.status()
        while not s["ready"] and time.monotonic() < end and a.poll() is None:
            client.spin_for(0.5)
            s = client.status()
        assert s["ready"], (s["reasons"], (tmp_path / "a.log").read_text(errors="replace")[-3000:])
        bag = Path(client.start_episode(force=True))
        # B on this host: refused at once, before any node starts
        b = subprocess.run([_exe(), "up", str(config), "--sim", "--cameras", "none", "--output-dir", str(out_b)],
                           capture_output=True, text=True, timeout=120)
        assert b.returncode == 2, b.stdout + b.stderr
        assert "not starting: another station is up on ROS_DOMAIN_ID" in b.stderr and "robot-capture up (pid" in b.stderr
        assert "started" not in b.stdout, b.stdout
        # B as another PC (another lock folder): the DDS probe finds A's recorder and retarget, alive
        b2 = subprocess.run([_exe(), "up", str(config), "--sim", "--cameras", "none", "--output-dir", str(out_b),
                             "--station-probe-s", "5"], capture_output=True, text=True, timeout=180,
                            env={**os.environ, "ROBOT_CAPTURE_LOCK_DIR": str(tmp_path / "other_pc")})
        assert b2.returncode == 2, b2.stdout + b2.stderr
        assert "/recorder and /retarget answer there" in b2.stderr, b2.stderr
        assert "started" not in b2.stdout, b2.stdout
        assert not out_b.exists()
        client.stop_episode(success=True)
        v = qa_episode(bag, write=False)
        assert not [f for f in v.findings if f.check == "sources"], v.findings
        assert v.metrics["publishers"].get("/joint_states") in (None, 1), v.metrics["publishers"]
    finally:
        client.close()
        if a.poll() is None:
            a.send_signal(signal.SIGINT)
        try:
            a.wait(60)
        except subprocess.TimeoutExpired:
            a.kill()
        log_a.close()
