"""The robot for viewers over real DDS: robot_sim's and play's latched /robot_description, and
`robot-capture view` fed by a live robot_sim (a WebSocket client gets joints, /tf and the model)."""
from __future__ import annotations

import asyncio
import queue
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

T0 = 1_700_000_000_000_000_000


def _g1_xml() -> str:
    from robot_capture.view.description import robot_description

    return robot_description("g1")


def _latched_description(ctx, timeout=None):
    """Spin a fresh node (transient local, so it joins late) until /robot_description arrives."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from std_msgs.msg import String

    from ros_util import DISCOVERY_TIMEOUT_S, spin_until

    got = []
    node = rclpy.create_node("description_probe", context=ctx)
    node.create_subscription(String, "/robot_description", lambda m: got.append(m.data),
                             QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    try:
        spin_until(ex, lambda: bool(got), timeout or 3 * DISCOVERY_TIMEOUT_S)
    finally:
        ex.shutdown()
        node.destroy_node()
    return got


def _bag_with_urdf(path: Path, attach: bool) -> Path:
    from rclpy.serialization import serialize_message

    from _recorder_harness import js_msg
    from robot_capture.bag import BagWriter, WriterOptions
    from robot_capture.bag.qos import qos_profile
    from robot_capture.view.description import urdf_path

    w = BagWriter(path, WriterOptions())
    w.add_topic("/js", "sensor_msgs/msg/JointState", [qos_profile(depth=10)])
    for i in range(3):
        w.write("/js", bytes(serialize_message(js_msg(i, effort=False))), T0 + i, T0 + i)
    if attach:
        w.attach(urdf_path("g1").name, _g1_xml().encode())
    w.close()
    return path


@pytest.mark.parametrize("attach", [True, False])
def test_player_publishes_the_bags_attached_urdf_latched(tmp_path, attach):
    import rclpy
    from rclpy.parameter import Parameter

    from robot_capture.nodes.player_node import PlayerNode

    bag = _bag_with_urdf(tmp_path / "bag", attach)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = PlayerNode(parameter_overrides=[Parameter("bag", value=str(bag))], context=ctx)
        try:
            if not attach:
                assert node.description_pub is None
                return
            assert _latched_description(ctx) == [_g1_xml()]
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


class _StationPublishers(threading.Thread):
    """An rclpy node publishing a 4x2 rgb8 image, a DiagnosticArray (10 Hz) and a latched console state."""

    def __init__(self, ctx):
        super().__init__(daemon=True)
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
        from rclpy.qos import DurabilityPolicy, QoSProfile
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        self.ctx, self.halt = ctx, threading.Event()
        self.node = rclpy.create_node("station_publishers", context=ctx)
        self.img = Image(width=4, height=2, encoding="rgb8", step=12, data=bytes(24))
        self.diag = DiagnosticArray(status=[DiagnosticStatus(level=DiagnosticStatus.WARN, name="camera_head",
                                                             message="slow", values=[KeyValue(key="fps", value="29.9")])])
        self.img_pub = self.node.create_publisher(Image, "/camera/head/image_raw", 5)
        self.diag_pub = self.node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        state = self.node.create_publisher(String, "/recorder/console_state",
                                           QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        state.publish(String(data='{"state": "ready", "episode": ""}'))
        self.start()

    def run(self):
        while not self.halt.wait(0.1):
            self.img_pub.publish(self.img)
            self.diag_pub.publish(self.diag)

    def stop(self):
        self.halt.set()
        self.join(10)
        self.node.destroy_node()


def _station_publishers(ctx):
    return _StationPublishers(ctx)


@pytest.mark.xdist_group("sim_floor")
def test_view_fed_by_robot_sim(tmp_path):
    pytest.importorskip("foxglove", reason="foxglove-sdk is in the [test] extra")
    import rclpy

    from _cmd import module_command
    from robot_capture.sim.robots import load_robot
    from ros_util import start_node, stop_node
    from test_view_server import BOUND_S, _collect

    model, _ = load_robot("g1")
    pubs = None
    sim = start_node("robot_capture.nodes.robot_sim_node", {"robot": "g1", "rate_hz": 50.0})
    view = subprocess.Popen([*module_command("robot_capture.cli"), "view", "--port", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in view.stderr], daemon=True).start()
    try:
        ctx = rclpy.Context()
        rclpy.init(context=ctx)
        try:  # robot_sim's own latched description, to a subscriber that joins late
            assert _latched_description(ctx) == [_g1_xml()]
        finally:
            rclpy.shutdown(context=ctx)
        ctx = rclpy.Context()
        rclpy.init(context=ctx)
        pubs = _station_publishers(ctx)  # a camera, diagnostics and the recorder's state, as the floor has
        url, serving = None, set()
        expected = {"/joint_states", "/robot_description", "/camera/head/image_raw", "/diagnostics",
                    "/recorder/console_state"}
        said = []
        while url is None or not expected <= serving:  # connect once the view serves every topic (state)
            line = lines.get(timeout=BOUND_S)
            said.append(line)
            m = re.search(r"serving on (ws://\S+?);", line)
            url = m.group(1) if m else url
            m = re.search(r"\[view\] serving (/\S+) \(", line)
            if m:
                serving.add(m.group(1))
        want = {
            "/joint_states": lambda m: m["name"] == model.joint_names,
            "/tf": lambda m: {t["child_frame_id"] for t in m["transforms"]} >= {"left_wrist_yaw_link", "torso_link"},
            "/robot_description": lambda m: m["data"] == _g1_xml(),
            "/camera/head/image_raw": lambda m: m["width"] == 4,
            "/diagnostics": lambda m: m["status"][0]["name"] == "camera_head",
            "/recorder/console_state": lambda m: m["state"] == "ready",
        }
        seen = {}
        try:
            got = asyncio.run(asyncio.wait_for(_collect(url, want, seen), BOUND_S))
        except asyncio.TimeoutError:
            while not lines.empty():
                said.append(lines.get())
            pytest.fail(f"not all of {sorted(want)} within {BOUND_S} s; got: "
                        + "; ".join(f"{k}: {str(v)[:100 if k != '_ops' else 3000]}" for k, v in seen.items()) + "\nview said:\n" + "".join(said))
        assert got["chans"]["/tf"]["schemaName"] == "foxglove.FrameTransforms"
        assert got["/diagnostics"]["status"][0]["level"] == 1 and got["/diagnostics"]["status"][0]["values"] == [
            {"key": "fps", "value": "29.9"}]
    finally:
        if pubs is not None:
            pubs.stop()
            rclpy.shutdown(context=ctx)
        view.send_signal(signal.SIGINT)
        try:
            code = view.wait(timeout=60)
        except subprocess.TimeoutExpired:
            view.kill()
            code = view.wait()
        stop_node(sim)
    assert code == 0
