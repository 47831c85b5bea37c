"""IK task objects (in the style of pink / mink) and the solver status.

A task is a small declarative object: which frame(s), which costs. The C core does the
arithmetic; ``compute_error``/``compute_jacobian`` give the same quantities in NumPy for
inspection and tests. The solver minimizes, per iteration,

    1/2 sum_t cost_t * || e_t - J_t dq ||^2      (cost_t a per-row weight, units 1/m^2 or 1/rad^2)

Residual conventions (``e = target - current``):

* :class:`FrameTask`: ``e = [p_target - p; log(R_target R^T)]`` (6,), position in m and
  rotation vector in rad, both in the model's base-frame axes; ``J`` is the frame's (6, nq)
  geometric Jacobian ``[linear; angular]``.
* :class:`RelativeFrameTask`: the same for ``T_root_frame = T_base_root^-1 T_base_frame``,
  expressed in the root frame's axes (e.g. the wrist in the torso frame).
* :class:`PostureTask`: ``e = q_ref - q`` (nq,), ``J = I``; a regularization toward ``q_ref``.
* :class:`VectorTask`: ``e = v_target - (p_frame - p_origin)`` (3,), m, base-frame axes;
  ``J = J_v,frame - J_v,origin`` (3, nq). The target is a 4x4 whose translation column is
  ``v_target`` (its rotation is ignored). The finger objectives (wrist-to-fingertip vectors,
  DexPilot's fingertip pairs, fingertip positions) are built from it (``robot_capture.hands``).
"""
from __future__ import annotations

import enum

import numpy as np

from . import reference


class IKStatus(enum.IntEnum):
    """Outcome of one solve (the C core returns these integers)."""

    CONVERGED = 0  #: every frame/relative task within the position and orientation tolerances
    MAX_ITERATIONS = 1  #: not converged: iteration cap reached or step stalled (e.g. unreachable target)
    LIMIT_BOUND = 2  #: not converged and joints sit at position/velocity bounds (best effort)
    INVALID_INPUT = 3  #: NaN/inf in q0, targets or dt; q left unchanged


class FrameTask:
    """Pose of ``frame`` in the base frame. Target: 4x4 ``T_base_frame`` (m).

    Args:
        frame: link name.
        position_cost: weight of the 3 position rows (1/m^2); 0 makes an orientation-only task.
        orientation_cost: weight of the 3 rotation rows (1/rad^2); 0 makes a position-only task.
    """

    kind = "frame"
    root = None

    def __init__(self, frame: str, position_cost: float = 1.0, orientation_cost: float = 1.0):
        if position_cost < 0 or orientation_cost < 0:
            raise ValueError(f"FrameTask({frame!r}): costs must be >= 0")
        self.frame, self.position_cost, self.orientation_cost = frame, float(position_cost), float(orientation_cost)

    def current(self, model, q) -> np.ndarray:
        """(4, 4) current pose the target is compared with."""
        return model.fk(q, self.frame)

    def compute_error(self, model, q, target) -> np.ndarray:
        """(6,) ``[p_target - p; log(R_target R^T)]`` in the frame convention of this task."""
        T = self.current(model, q)
        target = np.asarray(target, dtype=float)
        return np.r_[target[:3, 3] - T[:3, 3], reference.log_so3(target[:3, :3] @ T[:3, :3].T)]

    def compute_jacobian(self, model, q) -> np.ndarray:
        """(6, nq) Jacobian of the task quantity (base-frame axes)."""
        return model.jacobian(q, self.frame)

    def __repr__(self):
        return f"{type(self).__name__}({self.frame!r}, position_cost={self.position_cost}, " \
               f"orientation_cost={self.orientation_cost})"


def PositionTask(frame: str, cost: float = 1.0) -> FrameTask:
    """Position-only :class:`FrameTask` (the target's rotation is ignored)."""
    return FrameTask(frame, position_cost=cost, orientation_cost=0.0)


def OrientationTask(frame: str, cost: float = 1.0) -> FrameTask:
    """Orientation-only :class:`FrameTask` (the target's translation is ignored)."""
    return FrameTask(frame, position_cost=0.0, orientation_cost=cost)


class RelativeFrameTask(FrameTask):
    """Pose of ``frame`` in ``root``. Target: 4x4 ``T_root_frame`` (m); errors in root axes.

    Both frames may move (e.g. wrist in torso with the waist free): the Jacobian is
    ``[R_root^T (J_v,frame - J_v,root + [p_frame - p_root]x J_w,root); R_root^T (J_w,frame - J_w,root)]``.
    """

    kind = "relative"

    def __init__(self, frame: str, root: str, position_cost: float = 1.0, orientation_cost: float = 1.0):
        super().__init__(frame, position_cost, orientation_cost)
        self.root = root

    def current(self, model, q) -> np.ndarray:
        return np.linalg.inv(model.fk(q, self.root)) @ model.fk(q, self.frame)

    def compute_jacobian(self, model, q) -> np.ndarray:
        Tb = model.fk(q, self.root)
        Rb, x = Tb[:3, :3], model.fk(q, self.frame)[:3, 3] - Tb[:3, 3]
        Ja, Jb = model.jacobian(q, self.frame), model.jacobian(q, self.root)
        return np.vstack([Rb.T @ (Ja[:3] - Jb[:3] + reference.skew(x) @ Jb[3:]), Rb.T @ (Ja[3:] - Jb[3:])])

    def __repr__(self):
        return f"RelativeFrameTask({self.frame!r}, {self.root!r}, position_cost={self.position_cost}, " \
               f"orientation_cost={self.orientation_cost})"


class PostureTask:
    """Regularization toward a joint configuration: ``e = q_ref - q`` (nq,), ``J = I``.

    Args:
        cost: weight per joint (1/rad^2); keep it small (e.g. 1e-3) next to frame tasks.
        q_ref: (nq,) reference; default ``model.neutral()``. Change it between solves with
            ``IKSolver.set_posture_reference``.
    """

    kind = "posture"
    frame = root = None
    position_cost = orientation_cost = 0.0

    def __init__(self, cost: float = 1e-3, q_ref=None):
        if cost < 0:
            raise ValueError("PostureTask: cost must be >= 0")
        self.cost = float(cost)
        self.q_ref = None if q_ref is None else np.array(q_ref, dtype=float)

    def compute_error(self, model, q, target=None) -> np.ndarray:
        qref = model.neutral() if self.q_ref is None else self.q_ref
        return qref - np.asarray(q, dtype=float)

    def compute_jacobian(self, model, q) -> np.ndarray:
        return np.eye(model.nq)

    def __repr__(self):
        return f"PostureTask(cost={self.cost})"


class VectorTask:
    """Vector from ``origin`` to ``frame`` (both link origins), in base-frame axes (m).

    Target: a 4x4 whose translation column is the wanted vector (rotation ignored), so the
    solver's (ntarget, 4, 4) target array is shared with the frame tasks. With ``origin`` the
    model's base link it is a position task. Change the cost per solve (e.g. DexPilot's pinch
    weights) with ``IKSolver.set_position_costs``.

    Args:
        frame: link at the head of the vector (e.g. a fingertip).
        origin: link at its tail (e.g. the palm, or another fingertip).
        cost: weight of the 3 rows (1/m^2), >= 0.
    """

    kind = "vector"
    orientation_cost = 0.0

    def __init__(self, frame: str, origin: str, cost: float = 1.0):
        if not cost >= 0:
            raise ValueError(f"VectorTask({frame!r}, {origin!r}): cost must be >= 0")
        self.frame, self.root, self.position_cost = frame, origin, float(cost)

    @property
    def origin(self) -> str:
        return self.root

    def current(self, model, q) -> np.ndarray:
        """(3,) current vector ``p_frame - p_origin`` (m, base axes)."""
        return model.fk(q, self.frame)[:3, 3] - model.fk(q, self.root)[:3, 3]

    def compute_error(self, model, q, target) -> np.ndarray:
        """(3,) ``v_target - (p_frame - p_origin)``; ``target`` a 4x4 (translation used) or a 3-vector."""
        target = np.asarray(target, dtype=float)
        v = target[:3, 3] if target.shape == (4, 4) else target
        return v - self.current(model, q)

    def compute_jacobian(self, model, q) -> np.ndarray:
        """(3, nq) ``J_v,frame - J_v,origin``."""
        return model.jacobian(q, self.frame)[:3] - model.jacobian(q, self.root)[:3]

    def __repr__(self):
        return f"VectorTask({self.frame!r}, {self.root!r}, cost={self.position_cost})"
