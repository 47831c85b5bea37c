"""The robot's link transforms from its joint states, as ``robot_state_publisher`` publishes them.

ROS-free core of the live view (and of any ``/tf`` writer). For every URDF joint one transform
``T_parent_child`` (REP-105 naming: ``frame_id`` = the joint's parent link, ``child_frame_id`` =
its child link, 4x4 ``float64``, metres and radians):

* **fixed joints** (also ``floating``/``planar``, held at their origin as ``robot_state_publisher``
  and :class:`~robot_capture.kinematics.model.RobotModel` do): once, :attr:`RobotTransforms.static`
  (``/tf_static`` in ROS, latched);
* **moving joints** (revolute, continuous, prismatic): per joint state,
  ``T = origin @ motion(q)`` with ``motion`` a rotation of ``q`` rad about the joint axis or a
  translation of ``q`` m along it (URDF spec, http://wiki.ros.org/urdf/XML/joint);
* **mimic joints** follow their master: ``q = multiplier * q_master + offset`` (chains resolved);
  a mimic joint's own entry in a joint state is ignored, as ``robot_state_publisher`` does;
* joint names the URDF does not know are ignored and counted (:attr:`Update.unknown`,
  :attr:`RobotTransforms.unknown_total`); fixed joints named in a joint state are ignored too;
* a NaN or infinite position holds that joint's last good transform and flags it
  (:attr:`Update.held`); a joint never seen with a finite value has no transform yet.

The same chain product as :func:`robot_capture.kinematics.reference.urdf_fk`; the unit tests
compose these transforms root-to-link and compare them with that FK and ``RobotModel.fk_all``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from robot_capture.kinematics.reference import axis_angle
from robot_capture.kinematics.urdf import Urdf, parse_urdf

MOVING = ("revolute", "continuous", "prismatic")


@dataclass(frozen=True)
class LinkTransform:
    """``T_parent_child`` (4x4 ``float64``; translation in m) of one URDF joint."""

    parent: str
    child: str
    matrix: np.ndarray

    @property
    def translation(self) -> np.ndarray:
        """(3,) position of ``child``'s origin in ``parent``, m."""
        return self.matrix[:3, 3].copy()

    @property
    def quaternion(self) -> np.ndarray:
        """(4,) rotation of ``child`` in ``parent`` as ``(x, y, z, w)`` (ROS order), unit norm, w >= 0."""
        from scipy.spatial.transform import Rotation

        q = Rotation.from_matrix(self.matrix[:3, :3]).as_quat()
        return -q if q[3] < 0 else q


@dataclass
class Update:
    """What one joint state produced.

    ``transforms``: the moving joints' transforms (one per joint with a known value, URDF order);
    ``unknown``: names in the message the URDF does not know; ``held``: moving joints whose
    position was NaN/inf and whose last good transform was kept (or, never seen, left out).
    """

    transforms: list[LinkTransform] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)


def _motion(jtype: str, axis: np.ndarray, value: float) -> np.ndarray:
    M = np.eye(4)
    if jtype == "prismatic":
        M[:3, 3] = axis * value
    else:
        M[:3, :3] = axis_angle(axis, value)
    return M


class RobotTransforms:
    """Transforms of every link to its parent, from a URDF and joint states.

    Args:
        urdf: a parsed :class:`~robot_capture.kinematics.urdf.Urdf`, a URDF path or its XML text.
    Raises:
        FileNotFoundError: the URDF path does not exist.
        ValueError: malformed URDF, or a mimic chain that loops (the message names the joint).

    Attributes:
        root: the URDF's root link (``base_link``-like; the pelvis of the shipped humanoids).
        static: fixed joints' transforms (``/tf_static``), URDF order.
        moving: names of the moving joints, URDF order (mimic joints included).
        unknown_total: how many unknown joint names all updates met, counted per occurrence.
        held_total: how many NaN/inf positions all updates held.
    """

    def __init__(self, urdf: Urdf | str | Path):
        if not isinstance(urdf, Urdf):
            urdf = parse_urdf(urdf)
        self.urdf = urdf
        self.root = urdf.roots[0]
        self.static = [LinkTransform(j.parent, j.child, j.origin.copy())
                       for j in urdf.joints.values() if j.type not in MOVING]
        self.moving = [n for n, j in urdf.joints.items() if j.type in MOVING]
        self._master = {n: self._resolve(n) for n in self.moving}
        self._values: dict[str, float] = {}
        self._last: dict[str, LinkTransform] = {}
        self.unknown_total = 0
        self.held_total = 0

    def _resolve(self, name: str) -> tuple[str, float, float]:
        """(master, multiplier, offset): ``q_name = multiplier * q_master + offset``."""
        mult, off, seen = 1.0, 0.0, {name}
        j = self.urdf.joints[name]
        while j.mimic is not None:
            m = j.mimic
            mult, off = mult * m.multiplier, m.multiplier * off + m.offset
            if m.joint in seen:
                raise ValueError(f"URDF <mimic> of joint '{name}': mimic chain forms a loop")
            seen.add(m.joint)
            j = self.urdf.joints[m.joint]
        return j.name, mult, off

    def update(self, names: Sequence[str], positions: Sequence[float]) -> Update:
        """Apply one joint state and return the moving joints' transforms.

        Args:
            names: joint names (``sensor_msgs/JointState.name``).
            positions: joint positions, rad (revolute/continuous) or m (prismatic), same length.
        Returns:
            :class:`Update`: transforms of every moving joint whose value (or whose master's
            value) is known so far, plus the unknown and held names of this message.
        Raises:
            ValueError: ``names`` and ``positions`` differ in length.
        """
        if len(names) != len(positions):
            raise ValueError(f"joint state has {len(names)} names but {len(positions)} positions")
        up = Update()
        fresh: dict[str, float] = {}
        for n, p in zip(names, positions):
            j = self.urdf.joints.get(n)
            if j is None:
                up.unknown.append(n)
                continue
            if j.type not in MOVING or j.mimic is not None:
                continue
            p = float(p)
            if math.isfinite(p):
                fresh[n] = p
            else:
                up.held.append(n)
        self._values.update(fresh)
        for n in self.moving:
            master, mult, off = self._master[n]
            if master in up.held and n != master:
                up.held.append(n)  # a mimic joint is held with its master
            if master not in fresh and n in self._last:
                up.transforms.append(self._last[n])
                continue
            if master not in self._values:
                continue
            j = self.urdf.joints[n]
            T = j.origin @ _motion(j.type, j.axis, mult * self._values[master] + off)
            self._last[n] = LinkTransform(j.parent, j.child, T)
            up.transforms.append(self._last[n])
        self.unknown_total += len(up.unknown)
        self.held_total += sum(1 for n in up.held if self._master[n][0] == n)
        return up

    def link_poses(self) -> dict[str, np.ndarray]:
        """``{link: T_root_link}`` (4x4) of every link whose chain to the root is known so far."""
        by_child = {t.child: t for t in self.static}
        by_child.update({t.child: t for t in self._last.values()})
        out = {self.root: np.eye(4)}

        def pose(link):
            if link not in out:
                t = by_child.get(link)
                if t is None:
                    return None
                base = pose(t.parent)
                if base is None:
                    return None
                out[link] = base @ t.matrix
            return out[link]

        for ln in self.urdf.links:
            pose(ln)
        return {k: v for k, v in out.items() if v is not None}
