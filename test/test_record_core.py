"""Recorder core without DDS: episode naming, selection, stats, state machine, disk guard."""
from __future__ import annotations

import errno
import os
from collections import namedtuple
from pathlib import Path

import pytest

from robot_capture.bag import BagReader
from robot_capture.record.episode import (EpisodeInfo, episode_dir, episode_name, next_sequence,
                                          parse_episode_name, slugify)
from robot_capture.record.recorder import DiskLowError, EpisodeStateError, Recorder
from robot_capture.record.selection import TopicSelection
from robot_capture.record.stats import TopicStats

JS = "sensor_msgs/msg/JointState"
HOSTILE = ["../../etc", "/etc/passwd", "a/../../b", "nul\x00byte", "..", ".", "", "   ",
           "Greif-Aufgabe: Würfel → Kiste", "タスク", "x" * 10_000, "a\\b\\..\\c", "~root", "-rf --all"]

_Usage = namedtuple("_Usage", "total used free")


@pytest.mark.parametrize("task", HOSTILE)
def test_slug_is_safe(task, tmp_path):
    slug = slugify(task)
    assert 1 <= len(slug) <= 48
    assert set(slug) <= set("abcdefghijklmnopqrstuvwxyz0123456789_-")
    name = episode_name(1_700_000_000.0, task, 7)
    assert name.endswith("_0007") and name.startswith("20231114-221320_")
    path = episode_dir(tmp_path, name)
    assert path.parent == tmp_path.resolve()


def test_slug_values():
    assert slugify("../../etc") == "etc"
    assert slugify("Pick Cube!") == "pick-cube"
    assert slugify("Würfel") == "wurfel"
    assert slugify("タスク") == "episode"


def test_episode_dir_rejects_non_names(tmp_path):
    for bad in ["../x", "20231114-221320_a_0001/../../x", "foo"]:
        with pytest.raises(ValueError):
            episode_dir(tmp_path, bad)


def test_next_sequence(tmp_path):
    assert next_sequence(tmp_path) == 0
    (tmp_path / "20231114-221320_a_0004").mkdir()
    (tmp_path / "junk_0099").mkdir()
    assert next_sequence(tmp_path) == 5
    assert parse_episode_name("20231114-221320_a-b_c_0004") == ("20231114-221320", "a-b_c", 4)


def test_selection():
    s = TopicSelection(topics=["joint_states"], regex="^/camera/.*/image_raw$", exclude="depth")
    assert s.matches("/joint_states")
    assert s.matches("/camera/head/image_raw")
    assert not s.matches("/camera/depth/image_raw")
    assert not s.matches("/camera/head/camera_info")
    a = TopicSelection(all=True, exclude="^/rosout$")
    assert a.matches("/x") and not a.matches("/rosout") and not a.matches("/_hidden/x")
    assert TopicSelection(topics=["/_hidden/x"]).matches("/_hidden/x")
    with pytest.raises(ValueError):
        TopicSelection()
    with pytest.raises(ValueError):
        TopicSelection(regex="(")
    assert a.select([("/a", ["t"]), ("/rosout", ["l"])]) == [("/a", ["t"])]


def test_stats_drops_gaps_rate():
    st = TopicStats("/a")
    t = 1_000_000_000
    for i, seq in enumerate([1, 2, 3, 6, 7]):  # 4 and 5 lost
        st.on_receive(t + i * 10_000_000, seq, b"pub1")
        st.on_written(10, t + i * 10_000_000)
    st.on_receive(t + 5 * 10_000_000, 1, b"pub2")  # another publisher: own sequence
    assert st.drops == 2
    st.on_receive(t + 100 * 10_000_000, 8, b"pub1")
    st.on_written(10, t + 100 * 10_000_000)
    assert st.gaps == 1 and abs(st.max_gap_s - 0.96) < 1e-9
    st.on_lost(1)
    assert st.drops == 2  # the middleware event reports the same losses: max, not sum
    st.on_lost(2)
    assert st.drops == 3
    st.window(t)
    st.on_receive(t + 1, 9, b"pub1")
    assert st.window(t + 500_000_000) == pytest.approx(2.0)
    st.reset_episode()
    assert (st.messages, st.drops, st.gaps, st.max_gap_s) == (0, 0, 0, 0.0)


def _cdr_js(i):
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import JointState

    m = JointState()
    m.header.stamp.sec = i
    m.name = ["j1", "j2"]
    m.position = [0.1 * i, 0.2]
    return serialize_message(m)


def test_episode_lifecycle(tmp_path, g1_urdf):
    rec = Recorder(tmp_path / "out", attachments=[g1_urdf])
    rec.add_topic("/js", JS, [{"reliability": "reliable", "durability": "volatile", "depth": 10}])
    assert not rec.on_message("/js", JS, _cdr_js(0), 1)  # idle: not recorded
    with pytest.raises(EpisodeStateError):
        rec.stop_episode()
    path = rec.start_episode(EpisodeInfo(task="../../etc", operator="ana", scene="lab", notes="n\x00x"))
    assert path.parent == (tmp_path / "out").resolve() and "_etc_" in path.name
    with pytest.raises(EpisodeStateError):
        rec.start_episode(EpisodeInfo(task="t"))
    for i in range(10):
        assert rec.on_message("/js", JS, _cdr_js(i), 2_000_000_000 + i * 1_000_000, 1_000 + i, seq=i + 1,
                              publisher=b"p")
    rec.split()
    for i in range(10, 15):
        rec.on_message("/js", JS, _cdr_js(i), 2_000_000_000 + i * 1_000_000, 1_000 + i)
    assert rec.status()["topics"]["/js"]["messages"] == 15
    assert rec.stop_episode(success=True) == path
    r = BagReader(path)
    msgs = list(r.messages())
    assert len(msgs) == 15 and msgs[0].publish_time_ns == 1_000 and msgs[0].log_time_ns == 2_000_000_000
    assert len(r.files) == 2
    ep = r.metadata_records()["episode"]
    assert ep["success"] == "true" and ep["task"] == "../../etc" and ep["notes"] == "nx" and ep["operator"] == "ana"
    custom = r.metadata.custom_data
    assert custom["episode.success"] == "true" and custom["drops//js"] == "0"
    atts = r.attachments()
    assert atts[g1_urdf.name][1] == g1_urdf.read_bytes()
    # second episode: discard
    p2 = rec.start_episode(EpisodeInfo(task="t"))
    assert p2 != path and parse_episode_name(p2.name)[2] == parse_episode_name(path.name)[2] + 1
    rec.on_message("/js", JS, _cdr_js(0), 3_000_000_000)
    rec.discard_episode()
    assert not p2.exists() and path.exists()


def test_type_change_counted_first_type_kept(tmp_path):
    warnings = []

    class L:
        info = staticmethod(lambda m: None)
        error = staticmethod(lambda m: None)
        warning = staticmethod(warnings.append)

    rec = Recorder(tmp_path, logger=L())
    assert rec.add_topic("/x", JS)
    assert not rec.add_topic("/x", "std_msgs/msg/String")
    rec.start_episode(EpisodeInfo(task="t"))
    assert rec.on_message("/x", JS, _cdr_js(1), 10)
    for _ in range(3):
        assert not rec.on_message("/x", "std_msgs/msg/String", b"\x00\x01\x00\x00\x01\x00\x00\x00\x00", 11)
    path = rec.stop_episode(False)
    assert rec.stats["/x"].problems["type_change"] == 4
    assert len(warnings) == 1
    r = BagReader(path)
    assert r.topics["/x"].type == JS and r.topics["/x"].count == 1
    assert r.metadata_records()["recorder_problems"]["problems//x/type_change"] == "4"


def test_disk_guard_stops_cleanly(tmp_path):
    free = {"v": 10**9}
    rec = Recorder(tmp_path, disk_min_free_bytes=10**8, disk_usage=lambda p: _Usage(0, 0, free["v"]))
    rec.add_topic("/js", JS)
    path = rec.start_episode(EpisodeInfo(task="t"))
    for i in range(5):
        rec.on_message("/js", JS, _cdr_js(i), 1 + i)
    free["v"] = 10**7
    rec.tick()
    assert rec.episode is None and "disk guard" in rec.last_error
    r = BagReader(path)  # closed cleanly: readable without recover
    assert r.topics["/js"].count == 5
    assert r.metadata_records()["episode"]["stop_reason"] == "disk_low"
    with pytest.raises(DiskLowError):
        rec.start_episode(EpisodeInfo(task="t"))


def test_enospc_from_writer_stops_episode(tmp_path):
    from robot_capture.bag import BagWriter

    class FullWriter(BagWriter):
        n = 0

        def write(self, *a, **k):
            FullWriter.n += 1
            if FullWriter.n > 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return super().write(*a, **k)

    rec = Recorder(tmp_path, writer_factory=FullWriter)
    rec.add_topic("/js", JS)
    path = rec.start_episode(EpisodeInfo(task="t"))
    written = [rec.on_message("/js", JS, _cdr_js(i), 1 + i) for i in range(6)]
    assert written == [True] * 3 + [False] * 3
    assert rec.episode is None and "disk_full" in rec.last_error
    r = BagReader(path)
    assert r.topics["/js"].count == 3
    assert r.metadata_records()["episode"]["stop_reason"] == "disk_full"
    assert Path(path / "metadata.yaml").is_file()


def test_offered_qos_refresh_applies_to_next_episode(tmp_path):
    rec = Recorder(tmp_path, disk_min_free_bytes=0)
    rec.add_topic("/js", JS, [{"reliability": "reliable"}])
    p1 = rec.start_episode(EpisodeInfo(task="a"))
    rec.set_offered_qos("/js", [{"reliability": "best_effort"}, {"reliability": "reliable"}])
    rec.on_message("/js", JS, _cdr_js(0), 1)
    rec.stop_episode()
    p2 = rec.start_episode(EpisodeInfo(task="b"))
    rec.on_message("/js", JS, _cdr_js(1), 2)
    rec.stop_episode()
    assert [q["reliability"] for q in BagReader(p1).topics["/js"].qos] == ["reliable"]
    assert [q["reliability"] for q in BagReader(p2).topics["/js"].qos] == ["best_effort", "reliable"]
