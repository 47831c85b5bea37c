"""robot-capture view: a Foxglove WebSocket client (websockets, speaking the documented
Foxglove WebSocket protocol (subprotocol foxglove.sdk.v1)) receives joints, /tf and the robot model; bad inputs get one line."""
from __future__ import annotations

import asyncio
import base64
import json
import struct
import subprocess
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("foxglove", reason="foxglove-sdk is in the [test] extra")
websockets = pytest.importorskip("websockets")

from robot_capture.sim.robots import load_robot  # noqa: E402
from robot_capture.view.description import robot_description  # noqa: E402
from robot_capture.view.server import LiveView, ViewError  # noqa: E402
from robot_capture.view.transforms import RobotTransforms  # noqa: E402

SUBPROTOCOL = "foxglove.sdk.v1"  # the SDK server speaks only this one (the app does too)
BOUND_S = 120.0  # a bound for a loaded machine, never a figure asserted


def _decoder(channel):
    """Payload -> dict for a JSON or a protobuf channel (its FileDescriptorSet from the advertise)."""
    if channel["encoding"] == "json":
        return lambda b: json.loads(b)
    from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

    fds = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(channel["schema"]))
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(channel["schemaName"]))
    return lambda b: json_format.MessageToDict(cls.FromString(b), preserving_proto_field_name=True)


async def _collect(url: str, want: dict, seen: dict | None = None, **kw) -> dict:
    """Subscribe to every advertised channel in ``want`` ({topic: predicate(msg) -> bool}) and
    return {topic: first message satisfying it}. ``seen``: filled with {topic: last message}
    as they come (what a test that timed out did get)."""
    got, chans, subs = {}, {}, {}
    seen = {} if seen is None else seen
    async with websockets.connect(url, subprotocols=[SUBPROTOCOL], max_size=None, **kw) as ws:
        while len(got) < len(want):
            frame = await ws.recv()
            if isinstance(frame, str):
                op = json.loads(frame)
                seen.setdefault("_ops", []).append({k: v for k, v in op.items() if k in ("op", "channelIds", "message", "level")}
                                                   | {"ids": [(c["id"], c["topic"]) for c in op.get("channels", [])]})
                if op.get("op") == "advertise":
                    new = []
                    for ch in op["channels"]:
                        if ch["topic"] in want and ch["topic"] not in chans:
                            chans[ch["topic"]] = ch
                            sid = len(subs) + 1
                            subs[sid] = (ch["topic"], _decoder(ch))
                            new.append({"id": sid, "channelId": ch["id"]})
                    if new:
                        await ws.send(json.dumps({"op": "subscribe", "subscriptions": new}))
                continue
            if frame[0] != 0x01:
                continue
            sid, _ts = struct.unpack_from("<IQ", frame, 1)
            topic, decode = subs[sid]
            msg = decode(frame[13:])
            seen[topic] = msg
            if topic not in got and want[topic](msg):
                got[topic] = msg
    return {"chans": chans, **got}


class _Feeder(threading.Thread):
    """A fake source: the G1's joint states into the view until stopped."""

    def __init__(self, view, model, q):
        super().__init__(daemon=True)
        self.view, self.model, self.q, self.stop = view, model, q, threading.Event()

    def run(self):
        k = 0
        while not self.stop.wait(0.01):
            k += 1
            self.view.joint_state("/joint_states", 1_000_000_000 + k * 10_000_000, self.model.joint_names, self.q,
                                  np.zeros(self.model.nq), ())


@pytest.fixture
def g1():
    model, _ = load_robot("g1")
    return model


def test_client_receives_joints_tf_and_the_robot_model(g1):
    view = LiveView(port=0, tf_max_hz=0)
    feeder = None
    try:
        xml = robot_description("g1")
        view.robot_description(xml)
        q = g1.random_configuration(np.random.default_rng(3))
        feeder = _Feeder(view, g1, q)
        feeder.start()
        want = {
            "/joint_states": lambda m: m["name"] == g1.joint_names,
            "/tf": lambda m: len(m["transforms"]) == g1.nq,
            "/tf_static": lambda m: True,
            "/robot_description": lambda m: True,
        }
        got = asyncio.run(asyncio.wait_for(_collect(view.url, want), BOUND_S))
    finally:
        if feeder is not None:
            feeder.stop.set()
        view.stop()
    assert got["chans"]["/tf"]["schemaName"] == "foxglove.FrameTransforms"
    assert got["chans"]["/robot_description"]["schemaName"] == "std_msgs/msg/String"
    assert got["/robot_description"]["data"] == xml
    np.testing.assert_allclose(got["/joint_states"]["position"], q)
    # the transforms the client got, composed root-to-link, are the FK of the published joints
    ref = RobotTransforms(xml)
    ref.update(g1.joint_names, q)
    expected = ref.link_poses()
    from scipy.spatial.transform import Rotation

    tf = {}
    for t in got["/tf"]["transforms"] + got["/tf_static"]["transforms"]:
        T = np.eye(4)
        r = t.get("rotation", {})
        T[:3, :3] = Rotation.from_quat([r.get(k, 0.0) for k in "xyzw"]).as_matrix()
        T[:3, 3] = [t.get("translation", {}).get(k, 0.0) for k in "xyz"]
        tf[t["child_frame_id"]] = (t["parent_frame_id"], T)

    def pose(link):
        if link == ref.root:
            return np.eye(4)
        parent, T = tf[link]
        return pose(parent) @ T

    for link in ("left_wrist_yaw_link", "right_wrist_yaw_link", "torso_link"):
        np.testing.assert_allclose(pose(link), expected[link], atol=1e-6)
        np.testing.assert_allclose(pose(link), g1.fk(q, link), atol=1e-6)


def test_off_loopback_needs_the_token(g1):
    with pytest.raises(ViewError, match="reachable from other machines: give --token"):
        LiveView(host="0.0.0.0", port=0)
    view = LiveView(host="0.0.0.0", port=0, token="s3cret-token", tf_max_hz=0)
    feeder = _Feeder(view, g1, g1.neutral())
    feeder.start()
    try:
        assert view.gate is not None and view.port == view.gate.port
        url = f"ws://127.0.0.1:{view.port}"
        with pytest.raises(websockets.exceptions.InvalidStatus) as err:
            asyncio.run(asyncio.wait_for(_collect(url, {"/joint_states": lambda m: True}), BOUND_S))
        assert err.value.response.status_code == 401
        with pytest.raises(websockets.exceptions.InvalidStatus):
            asyncio.run(asyncio.wait_for(_collect(url + "/?token=wrong-token", {"/joint_states": lambda m: True}),
                                         BOUND_S))
        assert view.gate.refused == 2
        got = asyncio.run(asyncio.wait_for(
            _collect(url + "/?token=s3cret-token", {"/joint_states": lambda m: True}), BOUND_S))
        assert got["/joint_states"]["name"] == g1.joint_names
    finally:
        feeder.stop.set()
        view.stop()


def test_cameras_and_episode_state_reach_the_client():
    view = LiveView(port=0)
    stop = threading.Event()
    rgb = bytes(range(256)) * 9  # 32 x 24 rgb8 = 2304 bytes

    def feed():
        k = 0
        while not stop.wait(0.02):
            k += 1
            view.raw_image("/camera/head/image_raw", k, "head_camera", 32, 24, "rgb8", 96, rgb)
            view.compressed_image("/camera/wrist/image_raw/compressed", k, "wrist_camera", "jpeg", b"\xff\xd8jpeg")
            view.compressed_video("/camera/head/video", k, "head_camera", "h264", b"\x00\x00\x00\x01\x67")
        # a latched message logged once, before any client: a late subscriber still gets it

    view.json_message("/recorder/console_state", 5, {"state": "ready", "episode": ""}, latched=True)
    # a source declares its topics when it subscribes, before their first message (see LiveView.declare)
    view.declare("/camera/head/image_raw", "raw_image")
    view.declare("/camera/wrist/image_raw/compressed", "compressed_image")
    view.declare("/camera/head/video", "compressed_video")
    t = threading.Thread(target=feed, daemon=True)
    t.start()
    try:
        want = {"/camera/head/image_raw": lambda m: True, "/camera/wrist/image_raw/compressed": lambda m: True,
                "/camera/head/video": lambda m: True, "/recorder/console_state": lambda m: True}
        got = asyncio.run(asyncio.wait_for(_collect(view.url, want), BOUND_S))
    finally:
        stop.set()
        view.stop()
    raw = got["/camera/head/image_raw"]
    assert (raw["width"], raw["height"], raw["encoding"], raw["step"], raw["frame_id"]) == (32, 24, "rgb8", 96,
                                                                                            "head_camera")
    assert base64.b64decode(raw["data"]) == rgb
    assert got["chans"]["/camera/head/image_raw"]["schemaName"] == "foxglove.RawImage"
    assert got["/camera/wrist/image_raw/compressed"]["format"] == "jpeg"
    assert got["chans"]["/camera/head/video"]["schemaName"] == "foxglove.CompressedVideo"
    assert got["/camera/head/video"]["format"] == "h264"
    assert got["/recorder/console_state"] == {"state": "ready", "episode": ""}


def test_a_busy_port_is_one_line():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = _view_cli("--port", str(s.getsockname()[1]))
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "cannot serve the live view on 127.0.0.1:" in lines[0], r.stderr


def test_a_joint_state_without_positions_is_served_and_counted(g1):
    """A driver that sends names with no positions (velocities only): the JSON is served, no /tf
    comes from it, it is counted, and nothing raises (an exception would end the view's executor)."""
    view = LiveView(port=0, tf_max_hz=0)
    try:
        view.robot_description(robot_description("g1"))
        view.joint_state("/joint_states", 1, g1.joint_names, [], np.zeros(g1.nq))
        view.joint_state("/joint_states", 2, g1.joint_names, [], np.zeros(g1.nq))
        assert view.bad_states == 2
    finally:
        view.stop()


def test_ros_source_guard_drops_a_bad_message_and_keeps_going():
    from robot_capture.view.ros_source import RosSource

    src = RosSource.__new__(RosSource)
    src.failed = set()
    calls = []

    def bad(msg):
        calls.append(msg)
        raise TypeError("unexpected field")

    cb = src._guard("/camera/x")(bad)
    cb(1)
    cb(2)  # no raise, still called
    assert calls == [1, 2] and src.failed == {"/camera/x"}


def test_malformed_description_changes_nothing():
    view = LiveView(port=0)
    try:
        with pytest.raises(ValueError, match="malformed XML"):
            view.robot_description("<robot name='x'><link name='a'></robot>")
        assert view.transforms is None
    finally:
        view.stop()


def _view_cli(*args) -> subprocess.CompletedProcess:
    from _cmd import module_command

    return subprocess.run([*module_command("robot_capture.cli"), "view", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("args, says", [
    (["--robot", "g2"], "unknown robot"),
    (["--urdf", "/nonexistent/robot.urdf"], "/nonexistent/robot.urdf does not exist"),
    (["--host", "0.0.0.0"], "give --token"),
    (["--host", "0.0.0.0", "--token", "short"], "at least 8 characters"),
    (["--rate", "nan"], "--rate nan must be finite"),
])
def test_cli_bad_inputs_one_line(args, says):
    r = _view_cli(*args)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and says in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_missing_foxglove_sdk_says_how_to_install(monkeypatch):
    import robot_capture.view.server as server

    monkeypatch.setitem(sys.modules, "foxglove", None)  # import foxglove -> ImportError
    with pytest.raises(ViewError, match=r"needs foxglove-sdk: pip install 'robot_capture\[view\]'"):
        server.LiveView(port=0)
