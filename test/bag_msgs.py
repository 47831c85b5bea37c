"""Real ROS 2 messages for the bag tests, serialized with rclpy (no DDS needed).

Joint names come from the real Unitree G1 URDF in shared/data; images are
deterministic noise of the real camera size (640x480 rgb8).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np


def g1_joint_names(data_dir: Path) -> list[str]:
    text = (data_dir / "robots" / "unitree_g1" / "g1_29dof_rev_1_0.urdf").read_text()
    return [n for n, t in re.findall(r'<joint\s+name="([^"]+)"\s+type="([^"]+)"', text) if t != "fixed"]


def joint_state(names, i: int, stamp_ns: int, effort=True):
    from sensor_msgs.msg import JointState

    m = JointState()
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    m.header.frame_id = "pelvis"
    m.name = list(names)
    k = np.arange(len(names), dtype=float)
    m.position = list(np.sin(0.01 * i + k))
    m.velocity = list(np.cos(0.01 * i + k))
    m.effort = list(0.1 * k) if effort else []
    return m


def image(i: int, stamp_ns: int, w: int = 640, h: int = 480):
    from sensor_msgs.msg import Image

    m = Image()
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    m.header.frame_id = "head_optical_frame"
    m.height, m.width, m.encoding, m.step = h, w, "rgb8", 3 * w
    rng = np.random.default_rng(i)
    m.data = rng.integers(0, 256, size=h * w * 3, dtype=np.uint8).tobytes()
    return m


def pose(i: int, stamp_ns: int):
    from geometry_msgs.msg import PoseStamped

    m = PoseStamped()
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    m.header.frame_id = "vr_world"
    m.pose.position.x, m.pose.position.y, m.pose.position.z = 0.1 * i, -0.2, 1.5
    m.pose.orientation.w = 1.0
    return m


def ser(msg) -> bytes:
    from rclpy.serialization import serialize_message

    return serialize_message(msg)
