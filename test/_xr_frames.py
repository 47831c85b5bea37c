"""Helpers for the xr tests: WebXR frames built from the shipped Quest hand poses (ROS-free)."""
from __future__ import annotations

import json
import math

import numpy as np

from robot_capture.retarget.hand_tracking import load_webxr_hand_poses, webxr_sample_path


def quat_about(axis, angle) -> list:
    a = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    s = math.sin(angle / 2)
    return [a[0] * s, a[1] * s, a[2] * s, math.cos(angle / 2)]


def hand_joints(side: str, wrist_p, wrist_q=(0.0, 0.0, 0.0, 1.0), index: int = 0) -> list:
    """25 WebXR joint poses [p, q] in the reference space for recorded pose ``index`` with the wrist at wrist_p/q."""
    from scipy.spatial.transform import Rotation

    pose = load_webxr_hand_poses(webxr_sample_path(side))[index]
    R = Rotation.from_quat(wrist_q)
    pts = R.apply(pose.positions) + np.asarray(wrist_p)
    return [list(map(float, p)) + list(map(float, wrist_q)) for p in pts], pose.positions


def frame(seq=0, t=1000.0, head=(0.0, 1.6, 0.0, 0, 0, 0, 1), hands=True, controllers=None, **extra) -> dict:
    d = {"type": "frame", "seq": seq, "t": t, "head": list(head)}
    if hands:
        d["hands"] = {"left": hand_joints("left", [-0.2, 1.0, -0.3])[0],
                      "right": hand_joints("right", [0.2, 1.0, -0.3])[0]}
    if controllers is not None:
        d["controllers"] = controllers
    d.update(extra)
    return d


def text(d) -> str:
    return json.dumps(d)
