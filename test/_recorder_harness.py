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
import sys
import time
from pathlib import Path

import yaml

from ros_util import wait_until

REPO = Path(__file__).resolve().parents[1]


class NodeProc:
    def __init__(self, tmp_path: Path, node: str = "recorder_node", name: str = "recorder", extra_args=(),
                 **params):
        self.params_file = tmp_path / f"{name}_params.yaml"
        self.params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}, allow_unicode=True))
        self.log = tmp_path / f"{name}.log"
        self._fh = open(self.log, "wb")
        cmd = [sys.executable, "-m", f"robot_capture.nodes.{node}", "--ros-args", "-r", f"__node:={name}",
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
