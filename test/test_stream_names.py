"""Issue 18: the station contract's stream names (custom_data ``stream/<topic>``) in the QA
findings, the report and ``robot-capture info``; bags without a contract keep the topics."""
from __future__ import annotations

import json
import struct

import pytest

from robot_capture.bag.writer import BagWriter, WriterOptions
from robot_capture.cli import main
from robot_capture.qa.context import short_name
from robot_capture.qa.run import qa_episode

T0 = 1_800_000_000_000_000_000


def _stamped(t_ns: int, payload: bytes = b"") -> bytes:
    """CDR bytes whose first field is a Header stamped ``t_ns`` (empty frame_id)."""
    return b"\x00\x01\x00\x00" + struct.pack("<iII", t_ns // 10**9, t_ns % 10**9, 1) + b"\x00\x00\x00\x00" + payload


def _bag(path, named=True, rate=100.0, secs=3.0, hole=(100, 108)):
    """/vr/head at ``rate`` with a hole of 8 messages (a gaps fail); /vr/left clean, never named."""
    custom = {"episode.task": "pick", "episode.operator": "ana", "episode.success": "true",
              "episode.start_time_ns": str(T0), "episode.stop_time_ns": str(T0 + int(secs * 1e9)),
              "episode.duration_s": f"{secs:.3f}", "expected_hz//vr/head": f"{rate:g}",
              "expected_hz//vr/left": f"{rate:g}"}
    if named:
        custom["stream//vr/head"] = "headset | operator | Quest headset driver"
    w = BagWriter(path, WriterOptions(compression="none", background_flush=False), custom_data=custom)
    w.add_topic("/vr/head", "geometry_msgs/msg/PoseStamped")
    w.add_topic("/vr/left", "geometry_msgs/msg/PoseStamped")
    for i in range(int(rate * secs) + 1):
        t = T0 + int(i * 1e9 / rate)
        if not hole[0] <= i < hole[1]:
            w.write("/vr/head", _stamped(t, bytes(56)), t + 1_000_000)
        w.write("/vr/left", _stamped(t, bytes(56)), t + 1_000_000)
    w.close()
    return path


def test_short_name_prefers_the_contract_name():
    names = {"/joint_states": {"name": "robot joint state", "role": "robot", "source": "robot driver"},
             "/camera/head/image_raw": {"name": "", "role": "camera", "source": ""}}
    assert short_name("/joint_states", names) == "robot joint state (/joint_states)"
    assert short_name("/camera/head/image_raw", names) == "camera head"  # an empty name: today's short name
    assert short_name("/exo/joint_states", names) == "/exo/joint_states"
    assert short_name("/joint_states") == "/joint_states"


def test_qa_findings_name_the_stream_and_stay_deterministic(tmp_path):
    bag = _bag(tmp_path / "named")
    v = qa_episode(bag)
    gaps = [f for f in v.findings if f.check == "gaps"]
    assert [f.topic for f in gaps] == ["/vr/head"]
    assert gaps[0].message.startswith("headset (/vr/head): 8 messages missing"), gaps[0].message
    first = (bag / "qa.json").read_bytes()
    qa_episode(bag)
    assert (bag / "qa.json").read_bytes() == first
    plain = qa_episode(_bag(tmp_path / "plain", named=False), write=False)
    assert [f.message.split(":")[0] for f in plain.findings if f.check == "gaps"] == ["/vr/head"]


def test_info_shows_the_contract_name_before_the_topic(tmp_path, capsys):
    bag = _bag(tmp_path / "named")
    assert main(["info", str(bag)]) == 0
    out = capsys.readouterr().out
    assert "Topic: headset  /vr/head | Type: geometry_msgs/msg/PoseStamped" in out
    assert "Topic:          /vr/left | Type:" in out  # unnamed topics stay in the same columns
    assert "  headset  /vr/head  1 gap(s)" in out
    assert main(["info", str(bag), "--json"]) == 0
    topics = {t["topic"]: t for t in json.loads(capsys.readouterr().out)["topics"]}
    assert topics["/vr/head"]["name"] == "headset" and "name" not in topics["/vr/left"]
    plain = _bag(tmp_path / "plain", named=False)
    assert main(["info", str(plain)]) == 0
    out = capsys.readouterr().out
    assert "Topic: /vr/head | Type:" in out and "Topic: /vr/left | Type:" in out  # today's output


@pytest.mark.parametrize("stored", [False, True])
def test_report_names_the_stream_in_reasons_and_findings(tmp_path, capsys, stored):
    day = tmp_path / "day"
    _bag(day / "ep1")
    _bag(day / "ep2", named=False)
    if stored:
        assert main(["qa", str(day)]) == 1
        capsys.readouterr()
    out = tmp_path / "r.html"
    assert main(["report", str(day), "--out", str(out)]) == 0
    text = out.read_text()
    assert '<td class="l">headset (/vr/head)</td>' in text  # the ranked reasons' stream column
    assert "headset (/vr/head): 8 messages missing" in text  # ep1's finding
    assert "<li class=\"fail\">/vr/head: 8 messages missing" in text  # ep2 has no contract: the topic
