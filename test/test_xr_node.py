"""The xr node over real DDS and a real TLS WebSocket: a scripted headset's frames reach the /vr topics
with station-time stamps, bad frames are answered and never published, /xr/latency is published."""
from __future__ import annotations

import math
import time

import pytest

pytestmark = pytest.mark.ros

from _xr_frames import HEADSET_AHEAD_S, Headset, free_port, port_open  # noqa: E402


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
    good = frame(head=(0.0, 1.6, -1.0, 0, 0, 0, 1), controllers=ctrl)
    bad = frame()
    bad["head"][6] = float("nan")
    send_bad = []  # the test appends one NaN frame once the stream is flowing (frames sent before DDS
    #                discovery completes are lost to a volatile subscriber, so the headset keeps streaming)

    def stream():
        return send_bad.pop() if send_bad else good

    headset = None
    try:
        # the node serves once it has bound its port (state: a TCP connect succeeds)
        def serving():
            assert proc.poll() is None, proc.stdout.read()
            return port_open(port)

        assert spin_until(ex, serving, timeout=60)
        headset = Headset(f"wss://127.0.0.1:{port}/ws", [], stream=stream)
        headset.start()
        assert spin_until(ex, lambda: got["head"] and got["left_hand"] and got["buttons"], timeout=60)
        send_bad.append(bad)
        assert spin_until(ex, lambda: any(m["type"] == "error" for m in list(headset.replies)), timeout=60)
        n = len(got["head"])
        assert spin_until(ex, lambda: len(got["head"]) >= n + 5, timeout=60)  # the stream goes on after it
        assert spin_until(ex, lambda: any(
            kv.key == "frames" and int(kv.value) > 0 for a in got["latency"] for s in a.status for kv in s.values))
    finally:
        if headset is not None:
            headset.stop.set()
            headset.join(10)
        code, out = stop_node(proc)
    heads = got["head"]
    assert all(math.isfinite(h.pose.orientation.w) for h in heads), "the NaN frame must not be published"
    h = heads[0]
    assert h.header.frame_id == "vr_world"
    assert all((h.pose.position.x, h.pose.position.y, h.pose.position.z) == pytest.approx((1.0, 0.0, 1.6))
               for h in heads)
    stamp = h.header.stamp.sec + h.header.stamp.nanosec * 1e-9
    assert abs(stamp - time.time()) < HEADSET_AHEAD_S / 2, "stamp must be station time, not the headset's"
    assert len(got["left_hand"][0].poses) == 26
    assert list(got["buttons"][0].buttons[:6]) == [1, 0, 0, 0, 0, 0]
    errors = [m for m in headset.replies if m["type"] == "error"]
    assert any("NaN" in m["reason"] for m in errors), headset.replies
    assert code == 0, out
    assert (tmp_path / ".config" / "robot_capture" / "xr" / "xr-cert.pem").is_file()  # made once, kept


def test_the_retarget_node_follows_the_headset_wrists(ros_node, tmp_path, monkeypatch):
    """xr node + retarget node (source vr), unchanged topic contract: the command follows the wrists."""
    import numpy as np
    from sensor_msgs.msg import JointState

    from ros_util import loose_mapping, spin_until, start_node, stop_node

    node, ex = ros_node
    cmds = []
    node.create_subscription(JointState, "/retarget/joint_command", cmds.append, 100)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("ROBOT_CAPTURE_CONFIG", raising=False)
    port = free_port()
    mapping = loose_mapping(tmp_path)
    xr = start_node("robot_capture.nodes.xr_node", {"port": port, "recorder": "/xr_test_no_recorder"})
    rt = start_node("robot_capture.nodes.retarget_node", {"robot": str(mapping), "source": "vr", "rate_hz": 0.0,
                                                          "diagnostics_rate_hz": 0.0})
    # WebXR local-floor: head 1.6 m up; right controller (the right wrist) hanging, then raised forward
    low, high = [0.2, 0.85, -0.05, 0, 0, 0, 1], [0.2, 1.35, -0.45, 0, 0, 0, 1]
    phase = {"right": low}

    def stream():
        return {"type": "frame", "head": [0.0, 1.6, 0.0, 0, 0, 0, 1], "controllers": {
            "left": {"pose": [-0.2, 0.85, -0.05, 0, 0, 0, 1], "buttons": [], "axes": []},
            "right": {"pose": phase["right"], "buttons": [], "axes": []}}}

    headset = None
    try:
        def serving():
            assert xr.poll() is None and rt.poll() is None
            return port_open(port)

        assert spin_until(ex, serving, timeout=60)
        headset = Headset(f"wss://127.0.0.1:{port}/ws", [], stream=stream)
        headset.start()
        assert spin_until(ex, lambda: len(cmds) >= 20, timeout=60), "no command from the headset's poses"
        names = list(cmds[-1].name)
        joint = names.index("right_shoulder_pitch_joint")

        def settled():  # the last 10 commands within 1 mrad of each other: the command has arrived
            q = [c.position[joint] for c in cmds[-10:]]
            return len(q) == 10 and max(q) - min(q) < 1e-3

        assert spin_until(ex, settled, timeout=60)
        q_low = cmds[-1].position[joint]
        n = len(cmds)
        phase["right"] = high
        assert spin_until(ex, lambda: len(cmds) > n + 10 and settled(), timeout=60)
        q_high = cmds[-1].position[joint]
    finally:
        if headset is not None:
            headset.stop.set()
            headset.join(10)
        code_rt, out_rt = stop_node(rt)
        code_xr, out_xr = stop_node(xr)
    # raising the hand forward pitches the shoulder forward (negative pitch on the G1) by a large angle
    assert q_high - q_low < -0.3, (q_low, q_high)
    assert np.isfinite([c.position for c in cmds[-20:]]).all()
    assert code_rt == 0 and code_xr == 0, out_rt + out_xr
