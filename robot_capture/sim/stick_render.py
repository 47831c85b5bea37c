"""Synthetic camera: a stick figure of a robot's kinematic tree, seen by a pinhole camera.

Link origins come from forward kinematics of the whole tree (``LinkTree``); every
parent->child link pair is drawn as a line, every link origin as a dot, left side
in blue, right side in red, centre in grey (colours in RGB order). The camera is a
pinhole (Hartley & Zisserman, "Multiple View Geometry", 2nd ed., eq. 6.1) with the
ROS optical-frame convention (REP-103 ``*_optical_frame``: z forward, x right, y down)
and square pixels: ``fx = fy = (width/2) / tan(hfov/2)``, principal point at the
image centre. Segments crossing the near plane are clipped in 3-D before projection.

Frames: link poses are in the tree's root frame (the robot base, e.g. ``pelvis``);
the camera pose ``T_base_optical`` is in the same frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import cv2
import numpy as np

# body (x forward, y left, z up) -> optical (z forward, x right, y down): columns are
# the optical axes expressed in the body frame.
R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

_LEFT = (60, 140, 255)
_RIGHT = (255, 80, 60)
_CENTER = (200, 200, 200)
_BACKGROUND = (28, 30, 36)
_GRID = (55, 60, 70)


@dataclass
class CameraIntrinsics:
    """Pinhole intrinsics for a ``width`` x ``height`` image (pixels)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_hfov(cls, width: int, height: int, hfov_deg: float) -> "CameraIntrinsics":
        """Square pixels with horizontal field of view ``hfov_deg`` in (0, 180) degrees.

        Raises:
            ValueError: non-positive size or a field of view outside (0, 180).
        """
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        if not 0.0 < hfov_deg < 180.0:
            raise ValueError(f"horizontal field of view must be in (0, 180) deg, got {hfov_deg}")
        f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(int(width), int(height), f, f, width / 2.0, height / 2.0)

    def matrix(self) -> np.ndarray:
        """3x3 camera matrix K (row-major, as in ``sensor_msgs/CameraInfo.k``)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


def side_of(link: str) -> int:
    """-1 right, +1 left, 0 centre, from the link name (``left_``/``l_``/``_l<digit>`` conventions)."""
    n = link.lower()
    if n.startswith(("left", "l_")) or "_left" in n or "zarm_l" in n or "leg_l" in n:
        return 1
    if n.startswith(("right", "r_")) or "_right" in n or "zarm_r" in n or "leg_r" in n:
        return -1
    return 0


class StickRenderer:
    """Render link origins and parent->child segments into an ``(H, W, 3)`` uint8 image.

    Args:
        parents: parent index per link (``-1`` for the root); length ``n``.
        link_names: name per link (for left/right colouring); length ``n``.
        intrinsics: the pinhole camera.
        near: near-plane distance in m (> 0).
        grid_z: height of a ground grid in the base frame (m) or ``None`` for no grid.
    """

    def __init__(self, parents: Sequence[int], link_names: Sequence[str], intrinsics: CameraIntrinsics,
                 near: float = 0.03, grid_z: float | None = None) -> None:
        self.parents = np.asarray(parents, dtype=int)
        self.intrinsics = intrinsics
        self.near = float(near)
        self.edges = [(int(p), i) for i, p in enumerate(self.parents) if p >= 0]
        colours = {1: _LEFT, -1: _RIGHT, 0: _CENTER}
        self.colours = [colours[side_of(n)] for n in link_names]
        self.grid = _grid_segments(grid_z) if grid_z is not None else None
        self._background = np.empty((intrinsics.height, intrinsics.width, 3), dtype=np.uint8)
        self._background[:] = _BACKGROUND

    def render(self, positions: np.ndarray, T_base_optical: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Draw the figure.

        Args:
            positions: ``(n, 3)`` link origins in the base frame (m).
            T_base_optical: 4x4 pose of the camera optical frame in the base frame.
            out: optional ``(H, W, 3)`` uint8 buffer to draw into.

        Returns:
            The RGB image ``(H, W, 3)`` uint8.
        """
        img = out if out is not None else np.empty_like(self._background)
        img[:] = self._background
        R = T_base_optical[:3, :3]
        t = T_base_optical[:3, 3]
        pc = (np.asarray(positions, dtype=float) - t) @ R  # camera-frame points, (n, 3)
        if self.grid is not None:
            g0 = (self.grid[:, 0] - t) @ R
            g1 = (self.grid[:, 1] - t) @ R
            for a, b in zip(g0, g1):
                self._segment(img, a, b, _GRID, 1)
        for p, c in self.edges:
            self._segment(img, pc[p], pc[c], self.colours[c], 3)
        k = self.intrinsics
        for i, p in enumerate(pc):
            if p[2] > self.near:
                u, v = k.fx * p[0] / p[2] + k.cx, k.fy * p[1] / p[2] + k.cy
                if -1e4 < u < 1e4 and -1e4 < v < 1e4:
                    cv2.circle(img, (int(round(u)), int(round(v))), 4, self.colours[i], -1, cv2.LINE_AA)
        return img

    def _segment(self, img, a, b, colour, thickness) -> None:
        near = self.near
        if a[2] < near and b[2] < near:
            return
        if a[2] < near or b[2] < near:  # clip the segment at the near plane
            s = (near - a[2]) / (b[2] - a[2])
            m = a + s * (b - a)
            a, b = (m, b) if a[2] < near else (a, m)
        k = self.intrinsics
        ua, va = k.fx * a[0] / a[2] + k.cx, k.fy * a[1] / a[2] + k.cy
        ub, vb = k.fx * b[0] / b[2] + k.cx, k.fy * b[1] / b[2] + k.cy
        lim = 1e5
        if max(abs(ua), abs(va), abs(ub), abs(vb)) > lim:
            return
        cv2.line(img, (int(round(ua)), int(round(va))), (int(round(ub)), int(round(vb))), colour, thickness, cv2.LINE_AA)


def _grid_segments(z: float, half: float = 3.0, step: float = 0.5) -> np.ndarray:
    """Ground-grid segments at height ``z``: ``(m, 2, 3)`` endpoints in the base frame."""
    ticks = np.arange(-half, half + 1e-9, step)
    segs = []
    for v in ticks:
        segs.append([[v, -half, z], [v, half, z]])
        segs.append([[-half, v, z], [half, v, z]])
    return np.asarray(segs, dtype=float)


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """4x4 pose of an optical frame at ``eye`` looking at ``target`` (base frame, m).

    Raises:
        ValueError: ``eye == target`` or the view direction is parallel to ``up``.
    """
    eye = np.asarray(eye, dtype=float)
    z = np.asarray(target, dtype=float) - eye
    nz = np.linalg.norm(z)
    if nz < 1e-9:
        raise ValueError("look_at: eye and target coincide")
    z /= nz
    x = np.cross(z, np.asarray(up, dtype=float))
    nx = np.linalg.norm(x)
    if nx < 1e-9:
        raise ValueError("look_at: view direction parallel to up")
    x /= nx
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T


def body_to_optical(T_base_body: np.ndarray) -> np.ndarray:
    """Pose of the optical frame of a camera link given in body convention (x forward, z up)."""
    T = np.array(T_base_body, dtype=float, copy=True)
    T[:3, :3] = T[:3, :3] @ R_BODY_OPTICAL
    return T


def joint_positions_from_mapping(names: Sequence[str], values: Mapping[str, float], default=0.0) -> np.ndarray:
    """``(len(names),)`` array of ``values[name]`` (``default`` for missing names)."""
    return np.array([float(values.get(n, default)) for n in names])
