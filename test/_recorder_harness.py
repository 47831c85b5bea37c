"""Shared helpers for the recorder/player DDS tests (imported by test_recorder_node*.py, test_player*.py).

* :class:`NodeProc` runs ``python -m robot_capture.nodes.<node>`` with a params file, in
  the test's ROS_DOMAIN_ID, and always kills it on teardown.
* :class:`TestRos` is a private rclpy context with one node and executor for publishers,
  service calls and /diagnostics.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import yaml

from ros_util import wait_until
from _cmd import module_command

REPO = Path(__file__).resolve().parents[1]


class NodeProc:
    def __init__(self, tmp_path: Path, node: str = "recorder_node", name: str = "recorder", extra_args=(),
                 **params):
        self.params_file = tmp_path / f"{name}_params.yaml"
        self.params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}, allow_unicode=True))
        self.log = tmp_path / f"{name}.log"
        self._fh = open(self.log, "wb")
        cmd = [*module_command(f"robot_capture.nodes.{node}"), "--ros-args", "-r", f"__node:={name}",
               "--params-file", str(self.params_file), *extra_args]
        self.proc = subprocess.Popen(cmd, stdout=self._fh, stderr=subprocess.STDOUT, cwd=str(REPO),
                                     env=dict(os.environ))

    def output(self) -> str:
        if not self._fh.closed:
            self._fh.flush()
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGINT, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._fh.close()


class TestRos:
    """Private rclpy context: ``node``, ``executor``; ``spin_for``, ``call``, ``wait_subscribed``."""

    __test__ = False

    def __init__(self, name="tester"):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.diagnostics = []

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)

    def spin_until(self, predicate, timeout=15.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return bool(predicate())

    def call(self, service: str, timeout=15.0):
        """Call a std_srvs/Trigger service; returns the response."""
        from std_srvs.srv import Trigger

        cli = self.node.create_client(Trigger, service)
        try:
            assert self.spin_until(cli.service_is_ready, timeout), f"service {service} not available"
            fut = cli.call_async(Trigger.Request())
            self.executor.spin_until_future_complete(fut, timeout_sec=timeout)
            assert fut.done(), f"{service} did not answer"
            return fut.result()
        finally:
            self.node.destroy_client(cli)

    def set_params(self, node_name: str, **values):
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        cli = self.node.create_client(SetParameters, f"{node_name}/set_parameters")
        try:
            assert self.spin_until(cli.service_is_ready), "set_parameters not available"
            req = SetParameters.Request()
            req.parameters = [Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
            fut = cli.call_async(req)
            self.executor.spin_until_future_complete(fut, timeout_sec=10)
            return [r.successful for r in fut.result().results]
        finally:
            self.node.destroy_client(cli)

    def listen_diagnostics(self):
        from diagnostic_msgs.msg import DiagnosticArray

        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)

    def diag_values(self, name: str) -> dict:
        """Key/values of the latest status called ``name`` ({} if none yet)."""
        for arr in reversed(self.diagnostics):
            for st in arr.status:
                if st.name == name:
                    return {kv.key: kv.value for kv in st.values} | {"_level": st.level, "_message": st.message}
        return {}

    def publisher(self, msg_type, topic, depth=1000, best_effort=False, transient_local=False):
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        q = QoSProfile(depth=depth)
        if best_effort:
            q.reliability = ReliabilityPolicy.BEST_EFFORT
        if transient_local:
            q.durability = DurabilityPolicy.TRANSIENT_LOCAL
        return self.node.create_publisher(msg_type, topic, q)

    def wait_subscribed(self, pub, n=1, timeout=20.0) -> bool:
        return self.spin_until(lambda: pub.get_subscription_count() >= n, timeout)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


def js_msg(i: int, joints: int = 6, effort=True):
    from sensor_msgs.msg import JointState

    m = JointState()
    m.header.stamp.sec, m.header.stamp.nanosec = 1000 + i // 1000, (i % 1000) * 1_000_000
    m.header.frame_id = "base"
    m.name = [f"j{k}" for k in range(joints)]
    m.position = [0.001 * i + k for k in range(joints)]
    m.velocity = [0.5 * k for k in range(joints)]
    m.effort = [1.0] * joints if effort else []
    return m


def image_msg(i: int, w: int = 64, h: int = 48):
    from sensor_msgs.msg import Image

    m = Image()
    m.header.stamp.sec = 2000 + i
    m.header.frame_id = "cam_optical_frame"
    m.height, m.width, m.encoding, m.step = h, w, "rgb8", 3 * w
    m.data = bytes((i * 7 + k) % 256 for k in range(h * w * 3))
    return m


def wait_file(path: Path, timeout=20.0) -> bool:
    return wait_until(lambda: Path(path).exists(), timeout)


def _norm(v):
    import array

    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    if isinstance(v, array.array):
        return v.tobytes() if v.typecode in "bB" else list(v)
    if hasattr(v, "tolist"):  # numpy
        return v.tolist()
    return v


def same_message(rclpy_msg, decoded) -> bool:
    """Field-by-field equality of an rclpy message and an mcap_ros2 decoded one (recursive)."""
    fields = getattr(rclpy_msg, "get_fields_and_field_types", None)
    if fields is None:
        a, b = _norm(rclpy_msg), _norm(decoded)
        if isinstance(a, bytes) and len(a) == 1 and isinstance(b, int):  # ROS `byte`: rclpy bytes, mcap_ros2 int
            a = a[0]
        if isinstance(a, list) and isinstance(b, (bytes, bytearray)):
            b = list(b)
        if isinstance(b, list) and isinstance(a, (bytes, bytearray)):
            a = list(a)
        if isinstance(a, list) and a and hasattr(a[0], "get_fields_and_field_types"):
            return len(a) == len(b) and all(same_message(x, y) for x, y in zip(a, b))
        return a == b
    return all(same_message(getattr(rclpy_msg, f), getattr(decoded, f)) for f in fields())


def check_bag_readers(bag: Path) -> dict[str, int]:
    """Read ``bag`` fully three ways and check they agree; returns {topic: count}.

    (a) mcap_ros2 decoding with the bag's own schemas, (b) rclpy deserialization of the raw
    records (BagReader), field by field equal to (a); (c) rosbags' rosbag2 Reader on the
    directory: same topics, types and counts (decoding is not asked of rosbags here: its CDR
    decoder rejects Fast-CDR's JointState padding, ENVIRONMENT.md)."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from rclpy.serialization import deserialize_message
    from rosbags.rosbag2 import Reader

    from robot_capture.bag import BagReader
    from robot_capture.nodes._qos import import_message

    r = BagReader(bag)
    raw = [(m.topic, m.type, bytes(m.data)) for m in r.messages()]
    decoded = []
    for f in r.files:
        with open(f, "rb") as h:
            for _s, ch, _m, dec in make_reader(h, decoder_factories=[DecoderFactory()]).iter_decoded_messages(
                    log_time_order=True):
                decoded.append((ch.topic, dec))
    assert len(raw) == len(decoded) == r.metadata.message_count
    by_topic_raw, by_topic_dec = {}, {}
    for t, ty, d in raw:
        by_topic_raw.setdefault(t, []).append((ty, d))
    for t, d in decoded:
        by_topic_dec.setdefault(t, []).append(d)
    for t, items in by_topic_raw.items():
        assert len(items) == len(by_topic_dec[t])
        cls = import_message(items[0][0])
        for (_ty, data), dec in zip(items, by_topic_dec[t]):
            assert same_message(deserialize_message(data, cls), dec), f"{t}: rclpy and mcap_ros2 disagree"
    counts = {t: len(v) for t, v in by_topic_raw.items()}
    with Reader(bag) as rb:
        got = {}
        for c in rb.connections:
            got[c.topic] = (c.msgtype, c.msgcount)
        assert {t: c for t, (_ty, c) in got.items() if c} == counts
        for t in counts:
            assert got[t][0] == r.topics[t].type
    return counts
