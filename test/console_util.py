"""Helpers for the console DDS tests: streams published from a thread, a recorder on them."""
from __future__ import annotations

import threading
import time

from _recorder_harness import NodeProc

RATE_HZ = 30.0       # what the pump publishes
EXPECTED_HZ = 20.0   # what the recorder is told (min_rate_fraction 0.5 -> 10 Hz: room for a loaded box)


class StreamPump:
    """Publish JointState on ``topics`` at ``RATE_HZ`` from a thread (own rclpy context).

    ``active`` is the set of topics currently published; remove one to kill that stream.
    ``joy(buttons)`` publishes one sensor_msgs/Joy on /vr/buttons.
    """

    def __init__(self, topics):
        import rclpy
        from sensor_msgs.msg import Joy, JointState

        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node("stream_pump", context=self.ctx)
        self.pubs = {t: self.node.create_publisher(JointState, t, 100) for t in topics}
        self.joy_pub = self.node.create_publisher(Joy, "/vr/buttons", 10)
        self.active = set(topics)
        self.sent = {t: 0 for t in topics}
        self._JointState, self._Joy = JointState, Joy
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        period = 1.0 / RATE_HZ
        nxt = time.monotonic()
        i = 0
        while not self._stop.is_set():
            for t in list(self.active):
                m = self._JointState()
                m.name = ["j0"]
                m.position = [float(i)]
                self.pubs[t].publish(m)
                self.sent[t] += 1
            i += 1
            nxt += period
            time.sleep(max(0.0, nxt - time.monotonic()))
            if time.monotonic() - nxt > 0.5:
                nxt = time.monotonic()

    def joy(self, buttons):
        m = self._Joy()
        m.buttons = [int(b) for b in buttons]
        m.axes = [0.0] * 2
        self.joy_pub.publish(m)

    def close(self):
        import rclpy

        self._stop.set()
        self._thread.join(5)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


def recorder(tmp_path, topics, name="recorder", **params) -> NodeProc:
    """A recorder node expecting ``topics`` at EXPECTED_HZ."""
    defaults = dict(output_dir=str(tmp_path / "out"), topics=list(topics), discovery_interval_s=0.3,
                    disk_min_free_mb=0.0, expected_streams=[f"{t}={EXPECTED_HZ}" for t in topics],
                    task="console test", operator="pytest")
    defaults.update(params)
    return NodeProc(tmp_path, name=name, **defaults)


def wait_state(client, predicate, timeout=20.0):
    """Poll the recorder's status until ``predicate(status)``; returns the last status."""
    end = time.monotonic() + timeout
    s = client.status()
    while not predicate(s) and time.monotonic() < end:
        client.spin_for(0.2)
        s = client.status()
    return s
