"""IKSolver: weighted multi-task inverse kinematics on a RobotModel, run by the C core ``_ik``.

Algorithm (``_ik.c``; NumPy twin in :class:`.reference.ReferenceIKSolver`): Gauss-Newton
iterations on ``1/2 sum_t cost_t ||e_t||^2`` with Levenberg-Marquardt damping

    lambda = boost * (error_damping * E(q) + damping),   E = 1/2 sum_t e_t^T W_t e_t

i.e. the error-dependent damping of Sugihara (2011), "Solvability-unconcerned inverse
kinematics by the Levenberg-Marquardt method", IEEE T-RO 27(5):984-991 (``W_N = E_k I +
W_bar_N``; ``error_damping`` scales the ``E_k`` term, 1.0 is the paper's choice), with the
classical LM step acceptance: a step that raises E is rejected and ``boost`` is multiplied by
10 (divided by 10 after each accepted step). Each step is a box-constrained least-squares
problem (position limits intersected with ``q0 -/+ velocity_limit * dt``) solved on the
damped normal equations by a clamp-aware active-set re-solve, block by block when tasks
split the joints into independent groups (e.g. two arms). Warm start from ``q0``; stop when
every frame task is within tolerance, at ``max_iterations``, or when the step stalls.

Two entry points:

* ``solve(q0, targets, dt=None) -> IKResult``: convenient, validates shapes, copies results.
* ``solve_into(q0, targets_array, out, dt=0.0) -> int``: the fast path (a bound C method,
  no Python frame): ``q0``/``out`` float64 (nq,), ``targets_array`` float64 (ntarget, 4, 4)
  in task order (posture tasks have no slot), returns an ``IKStatus`` int; per-task errors
  land in ``solver.task_errors``/``position_errors``/``orientation_errors`` (overwritten by
  every solve) and ``solver.iterations``. On INVALID_INPUT ``out`` is not written.

Thread safety: the numeric core releases the GIL; a solver object holds its own
workspace, so use one solver per thread (re-entrant use raises RuntimeError).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .model import RobotModel
from .reference import ReferenceIKSolver
from .tasks import FrameTask, IKStatus, OrientationTask, PositionTask, PostureTask, RelativeFrameTask, VectorTask

try:
    from . import _ik
except ImportError:  # pragma: no cover
    _ik = None

#: the error for backend="c" without the built extension (a source checkout on sys.path)
C_EXTENSION_MISSING = (
    "the C IK extension robot_capture.kinematics._ik is not built (is a source checkout on sys.path?): "
    "install the package with `pip install .` (or `make venv`), or ask for the ~100x slower "
    "NumPy twin by name with IKSolver(..., backend=\"numpy\")")

log = logging.getLogger(__name__)

__all__ = ["IKSolver", "IKResult", "IKStatus", "FrameTask", "RelativeFrameTask", "PostureTask",
           "PositionTask", "OrientationTask", "VectorTask"]

_TYPE = {"frame": 0, "relative": 1, "posture": 2, "vector": 3}


_STATUSES = {int(s): s for s in IKStatus}  # status code -> IKStatus, without an enum call per solve


@dataclass
class IKResult:
    """Result of :meth:`IKSolver.solve`.

    Attributes:
        q: (nq,) solution (equals q0 on INVALID_INPUT).
        status: :class:`IKStatus`.
        iterations: Gauss-Newton steps taken.
        task_errors: (ntasks,) weighted residual norm ``sqrt(e^T W e)`` per task.
        position_errors: (ntasks,) position error norm per task (m; 0 for posture tasks, NaN when
            the task's position_cost is 0, i.e. not tracked).
        orientation_errors: (ntasks,) rotation error angle per task (rad; 0 for posture tasks, NaN
            when the task's orientation_cost is 0).
    """

    q: np.ndarray
    status: IKStatus
    iterations: int
    task_errors: np.ndarray
    position_errors: np.ndarray
    orientation_errors: np.ndarray

    @property
    def converged(self) -> bool:
        return self.status == IKStatus.CONVERGED


class IKSolver:
    """Multi-task IK on ``model`` (see module docstring).

    Args:
        model: :class:`RobotModel`.
        tasks: sequence of FrameTask / RelativeFrameTask / PostureTask (order = target order).
        damping: constant part ``w_bar`` of the LM damping (added to the diagonal), >= 0.
        error_damping: factor on the error-dependent part ``E(q)`` of the damping, >= 0.
        max_iterations: Gauss-Newton steps per solve (warm-started teleop needs 1-3).
        position_tolerance: m; orientation_tolerance: rad; convergence per frame task. They hold
            for the highest-cost task; a task with cost c uses ``tol * sqrt(c_max / c)``.
        step_tolerance: stop when ``max|dq|`` falls below it (rad or m).
        velocity_limits: when ``dt`` is given, bound ``|q - q0| <= velocity_limit * dt``.
        velocity_limit: (nq,) rad/s (or m/s) used for that bound, >= 0; default the URDF's
            ``model.velocity_limit``. :meth:`set_velocity_bounds` narrows it per solve (e.g. to an
            acceleration limit).
        backend: "c" (default) or "numpy" (the reference implementation, ~100x slower). There is
            no silent fallback: "numpy" runs only when asked for by name.
    Raises:
        KeyError: unknown frame name (with suggestions). ValueError: bad task or parameters.
        ImportError: backend "c" when the C extension ``_ik`` is not built (the message says how
            to build it: ``pip install .`` from the checkout).
    """

    def __init__(self, model: RobotModel, tasks, damping: float = 1e-6, error_damping: float = 1.0,
                 max_iterations: int = 20,
                 position_tolerance: float = 1e-4, orientation_tolerance: float = 1e-3,
                 step_tolerance: float = 1e-10, velocity_limits: bool = True, velocity_limit=None,
                 backend: str = "c"):
        self.model = model
        self.tasks = list(tasks)
        if not self.tasks:
            raise ValueError("IKSolver needs at least one task")
        for t in self.tasks:
            if getattr(t, "kind", None) not in _TYPE:
                raise ValueError(f"not an IK task: {t!r}")
            if t.kind != "posture":
                model.frame_index(t.frame)
            if t.kind in ("relative", "vector"):
                model.frame_index(t.root)
        self.target_tasks = [i for i, t in enumerate(self.tasks) if t.kind != "posture"]
        self.ntarget = len(self.target_tasks)
        nt = len(self.tasks)
        # one (3, nt) buffer, so that solve() hands out all three with a single copy
        self._errors = np.zeros((3, nt))
        self.task_errors, self.position_errors, self.orientation_errors = self._errors
        self._targets = np.tile(np.eye(4), (self.ntarget, 1, 1))
        self.params = dict(damping=float(damping), error_damping=float(error_damping), max_iterations=int(max_iterations),
                           position_tolerance=float(position_tolerance),
                           orientation_tolerance=float(orientation_tolerance),
                           step_tolerance=float(step_tolerance), velocity_limits=bool(velocity_limits))
        vel = np.array(model.velocity_limit if velocity_limit is None else velocity_limit, dtype=float)
        if vel.shape != (model.nq,) or np.isnan(vel).any() or (vel < 0).any():
            raise ValueError(f"velocity_limit must be (nq,)=({model.nq},) values >= 0, got {vel!r}")
        self.velocity_limit = vel
        if backend not in ("c", "numpy"):
            raise ValueError(f"backend must be 'c' or 'numpy', not {backend!r}")
        if backend == "c" and (_ik is None or model._kin is None):
            # never a silent fallback: the NumPy twin is ~100x slower (only by name, backend="numpy")
            raise ImportError(C_EXTENSION_MISSING)
        self.backend = backend
        self.iterations = 0
        if backend == "c":
            i32 = lambda xs: np.array(xs, dtype=np.int32)  # noqa: E731
            self._core = _ik.Solver(
                model._kin, model.lower, model.upper, vel,
                i32([_TYPE[t.kind] for t in self.tasks]),
                i32([model.frame_index(t.frame) if t.kind != "posture" else -1 for t in self.tasks]),
                i32([model.frame_index(t.root) if t.kind in ("relative", "vector") else -1 for t in self.tasks]),
                np.array([t.cost if t.kind == "posture" else t.position_cost for t in self.tasks]),
                np.array([t.orientation_cost for t in self.tasks]),
                (self.params["damping"], self.params["error_damping"], self.params["max_iterations"], self.params["position_tolerance"],
                 self.params["orientation_tolerance"], self.params["step_tolerance"], self.params["velocity_limits"]),
                self.task_errors, self.position_errors, self.orientation_errors,
            )
            #: fast path: solve_into(q0, targets (ntarget,4,4), out (nq,), dt=0.0) -> int status
            self.solve_into = self._core.solve_into
        else:
            self._ref = ReferenceIKSolver(model, self.tasks, damping=damping, error_damping=error_damping,
                                          max_iterations=max_iterations,
                                          position_tolerance=position_tolerance,
                                          orientation_tolerance=orientation_tolerance,
                                          step_tolerance=step_tolerance, velocity_limits=velocity_limits,
                                          velocity_limit=vel)
            self.solve_into = self._solve_into_numpy
        for i, t in enumerate(self.tasks):
            if t.kind == "posture" and t.q_ref is not None:
                self.set_posture_reference(i, t.q_ref)

    # ------------------------------------------------------------------ setup
    def _task_index(self, task) -> int:
        if isinstance(task, int):
            if not 0 <= task < len(self.tasks):
                raise IndexError(f"task index {task} out of range")
            return task
        for i, t in enumerate(self.tasks):
            if t is task:
                return i
        raise ValueError(f"{task!r} is not a task of this solver")

    def set_posture_reference(self, task, q_ref) -> None:
        """Set ``q_ref`` (nq,) of a PostureTask (the task object or its index)."""
        i = self._task_index(task)
        t = self.tasks[i]
        if t.kind != "posture":
            raise ValueError(f"task {i} ({t!r}) is not a PostureTask")
        q_ref = self.model.check_q(q_ref)
        t.q_ref = q_ref.copy()
        if self.backend == "c":
            self._core.set_posture_reference(i, q_ref)

    def set_costs(self, task, position_cost: float, orientation_cost: float = 0.0) -> None:
        """Change a task's costs between solves (a PostureTask's cost is ``position_cost``)."""
        i = self._task_index(task)
        t = self.tasks[i]
        if t.kind == "posture":
            t.cost = float(position_cost)
        else:
            t.position_cost, t.orientation_cost = float(position_cost), float(orientation_cost)
        if self.backend == "c":
            self._core.set_weights(i, float(position_cost), float(orientation_cost))

    def set_position_costs(self, costs) -> None:
        """Every task's position cost in one call (a PostureTask's cost; orientation costs are kept):
        ``costs`` (ntasks,) float64, finite, >= 0 (1/m^2; posture 1/rad^2). The fast way to change
        per-frame weights such as DexPilot's pinch weights (``robot_capture.hands``).

        Raises:
            ValueError: wrong shape, NaN/inf or a negative cost.
        """
        costs = np.ascontiguousarray(costs, dtype=float)
        if self.backend == "c":  # the C core checks the length and the values (ValueError)
            self._core.set_position_costs(costs)
        elif costs.shape != (len(self.tasks),) or not (np.isfinite(costs).all() and (costs >= 0).all()):
            raise ValueError(f"costs must be ({len(self.tasks)},) values, finite and >= 0")
        for t, c in zip(self.tasks, costs.tolist()):
            if t.kind == "posture":
                t.cost = float(c)
            else:
                t.position_cost = float(c)

    def set_max_iterations(self, n: int) -> None:
        """Gauss-Newton steps per solve from the next solve on (e.g. fewer while tracking smoothly,
        more after a jump). Raises ValueError outside 0..100000."""
        n = int(n)
        if not 0 <= n <= 100000:
            raise ValueError("max_iterations must be in 0..100000")
        self.params["max_iterations"] = n
        if self.backend == "c":
            self._core.set_max_iterations(n)
        else:
            self._ref.max_iterations = n

    def set_velocity_bounds(self, vlo, vhi) -> None:
        """Signed velocity bounds for the next solves (rad/s, (nq,) each): a solve with ``dt > 0``
        keeps ``q0 + vlo*dt <= q <= q0 + vhi*dt`` (within the position limits, which win when the
        two boxes do not meet). Default ``-velocity_limit, +velocity_limit``; an acceleration limit
        ``a`` is ``vlo = max(-v, qd_prev - a dt)``, ``vhi = min(v, qd_prev + a dt)``.

        Raises:
            ValueError: wrong shape, NaN, or ``vlo > vhi``.
        """
        vlo = np.ascontiguousarray(vlo, dtype=float)
        vhi = np.ascontiguousarray(vhi, dtype=float)
        if vlo.shape != (self.model.nq,) or vhi.shape != (self.model.nq,):
            raise ValueError(f"velocity bounds must have shape ({self.model.nq},)")
        if self.backend == "c":
            self._core.set_velocity_bounds(vlo, vhi)
        else:
            if not (vlo <= vhi).all():
                raise ValueError("velocity bounds must not be NaN, with vlo <= vhi")
            self._ref.vlo, self._ref.vhi = vlo.copy(), vhi.copy()

    # ------------------------------------------------------------------ solve
    def _solve_into_numpy(self, q0, targets, out, dt=0.0):
        q, st, it, pe, oe = self._ref.solve(q0, targets, dt or 0.0)
        self.iterations = it
        self.position_errors[:] = pe
        self.orientation_errors[:] = oe
        for i, t in enumerate(self.tasks):
            if t.kind == "posture":
                e = t.compute_error(self.model, q)
                self.task_errors[i] = np.sqrt(t.cost * e @ e)
            else:
                self.task_errors[i] = np.sqrt(np.nansum([t.position_cost * pe[i] ** 2, t.orientation_cost * oe[i] ** 2]))
        if st != IKStatus.INVALID_INPUT:
            out[:] = q
        return int(st)

    def pack_targets(self, targets) -> np.ndarray:
        """Copy ``targets`` into the solver's (ntarget, 4, 4) buffer and return it.

        ``targets``: a sequence aligned with ``tasks`` (None for posture tasks), or one with
        only the frame/relative tasks' targets, or an array of shape (ntarget, 4, 4).
        Raises ValueError on a wrong count or shape.
        """
        if isinstance(targets, np.ndarray) and targets.shape == (self.ntarget, 4, 4):
            self._targets[:] = targets
            return self._targets
        targets = list(targets)
        if len(targets) == len(self.tasks):
            targets = [targets[i] for i in self.target_tasks]
        if len(targets) != self.ntarget:
            raise ValueError(f"expected {len(self.tasks)} targets aligned with tasks (None for posture) "
                             f"or {self.ntarget} frame targets, got {len(targets)}")
        for k, T in enumerate(targets):
            T = np.asarray(T, dtype=float)
            if T.shape != (4, 4):
                raise ValueError(f"target for {self.tasks[self.target_tasks[k]]!r} has shape {T.shape}, expected (4, 4)")
            self._targets[k] = T
        return self._targets

    def solve(self, q0, targets, dt: float | None = None) -> IKResult:
        """Solve from warm start ``q0`` (nq,) toward ``targets`` (see :meth:`pack_targets`).

        Args:
            dt: time step (s) for velocity limits; None or 0 disables them.
        Returns:
            :class:`IKResult`; INVALID_INPUT with ``q = q0`` for NaN/inf in q0, targets or dt, a
            negative dt, or a tracked target rotation that is not a rotation matrix
            (``|R^T R - I| > 1e-6`` or ``det R <= 0``).
        Raises:
            ValueError: wrong shapes.
        """
        q0 = np.ascontiguousarray(q0, dtype=float)
        if q0.shape != (self.model.nq,):
            raise ValueError(f"q0 has shape {q0.shape}, expected ({self.model.nq},)")
        if (type(targets) is np.ndarray and targets.dtype == np.float64 and targets.shape == self._targets.shape
                and targets.flags.c_contiguous):
            tg = targets  # already the solver's layout: the solver only reads it
        else:
            tg = self.pack_targets(targets)
        out = q0.copy()
        st = self.solve_into(q0, tg, out, float(dt or 0.0))
        it = self._core.iterations if self.backend == "c" else self.iterations
        errors = self._errors.copy()
        return IKResult(out, _STATUSES[st], it, errors[0], errors[1], errors[2])

    @property
    def last_iterations(self) -> int:
        """Iterations of the last solve (either entry point)."""
        return self._core.iterations if self.backend == "c" else self.iterations
