"""The synthetic camera of ``camera_node``: the robot's current joint state, drawn from FK.

A ``RobotView`` holds a :class:`~robot_capture.kinematics.model.RobotModel` of the whole
robot (no locked joints), the latest joint positions, and a pinhole
:class:`~.stick_render.StickRenderer`. Views:

* ``head`` (default): the robot's own head camera. The camera link is ``camera_link`` or
  the first of ``HEAD_CAMERA_LINKS`` present in the URDF; links named in body convention
  (x forward, z up) are turned into the optical frame (z forward, x right, y down).
  Frames move with the torso/head joints.
* ``front``: a fixed external camera at (1.25, 0.55, 0.25) m in the base frame, looking at (0, 0, -0.15)
  origin (three-quarter whole-body view).

Units: m, rad. Images are ``(height, width, 3)`` uint8 RGB.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .stick_render import CameraIntrinsics, StickRenderer, body_to_optical, look_at

# (link, convention) tried in order for the head view: G1, Kuavo S45/S49, H1, generic.
HEAD_CAMERA_LINKS = (
    ("d435_link", "body"),
    ("camera", "body"),
    ("d435_rgb_module_link", "optical"),
    ("head_link", "body"),
    ("torso_link", "body"),
)
VIEWS = ("head", "front")


class RobotView:
    """Render a robot's stick figure at its current joint positions.

    Args:
        model: RobotModel of the robot (every movable joint active).
        width, height: image size in pixels.
        hfov_deg: horizontal field of view in degrees.
        view: ``head`` or ``front`` (see module docstring).
        camera_link: override the head-view link; ``camera_convention`` is ``body`` or ``optical``.

    Raises:
        ValueError: unknown view or convention, bad image size or field of view.
        KeyError: ``camera_link`` is not a link of the model (message suggests close names).
    """

    def __init__(self, model, width: int = 640, height: int = 480, hfov_deg: float = 120.0,
                 view: str = "head", camera_link: str | None = None, camera_convention: str = "body") -> None:
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; expected one of {VIEWS}")
        if camera_convention not in ("body", "optical"):
            raise ValueError(f"camera_convention must be 'body' or 'optical', got {camera_convention!r}")
        self.model = model
        self.view = view
        self.intrinsics = CameraIntrinsics.from_hfov(width, height, hfov_deg)
        self.q = model.neutral()
        self._index = {n: i for i, n in enumerate(model.joint_names)}
        if camera_link:
            self.camera_index = model.frame_index(camera_link)
            self.camera_convention = camera_convention
        else:
            frames = set(model.frame_names)
            link, conv = next(((ln, c) for ln, c in HEAD_CAMERA_LINKS if ln in frames), (model.frame_names[0], "body"))
            self.camera_index, self.camera_convention = model.frame_index(link), conv
        self.camera_link = model.frame_names[self.camera_index]
        poses = model.fk_all(self.q)
        ground = float(poses[:, 2, 3].min())
        self.renderer = StickRenderer(model.link_parent, model.frame_names, self.intrinsics, grid_z=ground)
        self._front = look_at((1.25, 0.55, 0.25), (0.0, 0.0, -0.15))
        self._buffer = np.empty((height, width, 3), dtype=np.uint8)

    def set_joint_positions(self, names: Sequence[str], positions: Sequence[float]) -> int:
        """Update the named joints (unknown names and non-finite values are skipped); returns how many were used."""
        used = 0
        for n, v in zip(names, positions):
            i = self._index.get(n)
            if i is not None and v == v and abs(v) != float("inf"):
                self.q[i] = v
                used += 1
        return used

    def camera_pose(self, poses: np.ndarray | None = None) -> np.ndarray:
        """4x4 pose of the optical frame in the robot base frame at the current joint positions."""
        if self.view == "front":
            return self._front
        if poses is None:
            poses = self.model.fk_all(self.q)
        T = poses[self.camera_index]
        return body_to_optical(T) if self.camera_convention == "body" else T

    def render(self, out: np.ndarray | None = None) -> np.ndarray:
        """The current frame, ``(height, width, 3)`` uint8 RGB, drawn into ``out`` (default: a buffer
        reused between calls)."""
        poses = self.model.fk_all(self.q)
        return self.renderer.render(poses[:, :3, 3], self.camera_pose(poses),
                                    out=self._buffer if out is None else out)
