"""camera node (OpenCV): Image or JPEG CompressedImage plus CameraInfo at ``rate_hz``.

Sources (parameter ``source``):

* a ``cv2.VideoCapture`` device index (``"0"``) or a video file path (looped with ``loop``);
* ``synthetic``: a stick figure of the robot's current ``/joint_states`` from its head
  camera (:class:`robot_capture.sim.synthetic_camera.RobotView`), so recorded frames
  show the recorded motion.

Topics: ``/camera/<name>/image_raw`` (sensor_msgs/Image, ``encoding`` rgb8|bgr8) or, with
``compressed: true``, ``/camera/<name>/image_raw/compressed`` (sensor_msgs/CompressedImage,
``format`` "<encoding>; jpeg compressed bgr8" as image_transport names it); always
``/camera/<name>/camera_info``. ``frame_id`` is ``<name>_optical_frame``.

Frame timing: a device is read when the timer fires and stamped with the read time. The
simulated sources (``synthetic``, a video file) run on a fixed grid
(:class:`robot_capture.sim.ticker.Ticker`): a timer that fires late, on a loaded machine,
publishes every frame that came due since, each stamped with its grid time, up to
``MAX_CATCHUP`` frames (a device driver's few buffers: V4L2 commonly queues 4); a longer
stall drops frames, counted in a warning. A plain ROS timer skips the missed periods
instead, which a starved simulator turned into gaps in the recording.
"""
from __future__ import annotations

import math

import array

import cv2
import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile
from rclpy.serialization import deserialize_message
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState

from robot_capture.nodes._run import StartupError, declare, run
from robot_capture.sim.ticker import Ticker

MAX_CATCHUP = 4  # frames published at once after a stall (simulated sources)


class CameraNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("camera", **kwargs)
        p = lambda name, default, text: declare(self, name, default, text)  # noqa: E731
        self.cam_name = p("name", "head", "camera name: topics /camera/<name>/...")
        source = p("source", "synthetic", "'synthetic', a cv2.VideoCapture device index or a video file")
        width = p("width", 640, "image width, px")
        height = p("height", 480, "image height, px")
        rate = p("rate_hz", 30.0, "publish rate, Hz")
        self.compressed = p("compressed", False, "publish JPEG CompressedImage on .../image_raw/compressed")
        self.jpeg_quality = p("jpeg_quality", 80, "JPEG quality 1-100 (compressed only)")
        self.encoding = p("encoding", "rgb8", "Image encoding: rgb8 or bgr8")
        robot = p("robot", "g1", "synthetic: robot mapping name or YAML path")
        urdf = p("urdf", "", "synthetic: URDF path overriding the robot's")
        view = p("view", "head", "synthetic: 'head' (robot head camera) or 'front' (external)")
        camera_link = p("camera_link", "", "synthetic head view: camera link (default: auto)")
        hfov = p("hfov_deg", 120.0, "synthetic: horizontal field of view, deg (wide, like a teleop head camera)")
        self.loop = p("loop", True, "video file: restart at the end")
        if self.encoding not in ("rgb8", "bgr8"):
            raise StartupError(f"camera: encoding must be rgb8 or bgr8, got {self.encoding!r}")
        if not 0 < rate < math.inf or width <= 0 or height <= 0:  # NaN and .inf too
            raise StartupError(f"camera: rate_hz, width, height must be finite and > 0 (got {rate}, {width}, {height})")
        self.width, self.height = width, height
        # one frame buffer: rendered/converted into in place, handed to Image.data as array('B')
        self._data = array.array("B", bytes(width * height * 3))
        self._frame = np.frombuffer(self._data, dtype=np.uint8).reshape(height, width, 3)
        self.frame_id = f"{self.cam_name}_optical_frame"
        self.view = None
        self.cap = None
        self._state_node = self._state_sub = None
        device = source.lstrip("-").isdigit()  # a cv2.VideoCapture device index
        if source == "synthetic":
            from robot_capture.sim.robots import load_robot
            from robot_capture.sim.synthetic_camera import RobotView

            try:
                model, locked = load_robot(robot, urdf)
                self.view = RobotView(model, width, height, hfov, view=view, camera_link=camera_link or None)
            except (OSError, KeyError, ValueError) as e:
                raise StartupError(f"camera {self.cam_name}: synthetic view of {robot!r}: {e}") from e
            self.view.set_joint_positions(list(locked), list(locked.values()))
            # Only the newest /joint_states matters, once per frame. A KEEP_LAST(1) reader on a
            # helper node that is never spun holds it; the frame tick takes it, so Python does
            # not wake at the 500 Hz state rate. (Fallback: a raw callback keeping the latest.)
            self._latest_state: bytes | None = None
            # use_global_arguments=False: the process-wide `-r __node:=<name>` remap (how every
            # floor node is named) must not rename this helper too (two /camera_<name> nodes)
            self._state_node = rclpy.create_node(f"_{self.get_name()}_joint_states", context=self.context,
                                                 namespace=self.get_namespace(), use_global_arguments=False)
            self._state_sub = self._state_node.create_subscription(
                JointState, "/joint_states", lambda _m: None, QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST))
            if not hasattr(self._state_sub.handle, "take_message"):  # other rclpy versions
                self._state_node.destroy_node()
                self._state_node = self._state_sub = None
                self.create_subscription(JointState, "/joint_states", self._on_joint_states, 10, raw=True)
            K = self.view.intrinsics.matrix()
        else:
            self.cap = cv2.VideoCapture(int(source) if device else source)
            if not self.cap.isOpened():
                raise StartupError(f"camera {self.cam_name}: cv2.VideoCapture({source!r}) failed to open")
            self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            f = width / 2.0  # nominal 90 deg horizontal field of view: real intrinsics need calibration
            K = np.array([[f, 0, width / 2.0], [0, f, height / 2.0], [0, 0, 1.0]])
        self.info = self._camera_info(K)
        base = f"/camera/{self.cam_name}"
        if self.compressed:
            self.pub = self.create_publisher(CompressedImage, f"{base}/image_raw/compressed", 5)
        else:
            self.pub = self.create_publisher(Image, f"{base}/image_raw", 5)
        self.info_pub = self.create_publisher(CameraInfo, f"{base}/camera_info", 5)
        self._ticker = None if device else Ticker(rate, self.get_clock().now().nanoseconds, MAX_CATCHUP)
        self._skipped = 0
        self.create_timer(1.0 / rate, self._tick)
        self.get_logger().info(
            f"camera {self.cam_name}: {source} {width}x{height} @ {rate:g} Hz -> "
            f"{base}/image_raw{'/compressed' if self.compressed else ''}"
        )

    def _camera_info(self, K: np.ndarray) -> CameraInfo:
        info = CameraInfo()
        info.header.frame_id = self.frame_id
        info.width, info.height = self.width, self.height
        info.distortion_model = "plumb_bob"
        info.d = [0.0] * 5
        info.k = K.reshape(-1).tolist()
        info.r = np.eye(3).reshape(-1).tolist()
        info.p = np.hstack([K, np.zeros((3, 1))]).reshape(-1).tolist()
        return info

    def _on_joint_states(self, data: bytes) -> None:
        self._latest_state = data

    def _take_state(self) -> JointState | None:
        """The newest /joint_states since the last frame, or None."""
        if self._state_sub is not None:
            with self._state_sub.handle:
                taken = self._state_sub.handle.take_message(JointState, False)
            return taken[0] if taken else None
        data, self._latest_state = self._latest_state, None
        return deserialize_message(data, JointState) if data is not None else None

    def _grab(self) -> np.ndarray | None:
        """Next frame as RGB ``(H, W, 3)`` uint8 (``self._frame``), or None when no frame is available."""
        if self.view is not None:
            try:
                msg = self._take_state()
                if msg is not None:
                    self.view.set_joint_positions(msg.name, msg.position)
            except Exception as e:  # noqa: BLE001 - a bad message never stops the camera
                self.get_logger().warning(f"bad /joint_states message: {e}", throttle_duration_sec=5.0)
            return self.view.render(out=self._frame)
        ok, bgr = self.cap.read()
        if not ok and self.loop and self.cap.get(cv2.CAP_PROP_FRAME_COUNT) > 0:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self.cap.read()
        if not ok:
            self.get_logger().warning(f"camera {self.cam_name}: no frame from the source", throttle_duration_sec=5.0)
            return None
        if bgr.shape[0] != self.height or bgr.shape[1] != self.width:
            bgr = cv2.resize(bgr, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=self._frame)

    def _tick(self) -> None:
        if self._ticker is None:
            due = [None]  # a device: one frame, stamped at its read
        else:
            due = [ns for _k, ns in self._ticker.due(self.get_clock().now().nanoseconds)]
            if self._ticker.skipped > self._skipped:
                self.get_logger().warning(
                    f"camera {self.cam_name}: {self._ticker.skipped - self._skipped} frames not published "
                    f"(the node was starved for more than {MAX_CATCHUP} frames)", throttle_duration_sec=5.0)
                self._skipped = self._ticker.skipped
        msg = None
        for stamp_ns in due:
            if msg is None or self.view is None:  # a device or video file reads a frame per sample; a
                rgb = self._grab()  # rendered view shows the newest state, drawn once per tick
                msg = self._message(rgb) if rgb is not None else None
                if msg is None:
                    return
            self._publish(msg, self.get_clock().now().to_msg() if stamp_ns is None else
                          Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000))

    def _message(self, rgb: np.ndarray):
        """The Image (on the frame buffer) or CompressedImage of ``rgb``, unstamped; None if
        JPEG encoding failed."""
        if self.compressed:
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                self.get_logger().warning("JPEG encoding failed; frame skipped", throttle_duration_sec=5.0)
                return None
            msg = CompressedImage()
            msg.format = f"{self.encoding}; jpeg compressed bgr8"
            msg.data = buf.tobytes()
        else:
            if self.encoding == "bgr8":
                cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR, dst=rgb)
            msg = Image()
            msg.height, msg.width = self.height, self.width
            msg.encoding = self.encoding
            msg.step = self.width * 3
            msg.data = self._data  # the frame was drawn straight into this buffer (no tobytes copy)
        msg.header.frame_id = self.frame_id
        return msg

    def _publish(self, msg, stamp: Time) -> None:
        """Publish ``msg`` and the CameraInfo, both stamped ``stamp``."""
        msg.header.stamp = stamp
        self.pub.publish(msg)
        self.info.header.stamp = stamp
        self.info_pub.publish(self.info)

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
        if getattr(self, "_state_node", None) is not None:
            self._state_node.destroy_node()


def main(args=None) -> int:
    return run(CameraNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
