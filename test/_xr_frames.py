"""Helpers for the xr tests: WebXR frames built from the shipped Quest hand poses (ROS-free)."""
from __future__ import annotations

import json
import math
import socket
import ssl
import threading
import time

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


HEADSET_AHEAD_S = 1000.0  # the scripted headset's clock runs 1000 s ahead of the station's


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Headset(threading.Thread):
    """A scripted headset: answers pings on its own clock; once synced sends ``frames`` (dicts) at once,
    then, if given, ``stream()`` -> a frame dict (or None) every 20 ms until stopped."""

    def __init__(self, url: str, frames, stream=None):
        super().__init__(daemon=True)
        self.url, self.frames, self.stream = url, frames, stream
        self.replies, self.done, self.stop = [], threading.Event(), threading.Event()

    def clock_ms(self) -> float:
        return (time.time() + HEADSET_AHEAD_S) * 1e3

    def run(self):
        from websockets.sync.client import connect

        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # the station's self-signed certificate
        with connect(self.url, ssl=ctx) as ws:
            sent, seq = False, len(self.frames)
            while not self.stop.is_set():
                try:
                    m = json.loads(ws.recv(timeout=0.02))
                except TimeoutError:
                    m = None
                if m is not None:
                    self.replies.append(m)
                    if m["type"] == "ping":
                        t1 = self.clock_ms()
                        ws.send(json.dumps({"type": "pong", "id": m["id"], "t1": t1, "t2": self.clock_ms()}))
                        if not sent:
                            for f in self.frames:
                                ws.send(json.dumps(dict(f, t=self.clock_ms())))
                            sent = True
                            self.done.set()
                if sent and self.stream is not None:
                    f = self.stream()
                    if f is not None:
                        ws.send(json.dumps(dict(f, seq=seq, t=self.clock_ms())))
                        seq += 1


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True once something accepts TCP connections on ``host:port`` (a server has bound it)."""
    import socket

    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False
