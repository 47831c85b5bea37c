"""The live view's rclpy shell: subscribes to the station's topics and feeds a :class:`~.server.LiveView`.

Topics are found by type (the graph is looked at every ``discover_every_s``), so a camera or a
recorder that starts later is picked up:

* ``sensor_msgs/msg/JointState`` -> joints (``/joint_states`` also drives ``/tf``);
* ``sensor_msgs/msg/Image`` / ``CompressedImage`` -> RawImage / CompressedImage;
* ``foxglove_msgs/msg/CompressedVideo`` -> CompressedVideo, when that message package is installed
  (the record-time video encoder's topics; otherwise they are listed once as not served);
* ``diagnostic_msgs/msg/DiagnosticArray`` -> JSON;
* ``/robot_description`` (std_msgs/String, transient local) -> the robot model, unless one was given;
* ``<recorder>/console_state`` (std_msgs/String JSON, transient local) -> the episode state.

rclpy is imported inside functions (DESIGN: only nodes/ imports it at module level).
"""
from __future__ import annotations

import json
import logging

from robot_capture.view import description

log = logging.getLogger(__name__)

SERVED_TYPES = ("sensor_msgs/msg/JointState", "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage",
                "diagnostic_msgs/msg/DiagnosticArray", "std_msgs/msg/String", "foxglove_msgs/msg/CompressedVideo")


_KIND = {"sensor_msgs/msg/JointState": "joint_state", "sensor_msgs/msg/Image": "raw_image",
         "sensor_msgs/msg/CompressedImage": "compressed_image", "diagnostic_msgs/msg/DiagnosticArray": "diagnostics",
         "std_msgs/msg/String": "description", "foxglove_msgs/msg/CompressedVideo": "compressed_video"}


class _Guarded:
    """``node.create_subscription`` with each callback wrapped by ``guard``."""

    def __init__(self, node, guard):
        self.node, self.guard = node, guard

    def create_subscription(self, msg_type, topic, callback, qos):
        return self.node.create_subscription(msg_type, topic, self.guard(callback), qos)


def _ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def diagnostics_dict(msg) -> dict:
    """``diagnostic_msgs/DiagnosticArray`` -> its JSON form (level as an int: 0 OK, 1 WARN, 2 ERROR, 3 STALE)."""
    return {"header": {"stamp": {"sec": msg.header.stamp.sec, "nsec": msg.header.stamp.nanosec},
                       "frame_id": msg.header.frame_id},
            "status": [{"level": int.from_bytes(bytes(s.level), "little") if isinstance(s.level, (bytes, bytearray))
                        else int(s.level), "name": s.name, "message": s.message, "hardware_id": s.hardware_id,
                        "values": [{"key": kv.key, "value": kv.value} for kv in s.values]} for s in msg.status]}


class RosSource:
    """Subscriptions of one rclpy node feeding ``view``.

    Args:
        node: an rclpy node (its executor is the caller's).
        view: the :class:`~.server.LiveView`.
        recorder: the recorder's node name (``/recorder``): its ``console_state`` is the episode state.
        topics: only these topics ("" / empty = every topic of a served type).
        own_description: True when the robot model was given (``--robot``/``--urdf``): the floor's
            ``/robot_description`` is then not used.
        discover_every_s: graph look-up period, s.
    """

    def __init__(self, node, view, recorder: str = "/recorder", topics=(), own_description: bool = False,
                 discover_every_s: float = 1.0):
        self.node, self.view = node, view
        self.state_topic = "/" + recorder.strip("/") + "/console_state"
        self.topics = {"/" + t.lstrip("/") for t in topics if t}
        self.own_description = own_description
        self.subs: dict[str, object] = {}
        self.skipped: set[str] = set()
        self.failed: set[str] = set()  # topics with a message the view could not serve
        self.discover()
        node.create_timer(discover_every_s, self.discover)

    def discover(self) -> None:
        """Subscribe to every new topic of a served type."""
        for topic, types in self.node.get_topic_names_and_types():
            if topic in self.subs or topic in self.skipped or (self.topics and topic not in self.topics):
                continue
            kind = next((t for t in types if t in SERVED_TYPES), None)
            if kind is None:
                continue
            try:
                sub = self._subscribe(topic, kind, self._guard(topic))
            except ImportError:
                self.skipped.add(topic)
                log.warning("%s (%s): message package not installed; not served", topic, kind)
                continue
            if sub is not None:
                self.view.declare(topic, _KIND[kind] if topic != self.state_topic else "json")
                self.subs[topic] = sub
                log.info("serving %s (%s)", topic, kind)

    def _guard(self, topic: str):
        """A wrapper for a topic's callback: a message the view cannot serve is logged (once per
        topic) and dropped, never raised into the executor (which would end the view)."""
        def wrap(fn):
            def call(msg):
                try:
                    fn(msg)
                except Exception as exc:  # noqa: BLE001 - one bad message must not end the live view
                    if topic not in self.failed:
                        self.failed.add(topic)
                        log.error("%s: a message could not be served (%s: %s); later ones are dropped silently",
                                  topic, type(exc).__name__, exc)
            return call
        return wrap

    def _subscribe(self, topic: str, kind: str, guard=lambda fn: fn):
        from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data

        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        v, n = self.view, _Guarded(self.node, guard)
        if kind == "std_msgs/msg/String":
            from std_msgs.msg import String

            if topic == description.TOPIC and not self.own_description:
                return n.create_subscription(String, topic, self._on_description, latched)
            if topic == self.state_topic:
                return n.create_subscription(String, topic, lambda m: self._on_state(topic, m), latched)
            return None
        if kind == "sensor_msgs/msg/JointState":
            from sensor_msgs.msg import JointState

            return n.create_subscription(JointState, topic, lambda m: v.joint_state(
                topic, _ns(m.header), m.name, m.position, m.velocity, m.effort), qos_profile_sensor_data)
        if kind == "sensor_msgs/msg/Image":
            from sensor_msgs.msg import Image

            return n.create_subscription(Image, topic, lambda m: v.raw_image(
                topic, _ns(m.header), m.header.frame_id, m.width, m.height, m.encoding, m.step, bytes(m.data)),
                qos_profile_sensor_data)
        if kind == "sensor_msgs/msg/CompressedImage":
            from sensor_msgs.msg import CompressedImage

            return n.create_subscription(CompressedImage, topic, lambda m: v.compressed_image(
                topic, _ns(m.header), m.header.frame_id, m.format, bytes(m.data)), qos_profile_sensor_data)
        if kind == "diagnostic_msgs/msg/DiagnosticArray":
            from diagnostic_msgs.msg import DiagnosticArray

            return n.create_subscription(DiagnosticArray, topic, lambda m: v.json_message(
                topic, _ns(m.header), diagnostics_dict(m), "diagnostic_msgs/msg/DiagnosticArray"), 10)
        if kind == "foxglove_msgs/msg/CompressedVideo":  # the video encoder's frames (issue 21): the hook
            from foxglove_msgs.msg import CompressedVideo  # ImportError: not installed, said once

            return n.create_subscription(CompressedVideo, topic, lambda m: v.compressed_video(
                topic, m.timestamp.sec * 1_000_000_000 + m.timestamp.nanosec, m.frame_id, m.format, bytes(m.data)),
                qos_profile_sensor_data)
        return None

    def _on_description(self, msg) -> None:
        try:
            self.view.robot_description(msg.data)
        except ValueError as exc:  # a malformed URDF on the floor: said, the view keeps serving
            log.error("%s is not a usable URDF: %s", description.TOPIC, exc)

    def _on_state(self, topic: str, msg) -> None:
        try:
            obj = json.loads(msg.data)
        except ValueError:
            obj = {"text": msg.data}
        import time

        self.view.json_message(topic, time.time_ns(), obj if isinstance(obj, dict) else {"value": obj},
                               latched=True)
