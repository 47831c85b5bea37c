"""The xr node over real DDS and a real TLS WebSocket: a scripted headset's frames reach the /vr topics
with station-time stamps, bad frames are answered and never published, /xr/latency is published."""
from __future__ import annotations

import json
import math
import socket
import ssl
import threading
import time

import pytest

pytestmark = pytest.mark.ros

HEADSET_AHEAD_S = 1000.0  # the scripted headset's clock runs 1000 s ahead of the station's


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Headset(threading.Thread):
    """A scripted headset: answers pings on its own clock, sends ``frames`` (dicts) once synced."""

    def __init__(self, url: str, frames):
        super().__init__(daemon=True)
        self.url, self.frames = url, frames
        self.replies, self.done, self.stop = [], threading.Event(), threading.Event()

    def clock_ms(self) -> float:
        return (time.time() + HEADSET_AHEAD_S) * 1e3

    def run(self):
        from websockets.sync.client import connect

        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # the station's self-signed certificate
        with connect(self.url, ssl=ctx) as ws:
            sent = False
            while not self.stop.is_set():
                try:
                    m = json.loads(ws.recv(timeout=0.2))
                except TimeoutError:
                    continue
                self.replies.append(m)
                if m["type"] == "ping":
                    t1 = self.clock_ms()
                    ws.send(json.dumps({"type": "pong", "id": m["id"], "t1": t1, "t2": self.clock_ms()}))
                    if not sent:
                        for f in self.frames:
                            ws.send(json.dumps(dict(f, t=self.clock_ms())))
                        sent = True
                        self.done.set()


def test_headset_frames_reach_the_vr_topics(ros_node, tmp_path, monkeypatch):
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseArray, PoseStamped
    from sensor_msgs.msg import Joy

    from _xr_frames import frame
    from ros_util import spin_until, start_node, stop_node

    node, ex = ros_node
    got = {"head": [], "left_hand": [], "buttons": [], "latency": []}
    node.create_subscription(PoseStamped, "/vr/head", got["head"].append, 50)
    node.create_subscription(PoseArray, "/vr/left_hand", got["left_hand"].append, 50)
    node.create_subscription(Joy, "/vr/buttons", got["buttons"].append, 50)
    node.create_subscription(DiagnosticArray, "/xr/latency", got["latency"].append, 50)

    monkeypatch.setenv("HOME", str(tmp_path))  # the node makes its certificate under ~/.config
    monkeypatch.delenv("ROBOT_CAPTURE_CONFIG", raising=False)
    port = free_port()
    proc = start_node("robot_capture.nodes.xr_node", {"port": port, "recorder": "/xr_test_no_recorder"})
    ctrl = {"right": {"pose": [0.2, 1.0, -0.3, 0, 0, 0, 1], "buttons": [1, 0, 0, 0, 0, 0], "axes": [0, 0, 0, 0]}}
    bad = frame(seq=1)
    bad["head"][6] = float("nan")
    frames = [frame(seq=0, head=(0.0, 1.6, -1.0, 0, 0, 0, 1), controllers=ctrl), bad,
              frame(seq=2, head=(0.0, 1.7, -1.0, 0, 0, 0, 1), controllers=ctrl)]
    headset = None
    try:
        # the node serves once it has bound its port (state: a TCP connect succeeds)
        def serving():
            assert proc.poll() is None, proc.stdout.read()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        assert spin_until(ex, serving, timeout=60)
        headset = Headset(f"wss://127.0.0.1:{port}/ws", frames)
        headset.start()
        assert spin_until(ex, lambda: len(got["head"]) >= 2 and got["left_hand"] and got["buttons"], timeout=60)
        assert spin_until(ex, lambda: any(
            kv.key == "frames" and int(kv.value) > 0 for a in got["latency"] for s in a.status for kv in s.values))
    finally:
        if headset is not None:
            headset.stop.set()
            headset.join(10)
        code, out = stop_node(proc)
    heads = got["head"]
    assert len(heads) == 2, "the NaN frame must not be published"
    assert all(math.isfinite(h.pose.orientation.w) for h in heads)
    h = heads[0]
    assert h.header.frame_id == "vr_world"
    assert (h.pose.position.x, h.pose.position.y, h.pose.position.z) == pytest.approx((1.0, 0.0, 1.6))
    stamp = h.header.stamp.sec + h.header.stamp.nanosec * 1e-9
    assert abs(stamp - time.time()) < HEADSET_AHEAD_S / 2, "stamp must be station time, not the headset's"
    assert len(got["left_hand"][0].poses) == 26
    assert list(got["buttons"][0].buttons[:6]) == [1, 0, 0, 0, 0, 0]
    errors = [m for m in headset.replies if m["type"] == "error"]
    assert any("NaN" in m["reason"] for m in errors), headset.replies
    assert code == 0, out
    assert (tmp_path / ".config" / "robot_capture" / "xr" / "xr-cert.pem").is_file()  # made once, kept
