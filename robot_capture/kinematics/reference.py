"""Pure NumPy kinematics: the reference the C extension is tested against, and the baseline.

* :func:`fk_all` / :func:`jacobian`: forward kinematics and geometric frame Jacobians over a
  :class:`~.model.RobotModel`'s flattened link arrays (the fallback when ``_ik`` is not built).
* :func:`urdf_fk`: an independent FK that walks the parsed URDF joints by name (Rodrigues'
  formula, no flattening, no mimic/lock folding): used by the tests to check the model.
* :class:`ReferenceIKSolver`: the same multi-task damped least squares algorithm as
  ``_ik.c``, written in NumPy (the benchmark baseline, and a readable spec of the C code).

Conventions: poses are 4x4 ``T_base_frame``; Jacobians are (6, nq) ``[linear; angular]`` in
base-frame axes at the frame origin.
"""
from __future__ import annotations

import math

import numpy as np

CONVERGED, MAX_ITERATIONS, LIMIT_BOUND, INVALID_INPUT = 0, 1, 2, 3


def axis_angle(axis, angle: float) -> np.ndarray:
    """Rotation matrix (3x3) of ``angle`` rad about unit ``axis`` (Rodrigues' formula)."""
    x, y, z = axis
    c, s = math.cos(angle), math.sin(angle)
    C = 1.0 - c
    return np.array(
        [
            [c + x * x * C, x * y * C - z * s, x * z * C + y * s],
            [y * x * C + z * s, c + y * y * C, y * z * C - x * s],
            [z * x * C - y * s, z * y * C + x * s, c + z * z * C],
        ]
    )


def skew(v) -> np.ndarray:
    """3x3 cross-product matrix: ``skew(a) @ b == cross(a, b)``."""
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def log_so3(R: np.ndarray) -> np.ndarray:
    """Rotation vector (3,) ``w`` with ``exp(skew(w)) == R``, ``|w| <= pi`` (stable near 0 and pi)."""
    w = 0.5 * np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    s = float(np.linalg.norm(w))  # sin(theta)
    c = 0.5 * (R[0, 0] + R[1, 1] + R[2, 2] - 1.0)  # cos(theta)
    theta = math.atan2(s, c)
    if theta < 1e-9:
        return w * (1.0 + theta * theta / 6.0)
    if theta < math.pi - 1e-6:
        return w * (theta / s)
    # near pi: axis from the symmetric part, B = (R + I)/2 = a a^T (approximately)
    B = 0.5 * (R + np.eye(3))
    k = int(np.argmax(np.diag(B)))
    a = B[:, k] / math.sqrt(max(B[k, k], 1e-300))
    a /= np.linalg.norm(a)
    if np.dot(a, w) < 0:
        a = -a
    return a * theta


def _link_motion(model, i: int, q: np.ndarray) -> np.ndarray:
    T = model.link_origin[i].copy()
    jt = model.link_type[i]
    if jt == 0:
        return T
    s = model.link_mult[i] * q[model.link_qidx[i]] + model.link_offset[i]
    M = np.eye(4)
    if jt == 1:
        M[:3, :3] = axis_angle(model.link_axis[i], s)
    else:
        M[:3, 3] = model.link_axis[i] * s
    return T @ M


def fk_all(model, q: np.ndarray, needed=None) -> np.ndarray:
    """(nframes, 4, 4) pose of every frame (or only ``needed`` boolean mask) in the base frame."""
    n = model.nframes
    out = np.empty((n, 4, 4))
    out[0] = np.eye(4)
    for i in range(1, n):
        if needed is not None and not needed[i]:
            continue
        out[i] = out[model.link_parent[i]] @ _link_motion(model, i, q)
    return out


def chain(model, i: int) -> list[int]:
    """Links from ``i`` up to (excluding) the base whose joint moves with ``q``."""
    out = []
    while i > 0:
        if model.link_type[i] != 0:
            out.append(i)
        i = model.link_parent[i]
    return out


def jacobian_from_poses(model, poses: np.ndarray, i: int, links=None) -> np.ndarray:
    """(6, nq) Jacobian of frame ``i`` given all poses; ``links`` = precomputed ``chain(model, i)``."""
    J = np.zeros((6, model.nq))
    p = poses[i, :3, 3]
    for j in chain(model, i) if links is None else links:
        a = poses[j, :3, :3] @ model.link_axis[j]
        col = model.link_qidx[j]
        m = model.link_mult[j]
        if model.link_type[j] == 1:
            J[:3, col] += m * np.cross(a, p - poses[j, :3, 3])
            J[3:, col] += m * a
        else:
            J[:3, col] += m * a
    return J


def jacobian(model, q: np.ndarray, i: int) -> np.ndarray:
    """(6, nq) geometric Jacobian of frame index ``i`` (see module docstring)."""
    return jacobian_from_poses(model, fk_all(model, q), i)


def urdf_fk(urdf, joint_values: dict, frame: str, base: str) -> np.ndarray:
    """Independent FK: walk URDF joints from ``frame`` up to ``base`` (4x4 ``T_base_frame``).

    ``joint_values`` maps every movable joint on the path (mimic ones included) to its value.
    """
    by_child = {j.child: j for j in urdf.joints.values()}
    T = np.eye(4)
    link = frame
    while link != base:
        j = by_child[link]
        M = np.eye(4)
        if j.type in ("revolute", "continuous"):
            M[:3, :3] = axis_angle(j.axis, joint_values[j.name])
        elif j.type == "prismatic":
            M[:3, 3] = j.axis * joint_values[j.name]
        T = j.origin @ M @ T
        link = j.parent
    return T


# --------------------------------------------------------------------------- IK
def box_qp(H: np.ndarray, g: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_rounds: int | None = None):
    """min 1/2 d^T H d - g^T d  s.t.  lo <= d <= hi  (H symmetric positive definite).

    Clamp-aware re-solve (an active-set method for bound constraints, cf. Nocedal & Wright,
    *Numerical Optimization*, 2nd ed., sec. 16.5): solve on the free set; clamp every free
    variable that leaves its box and fix it at the bound; when none leaves, release the fixed
    variable whose multiplier has the wrong sign (gradient pointing into the box); repeat.
    Returns (d, n_active).
    """
    n = len(g)
    state = np.zeros(n, dtype=int)  # 0 free, -1 at lo, +1 at hi
    d = np.zeros(n)
    for _ in range(max_rounds or 2 * n + 2):
        free = state == 0
        fixed = ~free
        d[fixed] = np.where(state[fixed] < 0, lo[fixed], hi[fixed])
        if free.any():
            rhs = g[free] - H[np.ix_(free, fixed)] @ d[fixed]
            L = np.linalg.cholesky(H[np.ix_(free, free)])
            d[free] = np.linalg.solve(L.T, np.linalg.solve(L, rhs))
        below = free & (d < lo)
        above = free & (d > hi)
        if below.any() or above.any():
            state[below], state[above] = -1, 1
            continue
        grad = H @ d - g
        wrong = np.where(state < 0, -grad, np.where(state > 0, grad, 0.0))
        k = int(np.argmax(wrong))
        if wrong[k] <= 1e-14:
            break
        state[k] = 0
    return np.clip(d, lo, hi), int(np.count_nonzero(state))


class ReferenceIKSolver:
    """NumPy twin of the C solver (same tasks, damping, box constraints and statuses).

    Task objects are duck-typed: ``kind`` in {"frame", "relative", "posture", "vector"}, ``frame``,
    ``root``, ``position_cost``, ``orientation_cost``, ``cost``, ``q_ref``.
    """

    def __init__(self, model, tasks, damping=1e-6, error_damping=1.0, max_iterations=20, position_tolerance=1e-4,
                 orientation_tolerance=1e-3, step_tolerance=1e-10, velocity_limits=True, velocity_limit=None):
        self.model, self.tasks = model, list(tasks)
        self.damping, self.error_damping, self.max_iterations = damping, error_damping, max_iterations
        self.tol_p, self.tol_o, self.tol_step = position_tolerance, orientation_tolerance, step_tolerance
        self.velocity_limits = velocity_limits
        self.vel = np.array(model.velocity_limit if velocity_limit is None else velocity_limit, dtype=float)
        self.vlo, self.vhi = -self.vel, self.vel.copy()
        self._fi = [(model.frame_index(t.frame) if t.kind != "posture" else -1) for t in self.tasks]
        self._ri = [(model.frame_index(t.root) if t.kind in ("relative", "vector") else -1) for t in self.tasks]
        needed = np.zeros(model.nframes, dtype=bool)
        self._chains = {}
        for i in set(self._fi + self._ri) - {-1}:
            self._chains[i] = chain(model, i)
            k = i
            while k >= 0:
                needed[k] = True
                k = model.link_parent[k]
        self._needed = needed

    def _residuals(self, q, targets):
        """Per task: (e, J, W-diagonal, pos_err, ori_err)."""
        poses = fk_all(self.model, q, self._needed)
        out, ti = [], 0
        for t, fi, ri in zip(self.tasks, self._fi, self._ri):
            if t.kind == "posture":
                qref = t.q_ref if t.q_ref is not None else self.model.neutral()
                out.append((qref - q, np.eye(self.model.nq), np.full(self.model.nq, t.cost), 0.0, 0.0))
                continue
            T = targets[ti]
            ti += 1
            Ja = jacobian_from_poses(self.model, poses, fi, self._chains[fi])
            Ta = poses[fi]
            if t.kind == "vector":  # e = v - (p_frame - p_origin), J = J_v,frame - J_v,origin
                Jb = jacobian_from_poses(self.model, poses, ri, self._chains[ri])
                ep = T[:3, 3] - (Ta[:3, 3] - poses[ri][:3, 3])
                er = np.zeros(3)
                J = np.vstack([Ja[:3] - Jb[:3], np.zeros((3, self.model.nq))])
            elif t.kind == "frame":
                ep = T[:3, 3] - Ta[:3, 3]
                er = log_so3(T[:3, :3] @ Ta[:3, :3].T)
                J = Ja
            else:
                Tb = poses[ri]
                Jb = jacobian_from_poses(self.model, poses, ri, self._chains[ri])
                Rb = Tb[:3, :3]
                x = Ta[:3, 3] - Tb[:3, 3]
                ep = T[:3, 3] - Rb.T @ x
                er = log_so3(T[:3, :3] @ (Rb.T @ Ta[:3, :3]).T)
                J = np.vstack([Rb.T @ (Ja[:3] - Jb[:3] + skew(x) @ Jb[3:]), Rb.T @ (Ja[3:] - Jb[3:])])
            w = np.r_[np.full(3, t.position_cost), np.full(3, t.orientation_cost)]
            if t.orientation_cost <= 0:  # not tracked: reported as NaN (as the C core)
                er = np.zeros(3)
            if t.position_cost <= 0:
                ep = np.zeros(3)
            pe = float(np.linalg.norm(ep)) if t.position_cost > 0 else math.nan
            oe = float(np.linalg.norm(er)) if t.orientation_cost > 0 else math.nan
            out.append((np.r_[ep, er], J, w, pe, oe))
        return out

    def _converged(self, res):
        """Tolerances hold for the highest-cost task; cost c gets ``tol * sqrt(c_max / c)``."""
        frames = [t for t in self.tasks if t.kind != "posture"]
        mp = max((t.position_cost for t in frames), default=0.0)
        mo = max((t.orientation_cost for t in frames), default=0.0)
        for t, (_, _, _, pe, oe) in zip(self.tasks, res):
            if t.kind == "posture":
                continue
            if t.position_cost > 0 and pe > self.tol_p * math.sqrt(mp / t.position_cost):
                return False
            if t.orientation_cost > 0 and oe > self.tol_o * math.sqrt(mo / t.orientation_cost):
                return False
        return True

    def solve(self, q0, targets, dt: float = 0.0):
        """Returns (q, status, iterations, position_errors, orientation_errors) (see ``IKSolver``)."""
        m = self.model
        q0 = np.asarray(q0, dtype=float)
        ntask = len(self.tasks)
        rot_tasks = [k for k, t in enumerate(t for t in self.tasks if t.kind != "posture") if t.orientation_cost > 0]
        bad_rot = any(np.abs(targets[k][:3, :3].T @ targets[k][:3, :3] - np.eye(3)).max() > 1e-6
                      or np.linalg.det(targets[k][:3, :3]) <= 0 for k in rot_tasks)
        if (not np.all(np.isfinite(q0)) or any(not np.all(np.isfinite(T)) for T in targets)
                or not math.isfinite(dt) or dt < 0 or bad_rot):
            return q0.copy(), INVALID_INPUT, 0, np.full(ntask, np.nan), np.full(ntask, np.nan)
        lo, hi = m.lower.copy(), m.upper.copy()
        if dt > 0 and self.velocity_limits:
            vlo, vhi = q0 + self.vlo * dt, q0 + self.vhi * dt
            lo, hi = np.maximum(lo, vlo), np.minimum(hi, vhi)
            empty = lo > hi
            if empty.any():  # the velocity box misses the position limits: move toward them at max speed
                tgt = np.where(vhi < m.lower, m.lower, m.upper)
                step = np.clip(tgt - q0, -self.vel * dt, self.vel * dt)
                lo[empty] = hi[empty] = (q0 + step)[empty]
        q = np.clip(q0, lo, hi)
        it, nactive, status, stalled = 0, 0, MAX_ITERATIONS, False
        E_acc, boost, q_acc = math.inf, 1.0, q
        while True:
            res = self._residuals(q, targets)
            conv = self._converged(res) if any(t.kind != "posture" for t in self.tasks) else stalled
            if conv:
                status = CONVERGED
                break
            E = sum(0.5 * float(e @ (w * e)) for e, _, w, _, _ in res)
            if E > E_acc:  # reject the step, damp 10x harder (LM step acceptance)
                q, boost = q_acc, min(boost * 10.0, 1e13)
                continue
            E_acc, q_acc = E, q
            if it >= self.max_iterations or stalled:
                break
            H = np.zeros((m.nq, m.nq))
            g = np.zeros(m.nq)
            for e, J, w, _, _ in res:
                H += J.T @ (w[:, None] * J)
                g += J.T @ (w * e)
            # Levenberg-Marquardt damping with error-dependent term, Sugihara (2011)
            # "Solvability-unconcerned inverse kinematics by the Levenberg-Marquardt method",
            # IEEE T-RO 27(5): W_N = E_k I + W_bar_N, here W_bar_N = damping * I.
            H[np.diag_indices_from(H)] += boost * (self.error_damping * E + self.damping)
            if boost > 1.0:
                boost *= 0.1
            dq, nactive = box_qp(H, g, lo - q, hi - q)
            q = np.clip(q + dq, lo, hi)  # rounding guard only: dq is inside the box
            it += 1
            stalled = bool(np.max(np.abs(dq)) < self.tol_step)
        if status != CONVERGED and nactive > 0:
            status = LIMIT_BOUND
        pe = np.array([r[3] for r in res])
        oe = np.array([r[4] for r in res])
        return q, status, it, pe, oe
