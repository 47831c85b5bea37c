"""A headset records an episode through a real recorder: its controller button starts it, the tally it gets
turns red, /vr/* and /xr/latency land in the bag, and losing the headset mid-episode stops the episode as
``stream_lost`` (flagged, never kept as a silent success) with the xr node's ERROR on /diagnostics."""
from __future__ import annotations

import pytest

from _xr_frames import Headset, free_port, port_open

pytestmark = pytest.mark.ros

TOPICS = ["/vr/head", "/vr/left_wrist", "/vr/right_wrist", "/vr/buttons", "/xr/latency", "/diagnostics"]


def test_button_start_red_tally_bag_and_lost_headset(ros_node, tmp_path, monkeypatch):
    from pathlib import Path

    from diagnostic_msgs.msg import DiagnosticArray

    from console_util import recorder
    from robot_capture.bag import BagReader
    from robot_capture.episodes import load_episode
    from ros_util import spin_until, start_node, stop_node

    node, ex = ros_node
    latency, diags = [], []
    node.create_subscription(DiagnosticArray, "/xr/latency", latency.append, 50)
    node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 50)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("ROBOT_CAPTURE_CONFIG", raising=False)
    rec = recorder(tmp_path, TOPICS, expected_streams=["/vr/head=20.0"])  # only the headset stream is gated
    port = free_port()
    xr = start_node("robot_capture.nodes.xr_node", {"port": port, "recorder": "/recorder"})
    buttons = {"right": [0] * 6}

    def stream():
        return {"type": "frame", "head": [0.0, 1.6, 0.0, 0, 0, 0, 1], "controllers": {
            "right": {"pose": [0.2, 1.0, -0.3, 0, 0, 0, 1], "buttons": buttons["right"], "axes": [0, 0, 0, 0]}}}

    headset = Headset(f"wss://127.0.0.1:{port}/ws", [], stream=stream)

    def tally():
        t = [m for m in list(headset.replies) if m["type"] == "tally"]
        return t[-1] if t else {}

    try:
        def serving():
            assert xr.poll() is None and rec.alive(), rec.output()
            return port_open(port)

        assert spin_until(ex, serving, timeout=60)
        headset.start()
        assert spin_until(ex, lambda: tally().get("tally") == "green", timeout=60), (tally(), rec.output())
        buttons["right"] = [1, 0, 0, 0, 0, 0]  # trigger: config/console_joy.yaml button 0 = toggle -> start
        assert spin_until(ex, lambda: tally().get("tally") == "red", timeout=30), (tally(), rec.output())
        buttons["right"] = [0] * 6
        episode = tally()["text"].removeprefix("REC ").strip()
        n = len(latency)
        assert spin_until(ex, lambda: len(latency) >= n + 2, timeout=30)  # two /xr/latency windows recorded
        headset.stop.set()  # the headset goes away mid-episode
        headset.join(10)
        bag = Path(tmp_path / "out" / episode)

        def stopped():
            try:
                return load_episode(bag).stop_reason == "stream_lost"
            except Exception:  # noqa: BLE001 - still being recorded
                return False

        assert spin_until(ex, stopped, timeout=60), rec.output()
    finally:
        headset.stop.set()
        code_xr, out_xr = stop_node(xr)
        code_rec = rec.stop()
    assert any(s.name == "xr" and s.level == b"\x02" and "during episode" in s.message
               for a in diags for s in a.status), (sorted({(s.level, s.message[:90]) for a in diags for s in a.status
                                                          if s.name == "xr"}), out_xr)
    ep = load_episode(bag)
    assert ep.custom_data["episode.lost_streams"] == "/vr/head"
    counts = {t: c.count for t, c in BagReader(bag).topics.items()}
    assert counts.get("/vr/head", 0) > 0 and counts.get("/vr/buttons", 0) > 0, counts
    assert counts.get("/xr/latency", 0) >= 2, counts
    assert "connection lost during episode" in out_xr
    assert code_xr == 0 and code_rec == 0, out_xr + rec.output()
