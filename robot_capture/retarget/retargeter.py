"""Retargeter: HumanPose -> robot joint command (pure pipeline, no ROS).

Per step: checks (enable, stale, NaN, invalid) -> IK targets from the human keypoints
(per-limb scaling, rotation offsets) -> damped-least-squares IK (``kinematics.IKSolver``,
warm-started) that itself keeps every joint within its velocity limit over the real step
``dt`` (and, with ``ik_acceleration``, within ``qd_prev -/+ a dt``) -> One-Euro /
critically-damped filter -> the velocity/acceleration limiter as a last guard (it does not
saturate on an IK output that already respects the limits) -> joint limits -> gear couplings
(motor joints). Any failed check holds the last good command (velocity 0) and flags it.

Limits (``limits=``): ``teleop`` (default, live) uses the mapping's safety limits
(``velocity_limits``, ``acceleration_limit``, never above the URDF's); ``urdf`` (offline
default) uses the URDF's velocity limits and no acceleration limit (URDFs have none).

Targets, for task ``k`` with robot frame ``F``, robot root ``B`` (base if none), human keypoint
``h`` and human root keypoint ``r``:

    T_rel = T_body_r^-1 @ T_body_h                      (human, relative to its root keypoint)
    p = p_robot_shoulder + s * (p_rel - p_human_shoulder)   (scale: s = L_robot / L_human per limb)
    R = R_rel @ R_offset[k]                             (see calibration.py)

and the IK task drives ``T_B_F`` to ``(R, p)``.
"""
from __future__ import annotations

import time

import numpy as np

from robot_capture.kinematics.ik import FrameTask, IKSolver, IKStatus, PostureTask, RelativeFrameTask
from robot_capture.retarget.calibration import Calibration
from robot_capture.retarget.exo import ExoArmModel
from robot_capture.retarget.filters import RateLimiter, make_filter
from robot_capture.retarget.lag import LagEstimator
from robot_capture.retarget.mapping import RobotMapping
from robot_capture.retarget.output import RetargetOutput  # noqa: F401 (re-exported)
from robot_capture.retarget.pose import HumanPose, invert_transform


_INVALID, _BOUND = int(IKStatus.INVALID_INPUT), int(IKStatus.LIMIT_BOUND)


def robot_calibration_rotations(mapping: RobotMapping, model=None) -> dict:
    """task name -> (3,3) rotation of the robot frame relative to its root in the calibration pose."""
    model = model or mapping.robot_model()
    poses = model.fk_all(mapping.calibration_q(model))
    out = {}
    for t in mapping.tasks:
        Tf = poses[model.frame_index(t.ik_frame)]
        Tr = poses[model.frame_index(t.root)] if t.root else np.eye(4)
        out[t.name] = (invert_transform(Tr) @ Tf)[:3, :3]
    return out


def _human_calibration_keypoints(mapping: RobotMapping) -> dict:
    """Human keypoints (arm model) in the mapping's calibration pose."""
    exo = ExoArmModel.load()
    ang = np.zeros(len(exo.joint_names))
    for n, v in mapping.calibration_human.items():
        if n not in exo.joint_names:
            raise KeyError(f"calibration_pose.human: unknown arm-model joint {n!r}; expected {exo.joint_names}")
        ang[exo.joint_names.index(n)] = float(v)
    return {k: v[0] for k, v in exo.fk_batch(ang[None]).items()}


def _mapping_errors_as_value_error(init):
    """Construction from a malformed mapping raises ValueError naming the file, never a
    TypeError/AttributeError from deep inside (a wrong type in the YAML: a list for a
    number, a string for a mapping)."""
    import functools

    @functools.wraps(init)
    def wrapped(self, mapping, *args, **kwargs):
        try:
            init(self, mapping, *args, **kwargs)
        except (TypeError, AttributeError, IndexError, ZeroDivisionError) as exc:
            where = getattr(mapping, "source", None) or mapping
            raise ValueError(f"{where}: invalid robot mapping ({type(exc).__name__}: {exc})") from None
    return wrapped


class Retargeter:
    """HumanPose -> joint command for one robot mapping (see module docstring).

    Args:
        mapping: RobotMapping (or a robot name / YAML path).
        calibration: operator Calibration (None: arm-model default lengths and offsets from the
            mapping's calibration pose).
        rate_hz: nominal step rate, used for the first step's dt (default: mapping.rate_hz).
        stale_after_s: input older than this (s) is held and flagged (default: mapping.stale_after_s).
        limits: ``teleop`` (mapping safety limits) or ``urdf`` (the URDF's velocity limits, no
            acceleration limit), see the module docstring.
        ik_acceleration: also bound the IK step by the acceleration limit (default: True for
            ``teleop``).
        filter: a filter spec (``{"type": "none"}``, ...) replacing the mapping's ``filter``.

    Raises:
        KeyError: unknown robot name, or a mapping naming an unknown joint/frame.
        ValueError: a malformed mapping (any wrong type or value inside it), unknown ``limits``.
        FileNotFoundError: the mapping's URDF is missing.
    """

    LIMITS = ("teleop", "urdf")
    #: Longest time step (s) the IK velocity box, the filter and the limiter are given: a step
    #: after a gap (a starved timer, a pause) moves a joint at most ``v_max * max_step_dt``.
    #: Live sessions with a fixed rate set 1.5 command periods (``LiveRetarget``).
    max_step_dt = 0.5

    @_mapping_errors_as_value_error
    def __init__(self, mapping, calibration: Calibration | None = None, rate_hz: float | None = None,
                 stale_after_s: float | None = None, limits: str = "teleop", ik_acceleration: bool | None = None,
                 filter: dict | None = None):
        if limits not in self.LIMITS:
            raise ValueError(f"limits must be one of {self.LIMITS}, not {limits!r}")
        if not isinstance(mapping, RobotMapping):
            mapping = RobotMapping.load(mapping)
        if stale_after_s is not None:  # override the mapping's limit (e.g. a node parameter)
            import copy

            mapping = copy.copy(mapping)
            mapping.stale_after_s = float(stale_after_s)
        self.mapping = mapping
        self.calibration = calibration or Calibration()
        self.model = model = mapping.robot_model()
        self.joint_names = list(model.joint_names)
        self.nq = model.nq
        self.rate_hz = float(rate_hz or mapping.rate_hz)
        self.limits = limits
        if limits == "teleop":
            self.vmax = mapping.velocity_limit_array(model)
            self.amax = mapping.acceleration_limit_array(model)
        else:
            self.vmax = model.velocity_limit.copy()
            self.amax = np.full(self.nq, np.inf)
        self.ik_acceleration = bool(np.isfinite(self.amax).any()) if ik_acceleration is None else bool(ik_acceleration)
        ik_tasks = []
        for t in mapping.tasks:
            if t.root:
                ik_tasks.append(RelativeFrameTask(t.ik_frame, t.root, t.position_cost, t.orientation_cost))
            else:
                ik_tasks.append(FrameTask(t.ik_frame, t.position_cost, t.orientation_cost))
        self.q_posture = mapping.posture_array(model)
        ik_tasks.append(PostureTask(mapping.posture_cost, q_ref=self.q_posture))
        ik = dict(mapping.ik)
        self.solver = IKSolver(model, ik_tasks, velocity_limit=self.vmax, **ik)
        self.tasks = mapping.tasks
        self.target_frames = [t.ik_frame for t in mapping.tasks]
        self.coupled_names, self.coupling_A, self.coupling_b = mapping.coupling_matrix(model)
        self.command_names = self.joint_names + self.coupled_names
        self._root_index = [model.frame_index(t.root) if t.root else -1 for t in mapping.tasks]
        self._wrist_tasks = [k for k, t in enumerate(mapping.tasks) if t.wrist]
        # residuals of unweighted components are reported as NaN (their targets are not tracked)
        self._pmask = np.array([np.nan if t.position_cost <= 0 else 1.0 for t in mapping.tasks])
        self._omask = np.array([np.nan if t.orientation_cost <= 0 else 1.0 for t in mapping.tasks])
        self._setup_calibration()
        # the last guard (no braking term: it would make a moving target lag by v^2/2a); the URDF's
        # "no limit" (inf) becomes a large finite bound
        vg, ag = np.where(np.isfinite(self.vmax), self.vmax, 1e6), np.where(np.isfinite(self.amax), self.amax, 1e9)
        self.limiter = RateLimiter(vg, ag, model.lower, model.upper, brake=False)
        lag_tasks = self._wrist_tasks or [k for k, t in enumerate(mapping.tasks) if t.position_cost > 0]
        self._lag = LagEstimator(model, mapping.tasks, self._root_index,
                                 [k for k in lag_tasks if mapping.tasks[k].position_cost > 0])
        self.filter_spec = dict(mapping.filter if filter is None else filter)
        self.filter = make_filter(self.nq, self.filter_spec)
        self._out = np.empty(self.nq)
        self.reset()

    # ------------------------------------------------------------ calibration
    def _setup_calibration(self):
        m, model = self.mapping, self.model
        lengths = ExoArmModel._merge_lengths(ExoArmModel.load().lengths, self.calibration.lengths)
        self.human_lengths = lengths
        q_cal = m.calibration_q(model)
        poses = model.fk_all(q_cal)
        R_robot = robot_calibration_rotations(m, model)
        kp_h = _human_calibration_keypoints(m)
        nt = len(m.tasks)
        self._R_off = np.tile(np.eye(3), (nt, 1, 1))
        self._scale = np.ones(nt)
        self._p_robot_sh = np.zeros((nt, 3))
        self._sh_kp = [None] * nt
        self._robot_lengths = {}
        for side, limb in m.limbs.items():
            p = {k: poses[model.frame_index(f)][:3, 3] for k, f in limb.items()}
            up = float(np.linalg.norm(p["elbow"] - p["shoulder"]))
            fo = float(np.linalg.norm(p["wrist"] - p["elbow"]))
            self._robot_lengths[side] = (up, fo)
        for k, t in enumerate(m.tasks):
            if t.name in self.calibration.rotation_offsets:
                self._R_off[k] = np.asarray(self.calibration.rotation_offsets[t.name])
            else:
                R_h = (invert_transform(kp_h[t.root_keypoint]) @ kp_h[t.keypoint])[:3, :3]
                self._R_off[k] = R_h.T @ R_robot[t.name]
            if t.scale:
                side, _, part = t.scale.partition("_")
                if side not in m.limbs:
                    raise KeyError(f"task {t.name!r}: scale {t.scale!r} names no limb; limbs: {sorted(m.limbs)}")
                up, fo = self._robot_lengths[side]
                if part == "upper":
                    self._scale[k] = up / lengths["upper_arm"]
                else:
                    self._scale[k] = (up + fo) / (lengths["upper_arm"] + lengths["forearm"])
                T_root = poses[model.frame_index(t.root)] if t.root else np.eye(4)
                p_sh = poses[model.frame_index(m.limbs[side]["shoulder"])][:3, 3]
                self._p_robot_sh[k] = (invert_transform(T_root) @ np.r_[p_sh, 1.0])[:3]
                self._sh_kp[k] = f"{side}_shoulder"

    # ------------------------------------------------------------------ state
    def reset(self, q=None):
        """Forget history; the command starts at ``q`` (default: the posture)."""
        q0 = self.q_posture.copy() if q is None else np.clip(np.asarray(q, float), self.model.lower, self.model.upper)
        self.q_ik = q0.copy()
        self.qd_ik = np.zeros(self.nq)
        self.q_cmd = q0.copy()
        self.qd_cmd = np.zeros(self.nq)
        self._lag.reset(keep_estimate=False)
        self.lag_s = self._lag.lag_s
        self.filter.reset(None)
        self.limiter.reset(q0)
        self.t_prev = None
        self.last_stamp = None
        self.has_command = False

    # ---------------------------------------------------------------- targets
    def required_keypoints(self) -> set:
        """Keypoint names the tasks need (root keypoints and limb shoulders included)."""
        if getattr(self, "_required", None) is None:
            out = set()
            for k, t in enumerate(self.tasks):
                out |= {t.keypoint, t.root_keypoint}
                if self._sh_kp[k]:
                    out.add(self._sh_kp[k])
            self._required = frozenset(out)
        return self._required

    def targets_batch(self, keypoints: dict) -> np.ndarray:
        """IK targets for many poses.

        Args:
            keypoints: name -> (N,4,4) body-frame keypoints.
        Returns:
            (N, ntarget, 4, 4) targets, task order (each relative to the task's robot root).
        """
        n = next(iter(keypoints.values())).shape[0]
        out = np.zeros((n, len(self.tasks), 4, 4))
        out[:, :, 3, 3] = 1.0
        inv_cache = {}
        for k, t in enumerate(self.tasks):
            if t.root_keypoint not in inv_cache:
                inv_cache[t.root_keypoint] = invert_transform(keypoints[t.root_keypoint])
            inv_r = inv_cache[t.root_keypoint]
            rel = inv_r @ keypoints[t.keypoint]
            out[:, k, :3, :3] = rel[:, :3, :3] @ self._R_off[k]
            p = rel[:, :3, 3]
            if self._sh_kp[k]:
                p_sh = (inv_r @ keypoints[self._sh_kp[k]])[:, :3, 3]
                p = self._p_robot_sh[k] + self._scale[k] * (p - p_sh)
            out[:, k, :3, 3] = p
        return out

    def base_targets(self, q, rel_targets) -> dict:
        """frame -> (4,4) target in the robot base frame, roots evaluated at ``q``."""
        poses = self.model.fk_all(q)
        out = {}
        for k, t in enumerate(self.tasks):
            ri = self._root_index[k]
            out[t.ik_frame] = rel_targets[k] if ri < 0 else poses[ri] @ rel_targets[k]
        return out

    # ------------------------------------------------------------------- step
    def check(self, pose, t, enabled=True):
        """Reason to hold (str) or None."""
        if not enabled:
            return "disabled"
        if pose is None:
            return "no_input"
        if not pose.valid:
            return "invalid_input"
        kp = pose.keypoints
        req = self.required_keypoints()
        for name in req:
            if name not in kp:
                return "missing_keypoints"
        if not np.isfinite(np.stack([kp[n] for n in req])).all():
            return "nan_input"
        if not (t - pose.stamp <= self.mapping.stale_after_s):  # NaN stamps are stale too
            return "stale"
        return None

    def _hold(self, t, stamp, reason, flags):
        self.limiter.hold()
        self.filter.reset(None)
        self.qd_cmd = np.zeros(self.nq)
        self.qd_ik = np.zeros(self.nq)
        self._lag.reset()
        self.t_prev = t
        nt = len(self.tasks)
        flags = set(flags) | {reason, "held"}
        return RetargetOutput(self.q_cmd.copy(), self.qd_cmd.copy(), self.joint_names, stamp, self.target_frames,
                              np.full(nt, np.nan), np.full(nt, np.nan), flags=flags, q_ik=self.q_ik.copy(),
                              _retargeter=self, lag_s=self.lag_s)

    def _step_dt(self, t: float) -> float:
        """The real time since the last step (s), bounded to [1e-4, max_step_dt] (first step: 1/rate)."""
        dt = 1.0 / self.rate_hz if self.t_prev is None else t - self.t_prev
        cap = self.max_step_dt
        return 1e-4 if dt < 1e-4 else (cap if dt > cap else dt)

    def _solve(self, targets: np.ndarray, dt: float) -> int:
        """One IK solve from ``q_ik`` within the velocity (and acceleration) limits over ``dt``;
        updates ``q_ik``/``qd_ik`` unless the input is invalid. Returns the IKStatus int."""
        if self.ik_acceleration:
            adt = self.amax * dt
            self.solver.set_velocity_bounds(np.maximum(-self.vmax, self.qd_ik - adt),
                                            np.minimum(self.vmax, self.qd_ik + adt))
        st = self.solver.solve_into(self.q_ik, targets, self._out, dt)
        if st != _INVALID:
            np.subtract(self._out, self.q_ik, out=self.qd_ik)
            self.qd_ik *= 1.0 / dt
            self.q_ik[:] = self._out
        return st

    def _at_position_limit(self) -> bool:
        """True if a joint of the IK solution sits at a position limit. A solve that ended on a
        bound with none there was held by the velocity/acceleration box: the command lags the
        operator, which ``lag_s`` reports (no flag: it is not bad input)."""
        q, m = self.q_ik, self.model
        return bool(((q <= m.lower + 1e-9) | (q >= m.upper - 1e-9)).any())

    def _advance(self, q_target, dt: float, t: float, stamp, brake: bool = False):
        """Filter + limiter toward ``q_target`` over ``dt``; updates the command state. ``brake``:
        the limiter stops on the target (direct joint mode, where no IK bounds the step)."""
        self.limiter.brake = brake
        qf = self.filter(q_target, dt)
        self.q_cmd, self.qd_cmd = self.limiter(qf, dt)
        self.t_prev = t
        self.last_stamp = stamp
        self.has_command = True

    #: feed the lag estimate each step (live: published in /diagnostics). Offline re-retargets
    #: with URDF limits turn it off: it costs more than the IK solve itself (~2/3 of a step).
    estimate_lag = True

    def _update_lag(self, targets: np.ndarray, dt: float):
        """Feed the lag estimate (:class:`~robot_capture.retarget.lag.LagEstimator`), if ``estimate_lag``."""
        if self.estimate_lag:
            self.lag_s = self._lag.update(targets, self.q_cmd, dt)

    def step_targets(self, targets: np.ndarray, t: float, stamp: float, flags=()) -> RetargetOutput:
        """IK + filter + limits for precomputed targets (ntarget,4,4) (relative to each task's root)."""
        t0 = time.perf_counter()
        dt = self._step_dt(t)
        st = self._solve(targets, dt)
        solve_time = time.perf_counter() - t0
        if st == _INVALID:
            return self._hold(t, stamp, "ik_invalid", flags)
        self._advance(self.q_ik, dt, t, stamp)
        self._update_lag(targets, dt)
        fl = set(flags)
        if st == _BOUND and self._at_position_limit():
            fl.add("limit_bound")
        return RetargetOutput(self.q_cmd, self.qd_cmd, self.joint_names, stamp, self.target_frames,
                              self.solver.position_errors[:-1] * self._pmask,
                              self.solver.orientation_errors[:-1] * self._omask,
                              self.solver.last_iterations, solve_time, IKStatus(st), fl, [], self.q_ik.copy(),
                              targets, self, lag_s=self.lag_s)

    def run_targets(self, targets: np.ndarray, times, hold_reason=None):
        """Batch twin of :meth:`step_targets` (same solver, filter and limiter calls) for offline use.

        Args:
            targets: (N, ntarget, 4, 4); times: (N,) s (also the input stamps).
            hold_reason: optional (N,) array of str/None: frames to hold with that flag.
        Returns:
            dict of arrays: q, qd, q_ik (N,nq); position_errors, orientation_errors (N,ntarget);
            status (N,) int (-1 = held); flags (N,) object (set); lag_s (N,) s.
        """
        n = targets.shape[0]
        nq, nt = self.nq, len(self.tasks)
        q = np.empty((n, nq))
        qd = np.empty((n, nq))
        q_ik = np.empty((n, nq))
        lag = np.full(n, np.nan)
        pe = np.full((n, nt), np.nan)
        oe = np.full((n, nt), np.nan)
        status = np.full(n, -1, dtype=np.int16)
        flags = [()] * n
        perr, oerr = self.solver.position_errors, self.solver.orientation_errors
        ts = [float(x) for x in times]
        for i in range(n):
            reason = None if hold_reason is None else hold_reason[i]
            dt = self._step_dt(ts[i])
            st = _INVALID if reason else self._solve(targets[i], dt)
            if st == _INVALID:
                o = self._hold(ts[i], ts[i], reason or "ik_invalid", ())
                flags[i] = o.flags
            else:
                self._advance(self.q_ik, dt, ts[i], ts[i])
                self._update_lag(targets[i], dt)
                pe[i] = perr[:-1]
                oe[i] = oerr[:-1]
                status[i] = st
                if st == _BOUND and self._at_position_limit():
                    flags[i] = ("limit_bound",)
            q[i] = self.q_cmd
            qd[i] = self.qd_cmd
            q_ik[i] = self.q_ik
            lag[i] = self.lag_s
        return {"q": q, "qd": qd, "q_ik": q_ik, "position_errors": pe * self._pmask,
                "orientation_errors": oe * self._omask, "status": status, "flags": flags, "lag_s": lag}

    def step(self, pose: HumanPose | None, t: float, enabled: bool = True) -> RetargetOutput:
        """One command for ``pose`` at time ``t`` (s, same clock as ``pose.stamp``).

        Never raises on bad input: holds the last good command and flags ``disabled``,
        ``no_input``, ``invalid_input``, ``nan_input``, ``stale`` or ``missing_keypoints``
        (plus ``held``); source flags (e.g. ``unknown_joints``) are passed through.
        """
        flags = set(getattr(pose, "flags", ()) or ())
        stamp = getattr(pose, "stamp", None)
        try:
            reason = self.check(pose, t, enabled)
            if not reason:
                kp = {k: np.asarray(pose.keypoints[k], dtype=float).reshape(1, 4, 4) for k in self.required_keypoints()}
                targets = self.targets_batch(kp)[0]
        except (ValueError, TypeError, AttributeError):  # wrong shapes/types: never crash, hold
            reason = "malformed"
        if reason:
            return self._hold(t, stamp, reason, flags)
        return self.step_targets(targets, t, stamp, flags)

    def step_direct(self, q_target: np.ndarray, t: float, stamp: float, enabled: bool = True, flags=()):
        """Direct joint mode: ``q_target`` (nq, NaN = keep the current command) through the same
        filter and limits, no IK. Holds when disabled or stale."""
        flags = set(flags)
        if not enabled:
            return self._hold(t, stamp, "disabled", flags)
        if stamp is not None and t - stamp > self.mapping.stale_after_s:
            return self._hold(t, stamp, "stale", flags)
        q_target = np.where(np.isfinite(q_target), q_target, self.q_cmd)
        self._advance(q_target, self._step_dt(t), t, stamp, brake=True)
        self.q_ik = q_target.copy()
        self.qd_ik = self.qd_cmd.copy()
        nt = len(self.tasks)
        return RetargetOutput(self.q_cmd, self.qd_cmd, self.joint_names, stamp, self.target_frames,
                              np.full(nt, np.nan), np.full(nt, np.nan), flags=flags, q_ik=self.q_ik.copy(),
                              _retargeter=self)
