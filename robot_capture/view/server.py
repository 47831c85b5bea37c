"""The live view: the station's topics on ``foxglove-sdk``'s WebSocket server (ROS-free core).

Fed by a source (the rclpy shell :mod:`robot_capture.view.ros_source`, or a test), it serves:

====================  ==============================  ======================================
channel               schema (encoding)               from
====================  ==============================  ======================================
``/joint_states``     ``sensor_msgs/msg/JointState``  joint states at most ``tf_max_hz`` (JSON:
                      (json)                          header, name, position rad|m, velocity, effort)
``/tf``               ``foxglove.FrameTransforms``    moving joints per joint state, at most
                      (protobuf)                      ``tf_max_hz`` (default 30 Hz: a viewer's
                                                      frame rate, not the robot's 500 Hz)
``/tf_static``        ``foxglove.FrameTransforms``    fixed joints, re-sent to each subscriber
``/robot_description`` ``std_msgs/msg/String`` (json) the URDF (``{"data": xml}``), re-sent to
                                                      each subscriber (the WebSocket has no latching)
``/diagnostics``      ``diagnostic_msgs/msg/...``     as received (JSON)
``<rec>/console_state`` JSON object                   the recorder's episode state (console/bridge.py)
camera topics         ``foxglove.RawImage`` |         ``sensor_msgs/Image`` |
                      ``foxglove.CompressedImage`` |  ``CompressedImage`` |
                      ``foxglove.CompressedVideo``    :meth:`LiveView.compressed_video` (the
                                                      video encoder's frames: the hook)
====================  ==============================  ======================================

Transforms come from :class:`~robot_capture.view.transforms.RobotTransforms` (REP-105: each
link's pose in its parent link, m, quaternion x y z w), so Foxglove's 3D panel shows the robot
from ``/robot_description`` + ``/tf`` without ``robot_state_publisher``.

Binding: loopback only unless a token is given (:func:`robot_capture.console.web.check_bind`,
the console's rule). Off loopback the SDK server still binds 127.0.0.1 and
:class:`~robot_capture.view.token_gate.TokenGate` listens on the requested address, letting
through only upgrades that carry the console token (``?token=``, ``Authorization: Bearer``).
"""
from __future__ import annotations

import json
import logging
import threading
import time

from robot_capture.view import description
from robot_capture.view.transforms import LinkTransform, RobotTransforms

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'robot_capture[view]' (or: pip install foxglove-sdk)"
#: ``/tf`` rate cap, Hz: a screen's frame rate; the robot's 500 Hz joint states would flood a laptop's link
TF_MAX_HZ = 30.0
#: what each input is served as (LiveView.declare); "json:<name>" = JSON with that schema name
KINDS = {"joint_state": "json:sensor_msgs/msg/JointState", "raw_image": "RawImage",
         "compressed_image": "CompressedImage", "compressed_video": "CompressedVideo",
         "diagnostics": "json:diagnostic_msgs/msg/DiagnosticArray", "json": "json",
         "transforms": "FrameTransforms", "description": f"json:{description.TYPE}"}
#: a new subscriber to a latched channel gets its last message after these delays, s
RESEND_AFTER_S = (0.1, 1.0)


class ViewError(RuntimeError):
    """A live view that cannot start: a missing package, a busy port, a bad bind (one line)."""


def import_foxglove():
    """The ``foxglove`` module (PyPI ``foxglove-sdk``); ViewError saying how to install it."""
    try:
        import foxglove
        import foxglove.channels  # noqa: F401 - the typed channels (FrameTransformsChannel, RawImageChannel, ...)
        import foxglove.messages  # noqa: F401 - the message classes
    except ImportError:
        raise ViewError(f"the live view needs foxglove-sdk: {INSTALL_HINT}") from None
    return foxglove


def _ts(fg, stamp_ns: int):
    return fg.messages.Timestamp(*divmod(int(stamp_ns), 1_000_000_000))


def _json_schema(fg, name: str):
    return fg.Schema(name=name, encoding="jsonschema", data=b"")


class LiveView:
    """A running Foxglove WebSocket server and its channels.

    Args:
        host: address to serve (default loopback); any other needs ``token`` (>= 8 characters).
        port: TCP port (0 = any free one, see :attr:`port`).
        token: the console token ("" = none).
        tf_max_hz: ``/tf`` rate cap, Hz (0 = every joint state).
        name: server name shown in Foxglove.
    Raises:
        ViewError: foxglove-sdk missing, port busy, or an off-loopback host without a token.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8765, token: str = "", tf_max_hz: float = TF_MAX_HZ,
                 name: str = "robot_capture"):
        from robot_capture.console.web import WebConfigError, check_bind
        from robot_capture.console.web_guard import is_loopback

        try:
            check_bind(host, token)
        except WebConfigError as exc:
            raise ViewError(str(exc)) from None
        fg = self._fg = import_foxglove()
        self._lock = threading.Lock()
        self._ctx = fg.Context()
        self._channels: dict[str, object] = {}
        self._latched: dict[str, object] = {}  # channel topic -> last message, re-sent on subscribe
        self.transforms: RobotTransforms | None = None
        self.tf_max_hz = float(tf_max_hz)
        self.bad_states = 0  # joint states whose names and positions differ in length
        self._sent: dict[str, float] = {}  # topic -> monotonic time of its last send
        self.gate = None
        inner_host, inner_port = (host, port) if is_loopback(host) else ("127.0.0.1", 0)
        try:
            from foxglove.websocket import ServerListener

            # the SDK calls every listener method: its Protocol class gives the others their no-op defaults
            listener = type("ViewListener", (_Listener, ServerListener), {})(self)
            self.server = fg.start_server(name=name, host=inner_host, port=inner_port, context=self._ctx,
                                          server_listener=listener)
        except Exception as exc:  # noqa: BLE001 - the SDK raises its own error types (port in use, ...)
            raise ViewError(f"cannot serve the live view on {inner_host}:{inner_port}: {exc}") from None
        self.port = self.server.port
        # channels made before a client connects: a channel added while one is connected can be
        # advertised before the SDK can take its subscription ("Unknown channel ID", foxglove-sdk 0.30)
        for topic, kind in (("/joint_states", "joint_state"), ("/tf", "transforms"), ("/tf_static", "transforms"),
                            (description.TOPIC, "description"), ("/diagnostics", "diagnostics")):
            self.declare(topic, kind)
        if self.gate is None and not is_loopback(host):
            from robot_capture.view.token_gate import TokenGate

            try:
                self.gate = TokenGate(host, port, ("127.0.0.1", self.server.port), token)
            except OSError as exc:
                self.server.stop()
                raise ViewError(f"cannot serve the live view on {host}:{port}: {exc.strerror or exc}") from None
            self.port = self.gate.port
        self.host = host

    # ------------------------------------------------------------------ channels
    def declare(self, topic: str, kind: str) -> None:
        """Make ``topic``'s channel now, before its first message (a source calls this when it
        subscribes). ``kind``: a key of :data:`KINDS`; KeyError otherwise."""
        with self._lock:
            self._channel(topic, KINDS[kind])

    @property
    def topics(self) -> list[str]:
        """Topics with a channel so far."""
        with self._lock:
            return sorted(self._channels)

    def _channel(self, topic: str, kind: str):
        ch = self._channels.get(topic)
        if ch is None:
            fg = self._fg
            if kind == "json":
                ch = fg.Channel(topic, message_encoding="json", context=self._ctx)
            elif kind.startswith("json:"):
                ch = fg.Channel(topic, message_encoding="json", schema=_json_schema(fg, kind[5:]), context=self._ctx)
            else:
                ch = getattr(fg.channels, f"{kind}Channel")(topic, context=self._ctx)
            self._channels[topic] = ch
        return ch

    def _log(self, topic: str, kind: str, msg, stamp_ns: int | None, latched: bool = False) -> None:
        with self._lock:  # never held across log(): the SDK calls the listener from its own thread
            ch = self._channel(topic, kind)
            if latched:
                self._latched[topic] = (msg, stamp_ns)
        ch.log(msg, log_time=stamp_ns)

    def resend_latched(self, topic: str) -> None:
        """Log a latched channel's last message again (a client subscribed to it)."""
        with self._lock:
            last, ch = self._latched.get(topic), self._channels.get(topic)
        if last is not None and ch is not None:
            ch.log(last[0], log_time=last[1])

    # ------------------------------------------------------------------ inputs
    def robot_description(self, xml: str, stamp_ns: int | None = None) -> None:
        """A URDF (``/robot_description``): served latched; its fixed joints go to ``/tf_static``.

        Raises:
            ValueError: malformed URDF (the message names the element); nothing is changed then.
        """
        tf = RobotTransforms(xml)
        stamp_ns = time.time_ns() if stamp_ns is None else stamp_ns
        self.transforms = tf
        self._log(description.TOPIC, f"json:{description.TYPE}", {"data": xml}, stamp_ns, latched=True)
        self._log("/tf_static", "FrameTransforms", self._frame_transforms(tf.static, stamp_ns), stamp_ns, latched=True)

    def joint_state(self, topic: str, stamp_ns: int, names, position, velocity=(), effort=()) -> None:
        """A ``sensor_msgs/JointState`` (positions rad|m; velocities rad/s|m/s; efforts N m|N).

        ``/joint_states`` also drives ``/tf`` once a robot description is known: every state
        updates the transforms; the JSON and ``/tf`` are sent at most ``tf_max_hz`` per topic.
        """
        tf = self.transforms if topic == "/joint_states" else None
        up = None
        if tf is not None:
            try:
                up = tf.update(names, position)
            except ValueError as exc:  # names and positions differ in length: served, no /tf from it
                self.bad_states += 1
                if self.bad_states == 1:
                    log.warning("%s: %s; no /tf from such states (counted in bad_states)", topic, exc)
        now = time.monotonic()
        if self.tf_max_hz > 0 and now - self._sent.get(topic, -1e9) < 1.0 / self.tf_max_hz:
            return
        self._sent[topic] = now
        msg = {"header": {"stamp": _stamp_dict(stamp_ns), "frame_id": ""}, "name": list(names),
               "position": _floats(position), "velocity": _floats(velocity), "effort": _floats(effort)}
        self._log(topic, "json:sensor_msgs/msg/JointState", msg, stamp_ns)
        if up is not None and up.transforms:
            self._log("/tf", "FrameTransforms", self._frame_transforms(up.transforms, stamp_ns), stamp_ns)

    def json_message(self, topic: str, stamp_ns: int, obj, schema: str = "", latched: bool = False) -> None:
        """Any JSON-able message (diagnostics, the episode state); ``schema`` names its type."""
        self._log(topic, f"json:{schema}" if schema else "json", obj, stamp_ns, latched=latched)

    def raw_image(self, topic: str, stamp_ns: int, frame_id: str, width: int, height: int, encoding: str,
                  step: int, data: bytes) -> None:
        """A ``sensor_msgs/Image`` (encoding as in ROS: rgb8, bgr8, mono8, ...; step in bytes)."""
        fg = self._fg
        msg = fg.messages.RawImage(timestamp=_ts(fg, stamp_ns), frame_id=frame_id, width=width, height=height,
                                  encoding=encoding, step=step, data=bytes(data))
        self._log(topic, "RawImage", msg, stamp_ns)

    def compressed_image(self, topic: str, stamp_ns: int, frame_id: str, fmt: str, data: bytes) -> None:
        """A ``sensor_msgs/CompressedImage`` (``fmt``: jpeg, png)."""
        fg = self._fg
        msg = fg.messages.CompressedImage(timestamp=_ts(fg, stamp_ns), frame_id=frame_id, format=fmt, data=bytes(data))
        self._log(topic, "CompressedImage", msg, stamp_ns)

    def compressed_video(self, topic: str, stamp_ns: int, frame_id: str, fmt: str, data: bytes) -> None:
        """One frame of a video bitstream (``foxglove_msgs/CompressedVideo``: ``fmt`` h264|h265|av1|vp9,
        Annex B, one access unit, no B-frames). The hook for the record-time video encoder (issue 21)."""
        fg = self._fg
        msg = fg.messages.CompressedVideo(timestamp=_ts(fg, stamp_ns), frame_id=frame_id, format=fmt, data=bytes(data))
        self._log(topic, "CompressedVideo", msg, stamp_ns)

    def _frame_transforms(self, transforms: list[LinkTransform], stamp_ns: int):
        fg = self._fg
        s = fg.messages
        ts = _ts(fg, stamp_ns)
        out = []
        for t in transforms:
            x, y, z = (float(v) for v in t.translation)
            qx, qy, qz, qw = (float(v) for v in t.quaternion)
            out.append(s.FrameTransform(timestamp=ts, parent_frame_id=t.parent, child_frame_id=t.child,
                                        translation=s.Vector3(x=x, y=y, z=z),
                                        rotation=s.Quaternion(x=qx, y=qy, z=qz, w=qw)))
        return s.FrameTransforms(transforms=out)

    @property
    def url(self) -> str:
        """``ws://host:port`` to open in Foxglove (Open connection -> Foxglove WebSocket)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        return f"ws://{host}:{self.port}"

    def stop(self) -> None:
        """Stop the server (and the token gate)."""
        if self.gate is not None:
            self.gate.stop()
        self.server.stop()


class _Listener:
    """foxglove ServerListener: a subscriber to a latched channel gets its last message."""

    def __init__(self, view: LiveView):
        self.view = view

    def on_subscribe(self, client, channel) -> None:
        # the SDK registers the subscription after this callback returns: re-send from a timer
        # (twice, the second for a loaded machine); duplicates of a latched message are harmless
        for delay in RESEND_AFTER_S:
            t = threading.Timer(delay, self._resend, (channel.topic,))
            t.daemon = True
            t.start()

    def _resend(self, topic: str) -> None:
        try:
            self.view.resend_latched(topic)
        except Exception:  # noqa: BLE001 - a stopped server; never raise in a timer thread
            log.debug("re-sending %s failed", topic, exc_info=True)


def _stamp_dict(ns: int) -> dict:
    sec, nsec = divmod(int(ns), 1_000_000_000)
    return {"sec": sec, "nsec": nsec}


def _floats(values) -> list:
    """JSON has no NaN: non-finite values become null (the joint is flagged by the transforms)."""
    out = []
    for v in values:
        v = float(v)
        out.append(v if v == v and abs(v) != float("inf") else None)
    return out
