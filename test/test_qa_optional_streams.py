"""Optional streams of the station contract (declared with a rate, not required): the QA judges
their rate, gaps and edges when they are in the bag, and says nothing when they are absent.

A headset stream declared at 30 Hz on an exoskeleton station was recorded and never judged
(the bag stored expected rates of required streams only): a slowed /vr/head passed.
"""
from __future__ import annotations

import struct

from robot_capture.bag.writer import BagWriter, WriterOptions
from robot_capture.qa.run import qa_episode

T0 = 1_800_000_000_000_000_000


def _stamped(t_ns: int) -> bytes:
    return b"\x00\x01\x00\x00" + struct.pack("<iII", t_ns // 10**9, t_ns % 10**9, 1) + b"\x00\x00\x00\x00" + bytes(56)


def _bag(path, head_hz: float | None, head_until: float = 1.0, secs: float = 4.0):
    custom = {"episode.task": "pick", "episode.operator": "ana", "episode.success": "true",
              "episode.start_time_ns": str(T0), "episode.stop_time_ns": str(T0 + int(secs * 1e9)),
              "episode.duration_s": f"{secs:.3f}", "expected_hz//vr/left_wrist": "30", "optional_hz//vr/head": "30"}
    w = BagWriter(path, WriterOptions(compression="none", background_flush=False), custom_data=custom)
    topics = {"/vr/left_wrist": 30.0} | ({"/vr/head": head_hz} if head_hz else {})
    for topic in topics:
        w.add_topic(topic, "geometry_msgs/msg/PoseStamped")
    for topic, hz in topics.items():
        span = secs * (head_until if topic == "/vr/head" else 1.0)
        for i in range(int(hz * span) + 1):
            t = T0 + int(i * 1e9 / hz)
            w.write(topic, _stamped(t), t + 1_000_000)
    w.close()
    return path


def test_an_absent_optional_stream_is_no_finding(tmp_path):
    v = qa_episode(_bag(tmp_path / "absent", None), write=False)
    assert not [f for f in v.findings if f.topic == "/vr/head"], v.findings


def test_a_slow_optional_stream_is_judged_against_its_declared_rate(tmp_path):
    v = qa_episode(_bag(tmp_path / "slow", 20.0), write=False)
    rate = [f for f in v.findings if f.check == "rate" and f.topic == "/vr/head"]
    assert rate and rate[0].severity == "fail" and "30 Hz is expected" in rate[0].message, v.findings


def test_an_optional_stream_that_stops_is_named(tmp_path):
    v = qa_episode(_bag(tmp_path / "stops", 30.0, head_until=0.4), write=False)
    pres = [f for f in v.findings if f.check == "presence" and f.topic == "/vr/head"]
    assert pres and "stopped" in pres[0].message, v.findings
