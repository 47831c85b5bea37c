"""Synthetic episode bags for the export tests, written with the real BagWriter and
messages serialized by rclpy (so the exporter's CDR parsing is checked against ROS).

Streams follow the floor's topic contract: /joint_states (JointState), /retarget/joint_command,
/retarget/targets (PoseArray), /exo/joint_states, /vr/head (PoseStamped), cameras
/camera/<name>/image_raw (Image rgb8) or .../compressed (JPEG). Values are known
functions of the header stamp, so a test can recompute them at any frame time:
joint j of /joint_states at t s is ``sin(2 pi f_j t) `` with f_j = 0.2 + 0.05 j Hz.
Camera frames depend on their stamp (a moving blob on smooth gradients).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from robot_capture.bag.writer import BagWriter, WriterOptions

T0 = 1_767_225_600_000_000_000   # 2026-01-01 00:00:00 UTC, ns
JOINTS = [f"joint_{i}" for i in range(6)]
W, H = 96, 64


def joint_positions(t_s: np.ndarray) -> np.ndarray:
    """The /joint_states positions at times t (s since T0) -> (len(t), 6)."""
    f = 0.2 + 0.05 * np.arange(len(JOINTS))
    return np.sin(2 * np.pi * f[None, :] * np.asarray(t_s)[:, None])


def frame_image(t_s: float, cam: int = 0) -> np.ndarray:
    """A (H, W, 3) uint8 test picture that depends on the stamp: smooth gradients and a
    soft blob moving at 40 px/s, as a camera sees (a hard-edged pattern would measure the
    codec, not the exporter)."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    cx = (t_s * 40 + 20 * cam) % W
    blob = 120 * np.exp(-((x - cx) ** 2 + (y - H / 2) ** 2) / (2 * 8.0 ** 2))
    img = np.empty((H, W, 3))
    img[..., 0] = 60 + 50 * np.sin(2 * np.pi * (x / W + 0.3 * t_s)) + blob
    img[..., 1] = 90 + 40 * np.cos(2 * np.pi * (y / H + 0.1 * cam)) + 0.5 * blob
    img[..., 2] = 110 + 30 * np.sin(2 * np.pi * (x + y) / (W + H))
    return np.clip(img, 0, 255).astype(np.uint8)


def _stamp(m, ns):
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(int(ns), 1_000_000_000)


def _js(names, pos, ns):
    from sensor_msgs.msg import JointState

    m = JointState()
    _stamp(m, ns)
    m.name, m.position = list(names), [float(v) for v in pos]
    return m


def _image(img, ns, compressed=False):
    from sensor_msgs.msg import CompressedImage, Image

    if compressed:
        import cv2

        m = CompressedImage()
        _stamp(m, ns)
        m.format = "rgb8; jpeg compressed bgr8"
        m.data = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
        return m
    m = Image()
    _stamp(m, ns)
    m.height, m.width, m.encoding, m.step = img.shape[0], img.shape[1], "rgb8", 3 * img.shape[1]
    m.data = img.tobytes()
    return m


def _poses(n, t_s, ns):
    from geometry_msgs.msg import Pose, PoseArray

    m = PoseArray()
    _stamp(m, ns)
    for i in range(n):
        p = Pose()
        p.position.x, p.position.y, p.position.z = float(t_s), float(i), 0.5
        p.orientation.w = 1.0
        m.poses.append(p)
    return m


def _pose_stamped(t_s, ns):
    from geometry_msgs.msg import PoseStamped

    m = PoseStamped()
    _stamp(m, ns)
    m.pose.position.x, m.pose.position.z = float(t_s), 1.6
    m.pose.orientation.w = 1.0
    return m


def write_episode(bag: Path, seconds: float = 2.0, cameras=("head",), camera_hz: float = 30.0,
                  joint_hz: float = 500.0, command_hz: float = 100.0, joint_states: bool = True,
                  compressed: bool = False, task: str = "pick cup", success: str = "true",
                  operator: str = "ann", start_offset_s: float = 0.0, camera_jitter_s: float = 0.0,
                  drop_camera_frames: tuple = (), seed: int = 0) -> Path:
    """Write one labelled episode bag; returns its path."""
    from rclpy.serialization import serialize_message as ser

    rng = np.random.default_rng(seed)
    t_start = T0 + int(start_offset_s * 1e9)
    msgs = []  # (log_ns, topic, bytes)
    if joint_states:
        for i in range(int(seconds * joint_hz) + 1):
            t = i / joint_hz
            ns = t_start + int(round(t * 1e9))
            msgs.append((ns, "/joint_states", ser(_js(JOINTS, joint_positions([start_offset_s + t])[0], ns))))
    for i in range(int(seconds * command_hz) + 1):
        t = i / command_hz
        ns = t_start + int(round(t * 1e9))
        cmd = joint_positions([start_offset_s + t])[0] + 0.01
        msgs.append((ns + 300_000, "/retarget/joint_command", ser(_js(JOINTS, cmd, ns))))
        msgs.append((ns + 300_000, "/retarget/targets", ser(_poses(2, start_offset_s + t, ns))))
    for i in range(int(seconds * 60) + 1):
        ns = t_start + int(round(i / 60 * 1e9))
        msgs.append((ns, "/exo/joint_states", ser(_js(["exo_a", "exo_b"], [i * 0.01, -i * 0.01], ns))))
        msgs.append((ns, "/vr/head", ser(_pose_stamped(i / 60, ns))))
    topic_of = {c: f"/camera/{c}/image_raw" + ("/compressed" if compressed else "") for c in cameras}
    for ci, c in enumerate(cameras):
        for i in range(int(seconds * camera_hz) + 1):
            if i in drop_camera_frames:
                continue
            jit = rng.uniform(-camera_jitter_s, camera_jitter_s) if camera_jitter_s else 0.0
            t = i / camera_hz + 0.002 + jit
            ns = t_start + int(round(t * 1e9))
            img = frame_image(start_offset_s + t, ci)
            msgs.append((ns + 5_000_000, topic_of[c], ser(_image(img, ns, compressed))))
    w = BagWriter(bag, WriterOptions(compression="none"),
                  custom_data={"episode.task": task, "episode.operator": operator, "episode.success": success,
                               "episode.robot": "g1", "episode.start_time_ns": str(t_start),
                               "episode.stop_time_ns": str(t_start + int(seconds * 1e9))})
    types = {"/joint_states": "sensor_msgs/msg/JointState", "/retarget/joint_command": "sensor_msgs/msg/JointState",
             "/retarget/targets": "geometry_msgs/msg/PoseArray", "/exo/joint_states": "sensor_msgs/msg/JointState",
             "/vr/head": "geometry_msgs/msg/PoseStamped"}
    for c, t in topic_of.items():
        types[t] = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    for name, typ in types.items():
        if joint_states or name != "/joint_states":
            w.add_topic(name, typ)
    for ns, topic, data in sorted(msgs, key=lambda x: x[0]):
        w.write(topic, data, ns, ns)
    w.close()
    return bag
