"""What the console state says (issue 18 "the console shows the truth"), without DDS or a browser.

A real Recorder core and EpisodeManager on a fake clock: episodes per hour is not extrapolated
from one episode or a short session; the open episode says it was forced; the last episode
carries its verdict's source (the page tags anything but ``qa`` as provisional); the bridge's
offline state shows no stream as ``ok``.
"""
from __future__ import annotations

import time

from robot_capture.console.bridge import RecorderBridge
from robot_capture.console.manager import EPH_MIN_SESSION_S, EpisodeManager
from robot_capture.record.episode import EpisodeInfo
from robot_capture.record.recorder import Recorder

JS = "sensor_msgs/msg/JointState"
S = 1_000_000_000


class Clock:
    def __init__(self):
        self.t = 1_800_000_000 * S

    def __call__(self):
        return self.t


def _manager(tmp_path):
    clock = Clock()
    rec = Recorder(tmp_path / "out", disk_min_free_bytes=0)
    rec.add_topic("/a", JS)
    m = EpisodeManager(rec, {"/a": 100.0}, clock=clock)
    return rec, m, clock


def _episode(rec, m, clock, seconds=2.0, force=False):
    m.start(EpisodeInfo(task="t", operator="op"), force=force)
    for _ in range(int(seconds * 100)):
        clock.t += S // 100
        rec.on_message("/a", JS, b"\x00\x01\x00\x00" + b"x" * 8, clock.t)
    m.stop(True)


def test_episodes_per_hour_needs_two_episodes_and_ten_minutes(tmp_path):
    rec, m, clock = _manager(tmp_path)
    _episode(rec, m, clock, force=True)
    assert m.counters()["episodes_per_hour"] is None  # one 2 s episode is not 1800 an hour
    _episode(rec, m, clock, force=True)
    assert m.counters()["episodes_per_hour"] is None  # two in 4 s: still no rate
    clock.t += int(EPH_MIN_SESSION_S * S)
    c = m.counters()
    assert c["episodes_per_hour"] is not None and 11.0 < c["episodes_per_hour"] < 12.1, c  # 2 in ~10 min
    assert c["session_s"] >= EPH_MIN_SESSION_S


def test_forced_episode_and_verdict_source_in_the_state(tmp_path):
    rec, m, clock = _manager(tmp_path)
    m.start(EpisodeInfo(task="t", operator="op"), force=True)  # /a never seen: not ready, forced
    s = m.status()
    assert s["state"] == "recording" and s["forced"] is True
    for _ in range(50):
        clock.t += S // 100
        rec.on_message("/a", JS, b"\x00\x01\x00\x00", clock.t)
    m.qa_at_stop = True  # as the recorder node: the full QA of the closed bag follows the stop (issue 18)
    m.stop(True)
    last = m.status()["last"]
    assert last["forced"] is True and last["verdict"] == "" and last["qa"] == "running"  # no quick verdict
    from robot_capture.episodes import Verdict

    m.verdict_ready(last["name"], Verdict(source="qa"))
    last = m.status()["last"]
    assert (last["verdict"], last["verdict_source"], last["qa"]) == ("pass", "qa", "done")


def test_bridge_offline_state_shows_no_stream_as_ok():
    gone = object.__new__(RecorderBridge)  # no rclpy: only latest() is exercised
    gone.recorder, gone._state_t = "/recorder", time.monotonic() - 30.0
    gone._state = {"state": "ready", "ready": True, "tally": "green", "reasons": [], "counters": {"kept": 3},
                   "streams": [{"topic": "/a", "name": "robot joint state", "rate_hz": 99.0, "age_s": 0.0,
                                "expected_hz": 100.0, "status": "ok"}]}
    s = gone.latest()
    assert s["state"] == "offline" and s["stale"] is True and s["ready"] is False
    assert s["streams"] == [{"topic": "/a", "name": "robot joint state", "rate_hz": None, "age_s": None,
                             "expected_hz": 100.0, "status": "unknown"}]
    assert s["counters"] == {"kept": 3} and "no state from /recorder for 30" in s["reasons"][0]
