"""RobotModel: a fixed-base kinematic tree built from a URDF, flattened for the C solver.

Every link is a named frame. Links are stored in a topological order (parent index < child
index, the base link is index 0); link ``i > 0`` hangs from its parent through one joint:

    T_base_i = T_base_parent(i) @ origin[i] @ motion_i(s_i),   s_i = mult[i] * q[qidx[i]] + offset[i]

where ``motion`` is a rotation by ``s`` about ``axis[i]`` (revolute/continuous, type 1) or a
translation by ``s`` along it (prismatic, type 2); fixed, locked, floating and planar joints
(type 0) have the motion folded into ``origin``. Mimic joints share their master's column of
``q`` (``mult``/``offset`` from ``<mimic>``), so Jacobians include them automatically.

``fk``/``jacobian`` use the C extension ``robot_capture.kinematics._ik`` when it is built,
else the pure NumPy code in :mod:`.reference` (same results to ~1e-12).
"""
from __future__ import annotations

import difflib
import logging
import math
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from . import reference
from .urdf import Urdf, parse_urdf

log = logging.getLogger(__name__)

try:  # the C extension is optional at import time (NumPy fallback)
    from . import _ik
except ImportError:  # pragma: no cover - exercised only when the extension is not built
    _ik = None

FIXED, REVOLUTE, PRISMATIC = 0, 1, 2


def unknown_name_error(kind: str, name: str, known: Iterable[str]) -> KeyError:
    """KeyError for an unknown name, suggesting the closest known ones (difflib)."""
    known = list(known)
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else f"; known: {known[:8]}..."
    return KeyError(f"unknown {kind} {name!r}{hint}")


def _motion(jtype: int, axis: np.ndarray, s: float) -> np.ndarray:
    T = np.eye(4)
    if jtype == REVOLUTE:
        T[:3, :3] = reference.axis_angle(axis, s)
    elif jtype == PRISMATIC:
        T[:3, 3] = axis * s
    return T


class RobotModel:
    """Kinematic model of a fixed-base robot (the ``base_link`` frame is the world).

    Attributes:
        name: robot name from the URDF.
        base_link: name of the root frame; all poses are expressed in it.
        joint_names: active joints (not fixed, locked or mimic), URDF order; ``len == nq``.
        nq: number of active joints.
        lower, upper: (nq,) position limits (rad or m); ±inf for continuous joints.
        velocity_limit: (nq,) velocity limits (rad/s or m/s); inf when the URDF has none.
        frame_names: every link of the sub-tree, topological order (``frame_names[0] == base_link``).
        locked: {joint: value} of locked joints.
        mimic: {joint: (master, multiplier, offset)} of mimic joints.
    """

    def __init__(self, urdf: Urdf, base_link: str | None = None, locked_joints=None):
        self.urdf = urdf
        self.name = urdf.name
        if base_link is None:
            base_link = urdf.roots[0]
        elif base_link not in urdf.links:
            raise unknown_name_error("link", base_link, urdf.links)
        self.base_link = base_link
        children: dict[str, list] = {}
        for j in urdf.joints.values():
            children.setdefault(j.parent, []).append(j)
        # depth-first pre-order from the base: parents before children, URDF order among siblings
        order, joints_in = [base_link], []
        stack = list(reversed(children.get(base_link, [])))
        while stack:
            j = stack.pop()
            order.append(j.child)
            joints_in.append(j)
            stack.extend(reversed(children.get(j.child, [])))
        sub_joints = {j.name: j for j in joints_in}
        movable = {n: j for n, j in sub_joints.items() if j.type in ("revolute", "continuous", "prismatic")}
        locked = self._locked_values(locked_joints, movable, urdf)
        # active joints in URDF document order
        self.joint_names = [
            n for n in urdf.joints if n in movable and n not in locked and movable[n].mimic is None
        ]
        qindex = {n: i for i, n in enumerate(self.joint_names)}
        self.nq = len(self.joint_names)
        self.lower = np.array([movable[n].lower for n in self.joint_names], dtype=float)
        self.upper = np.array([movable[n].upper for n in self.joint_names], dtype=float)
        self.velocity_limit = np.array([movable[n].velocity for n in self.joint_names], dtype=float)
        self.locked = dict(locked)
        self.mimic = {}
        self.frame_names = order
        self._frame_index = {n: i for i, n in enumerate(order)}
        nl = len(order)
        self.link_parent = np.full(nl, -1, dtype=np.int32)
        self.link_type = np.zeros(nl, dtype=np.int32)
        self.link_qidx = np.full(nl, -1, dtype=np.int32)
        self.link_mult = np.zeros(nl)
        self.link_offset = np.zeros(nl)
        self.link_origin = np.tile(np.eye(4), (nl, 1, 1))
        self.link_axis = np.zeros((nl, 3))
        self.link_joint = [""] * nl

        def resolve(name, depth=0):
            """(qidx, mult, offset) of a movable joint's value as an affine function of q."""
            if depth > len(movable):
                raise ValueError(f"URDF <mimic> of joint '{name}': mimic chain forms a loop")
            if name in qindex:
                return qindex[name], 1.0, 0.0
            if name in locked:
                return -1, 0.0, locked[name]
            j = movable.get(name)
            if j is None or j.mimic is None:
                log.warning("mimic master '%s' is outside the sub-tree of '%s': held at 0", name, base_link)
                return -1, 0.0, 0.0
            idx, m, o = resolve(j.mimic.joint, depth + 1)
            return idx, j.mimic.multiplier * m, j.mimic.multiplier * o + j.mimic.offset

        for i, ln in enumerate(order[1:], start=1):
            j = joints_in[i - 1]
            self.link_parent[i] = self._frame_index[j.parent]
            self.link_joint[i] = j.name
            self.link_axis[i] = j.axis
            origin = j.origin.copy()
            jt = {"revolute": REVOLUTE, "continuous": REVOLUTE, "prismatic": PRISMATIC}.get(j.type, FIXED)
            if j.type in ("floating", "planar"):
                log.info("joint '%s' (%s) treated as fixed at identity (fixed-base model)", j.name, j.type)
            if jt != FIXED:
                if j.mimic is not None:
                    self.mimic[j.name] = (j.mimic.joint, j.mimic.multiplier, j.mimic.offset)
                idx, m, o = resolve(j.name)
                if idx < 0:  # locked (or constant mimic): fold the motion into the origin
                    origin = origin @ _motion(jt, j.axis, o)
                    jt = FIXED
                else:
                    self.link_qidx[i], self.link_mult[i], self.link_offset[i] = idx, m, o
            self.link_type[i] = jt
            self.link_origin[i] = origin
        self._kin = None
        if _ik is not None:
            self._kin = _ik.Kinematics(
                self.link_parent, self.link_type, self.link_qidx, self.link_mult, self.link_offset,
                np.ascontiguousarray(self.link_origin), np.ascontiguousarray(self.link_axis), self.nq,
            )

    def __repr__(self):
        return (f"RobotModel({self.name!r}, base_link={self.base_link!r}, nq={self.nq}, "
                f"nframes={self.nframes}, locked={len(self.locked)}, mimic={len(self.mimic)})")

    @staticmethod
    def _locked_values(locked_joints, movable, urdf) -> dict[str, float]:
        if locked_joints is None:
            return {}
        if isinstance(locked_joints, Mapping):
            items = [(n, float(v)) for n, v in locked_joints.items()]
        else:
            items = [(n, None) for n in ([locked_joints] if isinstance(locked_joints, str) else locked_joints)]
        out = {}
        for n, v in items:
            if n not in movable:
                if n in urdf.joints and urdf.joints[n].type not in ("revolute", "continuous", "prismatic"):
                    continue  # locking a fixed joint is a no-op
                raise unknown_name_error("joint", n, movable)
            j = movable[n]
            if j.mimic is not None:
                raise ValueError(f"locked_joints: joint '{n}' is a mimic of '{j.mimic.joint}'; lock its master")
            if v is None:
                v = min(max(0.0, j.lower), j.upper)
            if not math.isfinite(v) or v < j.lower - 1e-12 or v > j.upper + 1e-12:
                raise ValueError(f"locked_joints: value {v} of joint '{n}' is outside [{j.lower}, {j.upper}]")
            out[n] = v
        return out

    @classmethod
    def from_urdf(cls, path: str | Path, base_link: str | None = None, locked_joints=None) -> "RobotModel":
        """Load a URDF (meshes are never read).

        Args:
            path: URDF file path (or XML text).
            base_link: root frame of the model; only its sub-tree is kept. Default: the URDF root.
            locked_joints: joint names locked at 0 (clipped into their limits), or {name: value}.
        Raises:
            ValueError: malformed URDF (message names the element), a locked value outside limits.
            KeyError: unknown ``base_link`` or locked joint name (message suggests the closest).
        """
        return cls(parse_urdf(path), base_link=base_link, locked_joints=locked_joints)

    # ----------------------------------------------------------------- names
    @property
    def nframes(self) -> int:
        return len(self.frame_names)

    def frame_index(self, name: str) -> int:
        """Index of a frame (link) name; KeyError with suggestions if unknown."""
        try:
            return self._frame_index[name]
        except KeyError:
            raise unknown_name_error("frame", name, self.frame_names) from None

    def joint_index(self, name: str) -> int:
        """Index of an active joint in ``q``; KeyError with suggestions if unknown."""
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise unknown_name_error("active joint", name, self.joint_names) from None

    # ------------------------------------------------------------ configurations
    def neutral(self) -> np.ndarray:
        """(nq,) zero configuration clipped into the position limits."""
        return np.clip(np.zeros(self.nq), self.lower, self.upper)

    def random_configuration(self, rng: np.random.Generator, margin: float = 0.0) -> np.ndarray:
        """(nq,) uniform sample within the limits shrunk by ``margin`` (continuous: [-pi, pi])."""
        lo = np.where(np.isfinite(self.lower), self.lower, -math.pi) + margin
        hi = np.where(np.isfinite(self.upper), self.upper, math.pi) - margin
        return rng.uniform(lo, np.maximum(lo, hi))

    def check_q(self, q) -> np.ndarray:
        q = np.ascontiguousarray(q, dtype=float)
        if q.shape != (self.nq,):
            raise ValueError(f"q has shape {q.shape}, expected ({self.nq},) for joints {self.joint_names[:3]}...")
        return q

    def joint_positions(self, q) -> dict[str, float]:
        """Values of every movable joint of the sub-tree: active (from ``q``), mimic and locked."""
        q = self.check_q(q)
        out = {n: float(q[i]) for i, n in enumerate(self.joint_names)}
        for i in range(1, self.nframes):
            if self.link_qidx[i] >= 0 and self.link_joint[i] not in out:
                out[self.link_joint[i]] = float(self.link_mult[i] * q[self.link_qidx[i]] + self.link_offset[i])
        out.update(self.locked)
        return out

    # ------------------------------------------------------------- kinematics
    def fk_all(self, q) -> np.ndarray:
        """(nframes, 4, 4) pose of every frame in the base frame at configuration ``q`` (nq,)."""
        q = self.check_q(q)
        if self._kin is not None:
            out = np.empty((self.nframes, 4, 4))
            self._kin.fk(q, out)
            return out
        return reference.fk_all(self, q)

    def fk_frames(self, qs, frames) -> np.ndarray:
        """(N, L, 4, 4) poses of ``frames`` (L names or indices) in the base frame for each of the
        configurations ``qs`` (N, nq); only those frames' chains are computed (C core).

        Raises:
            KeyError: unknown frame name. ValueError: ``qs`` not (N, nq).
        """
        qs = np.ascontiguousarray(qs, dtype=float)
        if qs.ndim != 2 or qs.shape[1] != self.nq:
            raise ValueError(f"qs has shape {qs.shape}, expected (N, {self.nq})")
        if isinstance(frames, np.ndarray) and frames.dtype == np.int32:  # indices already (a per-frame caller)
            idx = frames
        else:
            idx = np.array([f if isinstance(f, (int, np.integer)) else self.frame_index(f) for f in frames],
                           dtype=np.int32)
        out = np.empty((qs.shape[0], len(idx), 4, 4))
        if self._kin is not None:
            self._kin.fk_links(qs, idx, out)
        else:
            for n, q in enumerate(qs):
                out[n] = reference.fk_all(self, q)[idx]
        return out

    def fk(self, q, frame: str) -> np.ndarray:
        """(4, 4) pose ``T_base_frame`` of ``frame`` at ``q`` (nq,); KeyError if unknown."""
        i = self.frame_index(frame)
        return self.fk_all(q)[i]

    def jacobian(self, q, frame: str) -> np.ndarray:
        """(6, nq) geometric Jacobian of ``frame``: rows ``[linear; angular]`` in base-frame axes,
        linear velocity of the frame origin (m/s or m/rad per unit qdot). Mimic joints add into
        their master's column."""
        i = self.frame_index(frame)
        q = self.check_q(q)
        if self._kin is not None:
            out = np.zeros((6, self.nq))
            self._kin.jacobian(q, i, out)
            return out
        return reference.jacobian(self, q, i)
