"""xr node: a real headset drives the robot through the page this node serves (issue 19).

Serves the headset page and its pose WebSocket over HTTPS (``robot_capture.xr.server``, uvicorn
in a thread) and publishes each checked XR frame (``robot_capture.xr.session``; stamps = the
headset's sample time in station time, through the clock offset from WebSocket round trips):

* ``/vr/head``, ``/vr/left_wrist``, ``/vr/right_wrist`` (geometry_msgs/PoseStamped, ``vr_world``);
  a wrist is the tracked hand's wrist joint, else the controller's grip pose;
* ``/vr/left_hand``, ``/vr/right_hand`` (geometry_msgs/PoseArray, 26 OpenXR joints, ``vr_world``),
  only in frames where that hand is tracked; hands are published before the trackers of the same
  frame (as mocap_replay does), so the retarget node uses them together;
* ``/vr/buttons`` (sensor_msgs/Joy, layout ``xr.session.JOY_*``; the recorder's Joy episode commands);
* ``/xr/latency`` (diagnostic_msgs/DiagnosticArray, 1 Hz): one status ``xr latency`` whose values are
  the window's ``network_ms_p50/_p95/_max`` (headset sample -> station receive), ``xr_fps``,
  ``frames``, ``dropped_frames`` (seq gaps), ``refused_frames`` (bad input), their ``*_total``,
  ``clock_offset_ms`` (headset - station) and ``clock_delay_ms`` (its round trip);
* ``/diagnostics``: status ``xr`` at 1 Hz (OK driving / WARN no headset), ERROR at once when the
  headset's connection is lost during an episode, WARN at once when a hand's tracking is lost.

The tally comes from the recorder's ``console_state`` through a
:class:`~robot_capture.console.bridge.RecorderBridge` (its own rclpy context), as the consoles do.
Parameters: see ``__init__``; the token comes from ``$ROBOT_CAPTURE_CONSOLE_TOKEN`` (never a
parameter: it would show in the process list).
"""
from __future__ import annotations

import os
import threading

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Joy

from robot_capture.nodes._convert import diagnostic_status, matrix_to_pose, ns_to_stamp, pose_array_msg
from robot_capture.nodes._run import StartupError, declare, run

OK, WARN, ERROR = 0, 1, 2


class XrNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("xr", **kwargs)
        p = lambda name, default, text: declare(self, name, default, text)  # noqa: E731
        host = p("host", "127.0.0.1", "address to serve the page on (off loopback needs the console token)")
        port = p("port", 8443, "HTTPS port")
        takeover = p("takeover", False, "a new headset takes over from the driving one (default: refused)")
        cert, key = p("cert", "", "TLS certificate PEM ('' = the station's, made once)"), p("key", "", "its key")
        tls = p("tls", True, "serve HTTPS (false: plain HTTP, loopback only; WebXR needs a secure context)")
        recorder = p("recorder", "/recorder", "recorder node whose console_state drives the tally")
        self.frame_id = p("frame_id", "vr_world", "frame of the VR poses")
        token = os.environ.get("ROBOT_CAPTURE_CONSOLE_TOKEN", "")
        from robot_capture.console.web import WebConfigError, check_bind
        from robot_capture.console.web_guard import is_loopback

        try:
            check_bind(host, token)
        except WebConfigError as exc:
            raise StartupError(f"xr: {exc}") from None
        if not tls and not is_loopback(host):
            raise StartupError("xr: plain HTTP only on loopback (a headset needs HTTPS for WebXR)")
        if tls and not (cert and key):
            from robot_capture.xr.certs import CertificateError, ensure_certificate

            try:
                c, k, _ = ensure_certificate()
            except CertificateError as exc:
                raise StartupError(f"xr: {exc}") from None
            cert, key = cert or str(c), key or str(k)
        if tls:  # an unreadable or mismatched pair is one line here, not a traceback in the server thread
            import ssl

            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as exc:
                raise StartupError(f"xr: cannot use certificate {cert} with key {key}: {exc}") from None
        self.pubs = {n: self.create_publisher(PoseStamped, f"/vr/{n}", 10) for n in ("head", "left_wrist", "right_wrist")}
        self.hand_pubs = {s: self.create_publisher(PoseArray, f"/vr/{s}_hand", 10) for s in ("left", "right")}
        self.joy_pub = self.create_publisher(Joy, "/vr/buttons", 10)
        self.latency_pub = self.create_publisher(DiagnosticArray, "/xr/latency", 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        from robot_capture.console.bridge import RecorderBridge
        from robot_capture.xr.server import WS_MAX_SIZE, build_app
        from robot_capture.xr.session import XrHub

        self.bridge = RecorderBridge(recorder, node_name="xr_tally")
        self.hub = XrHub(self._publish, takeover=takeover, state=self.bridge.latest, on_event=self._on_event)
        app = build_app(self.hub, state=self.bridge.latest, token=token, bind=host, cert=cert or None)
        import uvicorn

        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, ws="auto",
                                ws_max_size=WS_MAX_SIZE, ssl_certfile=cert if tls else None,
                                ssl_keyfile=key if tls else None)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="xr-server", daemon=True)
        self._thread.start()
        while not self.server.started and self._thread.is_alive():  # state, not time: bound or failed
            self._thread.join(0.05)
        if not self.server.started:
            self.bridge.close()
            raise StartupError(f"xr: cannot serve on {host}:{port} (port in use, or the certificate unreadable; "
                               "see the error above)")
        self.create_timer(1.0, self._on_timer)
        self.get_logger().info(f"xr: serving {'https' if tls else 'http'}://{host}:{port}/ (tally from {recorder}"
                               f"{', token required' if token else ''}{', takeover allowed' if takeover else ''})")

    def _publish(self, s) -> None:
        """One XrSample -> the /vr topics (called from the server thread; rclpy publish is thread-safe)."""
        stamp = ns_to_stamp(s.stamp_ns)
        for side, hand in s.hands.items():
            self.hand_pubs[side].publish(pose_array_msg(stamp, self.frame_id, hand))
        for name, T in (("head", s.head), ("left_wrist", s.wrists.get("left")), ("right_wrist", s.wrists.get("right"))):
            if T is None:
                continue
            msg = PoseStamped()
            msg.header.stamp, msg.header.frame_id = stamp, self.frame_id
            msg.pose = matrix_to_pose(T)
            self.pubs[name].publish(msg)
        if s.buttons is not None:
            joy = Joy()
            joy.header.stamp, joy.header.frame_id = stamp, self.frame_id
            joy.buttons, joy.axes = list(s.buttons), [float(a) for a in s.axes]
            self.joy_pub.publish(joy)

    def _diagnostics(self, pub, status) -> None:
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [status]
        pub.publish(arr)

    def _on_event(self, level: str, text: str) -> None:
        log = self.get_logger()  # one call site per severity: rclpy refuses a call site whose severity changes
        if level == "error":
            log.error(f"xr: {text}")
        elif level == "warn":
            log.warning(f"xr: {text}")
        else:
            log.info(f"xr: {text}")
        if level in ("warn", "error"):  # a lost connection mid-episode, lost hand tracking: in the bag at once
            self._diagnostics(self.diag_pub, diagnostic_status("xr", ERROR if level == "error" else WARN, text,
                                                               {"drops": len(self.hub.drops)}))

    def _on_timer(self) -> None:
        w = self.hub.latency.take()
        hub = self.hub
        w["clock_offset_ms"] = hub.offset_s * 1e3 if hub.offset_s is not None else float("nan")
        w["clock_delay_ms"] = hub.delay_s * 1e3 if hub.delay_s is not None else float("nan")
        self._diagnostics(self.latency_pub, diagnostic_status("xr latency", OK, "per 1 s window", w))
        d = hub.driver
        level, text = (OK, f"headset {d.peer} driving") if d else (WARN, "no headset connected: the robot holds")
        self._diagnostics(self.diag_pub, diagnostic_status("xr", level, text, {
            "frames": w["frames"], "dropped_frames_total": w["dropped_frames_total"],
            "refused_frames_total": w["refused_frames_total"], "drops": len(hub.drops)}))

    def close(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)
        self.bridge.close()


def main(args=None) -> int:
    return run(XrNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
