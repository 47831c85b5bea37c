"""Live retargeting session: the ROS-free logic behind ``retarget_node``.

It turns asynchronous input messages (exoskeleton readings, VR poses, the deadman) into
:class:`~robot_capture.retarget.pose.HumanPose` inputs for a
:class:`~robot_capture.retarget.retargeter.Retargeter`, remembers which input each output
came from (an opaque ``token``, e.g. the message header stamp, handed back with the
output so the node can copy the input stamp exactly), and aggregates diagnostics.

Sources:

* ``exo``: ``on_exo(names, positions, stamp)`` -> ``ExoArmModel.pose_from_angles``.
* ``vr``: ``on_vr(name, T_world, stamp)`` for ``head``/``left_wrist``/``right_wrist`` and
  optionally ``on_vr_hand(side, [T...])``; a pose is assembled once all three trackers have
  a sample newer than the last assembled pose (stamp = the oldest of the three, so
  staleness is judged on the oldest tracker).
* ``direct``: exoskeletons with the robot's joint layout; ``DirectJointMap`` (no IK).

Deadman: with ``require_enable`` the robot holds until ``set_enable(True)``; otherwise it
runs unless ``set_enable(False)`` was the last word.

Hostile input (DESIGN.md "Staleness and hostile input"): times are float seconds on one
clock (the node's). An input is *stale* when its stamp is older than the bound, or when
nothing was received for longer than the bound (``recv``, the receive time, when the node
passes it), with ``bound = max(stale_after_s, stale_periods * the input's own period)``
(period: a running estimate from the accepted inputs' stamp intervals), so a slow input
is not called stale by a wall-time constant and a silence after a future-stamped message
still holds the robot. A stamp more than ``max_future_s`` ahead of its receive time (or
non-finite) is rejected (``future_stamp``/``bad_stamp``): it neither moves the robot nor
blocks later valid input. Exoskeleton readings with duplicate joint names, or an angle
beyond ``max_abs_angle`` rad (e.g. 1e308), are held and flagged (``duplicate_joints``,
``out_of_range``). Inputs are coalesced: an exo reading is stored and turned into a pose
only at the step (the newest wins). ``input_flood`` is flagged when more than ``flood_hz``
inputs per second arrived over the last ``FLOOD_WINDOW_S`` of steps
(:class:`~robot_capture.retarget.input_checks.FloodWindow`: a loaded machine delivers an
ordinary input in bursts). With a fixed ``rate_hz`` no step moves a joint more than its
velocity limit times 1.5 command periods (``Retargeter.max_step_dt``), however late the step.
:meth:`LiveRetarget.stale_reason` says why an input is stale: old already at receive (the
clock or the stamps) or only at use (a loaded machine).

With one output per input (``rate_hz`` 0) a fresh input is retargeted at its own stamp, so
the filter's dt is the operator's sampling interval (not arrival jitter) and a live run of
a clip matches the offline retarget of that clip; with a fixed rate the filter runs on the
clock (the input is resampled).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from robot_capture.retarget.input_checks import FLOOD_WINDOW_S, FloodWindow, stale_reason
from robot_capture.retarget.live_hands import HAND_FLAGS

VR_TRACKERS = ("head", "left_wrist", "right_wrist")
SOURCES = ("exo", "vr", "direct")
# flags that make the diagnostics level WARN
# a frame whose wrist-task IK residual exceeds this is counted as an IK failure (flag ``ik_failure``:
# the target was out of reach), unless the solve was held by the velocity/acceleration box (status
# LIMIT_BOUND with no joint at a position limit: the command lags, see Retargeter._at_position_limit).
# The QA's retargeting check judges the fraction (config/qa.yaml).
IK_FAILURE_M = 0.05
_WARN_FLAGS = {"stale", "nan_input", "held", "unknown_joints", "missing_joints", "malformed", "disabled",
               "limit_bound", "invalid_input", "future_stamp", "bad_stamp", "duplicate_joints", "out_of_range",
               "input_flood", *HAND_FLAGS}


@dataclass
class _Window:
    """Diagnostics accumulated between two ``diagnostics()`` calls."""

    outputs: int = 0
    inputs: int = 0
    flags: dict = field(default_factory=dict)
    max_position_error: np.ndarray | None = None
    max_orientation_error: np.ndarray | None = None
    solve_time_sum: float = 0.0
    solve_time_max: float = 0.0
    iterations_max: int = 0
    iterations_sum: int = 0
    min_limit_margin: float = math.inf


class LiveRetarget:
    """One live session (see module docstring).

    Args:
        mapping: :class:`~robot_capture.retarget.mapping.RobotMapping`.
        source: ``exo`` | ``vr`` | ``direct``.
        calibration: optional :class:`~robot_capture.retarget.calibration.Calibration`.
        rate_hz: the output rate (0 = one output per input), passed to the retargeter for its
            filter time step.
        require_enable: hold until an explicit enable.
        exo_config: exoskeleton arm-model YAML ('' = shipped).
        stale_after_s: staleness bound (s); None = the mapping's ``stale_after_s``.
        stale_periods: the bound is at least this many input periods.
        max_future_s: stamps further ahead of the receive time (s) are rejected.
        max_abs_angle: exo readings beyond this magnitude (rad) are out of range.
        flood_hz: input rate (inputs/s over ``FLOOD_WINDOW_S``) above which ``input_flood`` is flagged.

    Raises:
        ValueError: unknown source, or a non-positive bound.
    """

    def __init__(self, mapping, source: str = "exo", calibration=None, rate_hz: float = 100.0,
                 require_enable: bool = False, exo_config: str = "", stale_after_s: float | None = None,
                 stale_periods: float = 3.0, max_future_s: float = 0.05, max_abs_angle: float = 4 * math.pi,
                 flood_hz: float = 2000.0) -> None:
        from robot_capture.retarget.retargeter import Retargeter

        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
        self.stale_after_s = float(mapping.stale_after_s if stale_after_s is None else stale_after_s)
        for name, v in (("stale_after_s", self.stale_after_s), ("stale_periods", stale_periods),
                        ("max_future_s", max_future_s), ("max_abs_angle", max_abs_angle), ("flood_hz", flood_hz)):
            if not (float(v) > 0):  # NaN fails too
                raise ValueError(f"{name} must be > 0, got {v!r}")
        self.stale_periods, self.max_future_s = float(stale_periods), float(max_future_s)
        self.max_abs_angle, self.flood_hz = float(max_abs_angle), float(flood_hz)
        self.mapping = mapping
        self.source = source
        # staleness is judged here (stamp age and receive age against the adaptive bound)
        self.retargeter = Retargeter(mapping, calibration=calibration, rate_hz=rate_hz or None,
                                     stale_after_s=math.inf)
        if rate_hz:  # no step moves a joint more than v_max * 1.5 command periods, however late it runs
            self.retargeter.max_step_dt = 1.5 / float(rate_hz)
        # one output per input: filter on the inputs' sample times (their stamps), as the
        # offline path does on clip times; a fixed output rate resamples on the clock.
        self.filter_on_stamps = not rate_hz
        self.model = self.retargeter.model
        self.joint_names = list(self.model.joint_names)
        self.lower, self.upper = np.asarray(self.model.lower), np.asarray(self.model.upper)
        self.require_enable = bool(require_enable)
        self.enabled = not self.require_enable
        self.exo = None
        self.vr = None
        self.direct = None
        if source in ("exo",):
            from robot_capture.retarget.exo import ExoArmModel

            # the operator's segment lengths drive the arm-model FK too (scaling uses the same lengths)
            self.exo = ExoArmModel.load(exo_config or None, segment_lengths=getattr(calibration, "lengths", None))
        elif source == "vr":
            from robot_capture.retarget.vr import VrSource

            self.vr = VrSource(segment_lengths=getattr(calibration, "lengths", None))
            self._vr_latest: dict[str, tuple[np.ndarray, float, object]] = {}
            self._vr_hands: dict[str, list] = {}
            self._vr_last_stamp = -math.inf
            self._vr_recv: dict[str, float | None] = {}
        else:
            from robot_capture.retarget.direct import DirectJointMap

            self.direct = DirectJointMap.from_mapping(mapping)
        self._warned_direct: set = set()
        self._pose = None  # the latest HumanPose (exo/vr) or (q, flags, stamp) (direct)
        self._pending_exo = None  # (names, positions, stamp): the newest reading, made a pose at the step
        self.token = None
        self._new_input = False
        self._recv = None  # receive time of the latest accepted input (None: the caller gives none)
        self._last_stamp = None
        self.period_s = math.nan  # the input's own period (running estimate from accepted stamps)
        self._since_step = 0  # inputs received since the last step
        self._flood = FloodWindow(self.flood_hz, FLOOD_WINDOW_S)
        self._recv_stamp = None  # (stamp, receive time) of the input in use, for stale_reason
        self._rejected: set = set()  # rejection flags for the next output
        self._window = _Window()
        self._last_output = None
        self._wrist_tasks = [i for i, t in enumerate(mapping.tasks) if getattr(t, "wrist", False)]
        self.hands = None  # the mapping's hands (retarget.live_hands), stepped with the arms
        if getattr(mapping, "hands", None):
            from robot_capture.retarget.live_hands import LiveHands

            self.hands = LiveHands(mapping.hands, self.joint_names, self.stale_after_s, self.stale_periods,
                                   self.max_future_s)

    # ------------------------------------------------------------------ inputs
    def set_enable(self, enabled: bool) -> None:
        """Deadman input: False holds the robot."""
        self.enabled = bool(enabled)

    @property
    def pose(self):
        """The latest input as a HumanPose (exo/vr) or ``(q, flags, stamp)`` (direct); None before any."""
        if self._pending_exo is not None:
            names, positions, stamp, extra = self._pending_exo
            self._pending_exo = None
            pose = self.exo.pose_from_angles(names, positions, stamp=stamp)
            if extra:
                from dataclasses import replace

                pose = replace(pose, valid=False, flags=frozenset(pose.flags | extra))
            self._pose = pose
        return self._pose

    @pose.setter
    def pose(self, value) -> None:
        self._pending_exo = None
        self._pose = value

    def _accept(self, stamp: float, recv: float | None) -> bool:
        """Stamp checks shared by every source; False (and a flag) rejects the input."""
        self._window.inputs += 1
        self._since_step += 1
        if not math.isfinite(stamp):
            self._reject("bad_stamp")
            return False
        if recv is not None and stamp - recv > self.max_future_s:
            self._reject("future_stamp")
            return False
        if self._last_stamp is not None and 0.0 < stamp - self._last_stamp <= 1.0:
            d = stamp - self._last_stamp
            self.period_s = d if not math.isfinite(self.period_s) else self.period_s + 0.05 * (d - self.period_s)
        if self._last_stamp is None or stamp > self._last_stamp:
            self._last_stamp = stamp
        if recv is not None:
            self._recv = float(recv)
            if self.vr is None:  # VR: the assembled pose's oldest tracker, set in on_vr
                self._recv_stamp = (stamp, float(recv))
        return True

    def _reject(self, flag: str) -> None:
        self._rejected.add(flag)
        self._window.flags[flag] = self._window.flags.get(flag, 0) + 1

    def _reading_flags(self, names, positions) -> set:
        """Hold-worthy problems of one joint reading (duplicate names, huge or non-numeric angles)."""
        out = set()
        if len(set(names)) != len(names):
            out.add("duplicate_joints")
        try:
            a = np.asarray(positions, dtype=float)
            if np.any(np.abs(a[np.isfinite(a)]) > self.max_abs_angle):
                out.add("out_of_range")
        except (TypeError, ValueError):
            out.add("malformed")
        return out

    def stale_bound(self) -> float:
        """The staleness bound now (s): ``max(stale_after_s, stale_periods * period)``."""
        p = self.period_s
        return max(self.stale_after_s, self.stale_periods * p) if math.isfinite(p) else self.stale_after_s

    def on_exo(self, names, positions, stamp: float, token=None, recv: float | None = None) -> str | None:
        """An exoskeleton reading (``recv``: its receive time on the step clock, if known).
        Returns a once-only warning (unknown joint names) or None. Stored, not processed:
        the pose is built at the next step from the newest reading."""
        stamp = float(stamp)
        if not self._accept(stamp, recv):
            return None
        names = list(names)
        extra = self._reading_flags(names, positions)
        if self.direct is not None:
            q, flags = self.direct.map(names, list(positions))
            q = np.asarray(q, dtype=float)
            if extra:
                q = np.full_like(q, np.nan)  # hold every joint (NaN = keep the current command)
            self.pose = (q, set(flags) | extra, stamp)
            self._set_input(token)
            unknown = [n for n in names if n not in self._direct_sources()]
            return self._warn_once(unknown)
        warning = self.exo.unknown_warning(names)
        self._pose = None
        self._pending_exo = (names, list(positions), stamp, extra)
        self._set_input(token)
        return warning

    def on_vr(self, name: str, T_world: np.ndarray, stamp: float, token=None, recv: float | None = None) -> bool:
        """A VR tracker pose (``head``/``left_wrist``/``right_wrist``, ``vr_world``; ``recv``: receive
        time). True if a pose was assembled. A non-finite pose (e.g. a NaN or non-unit quaternion,
        see ``nodes._convert.pose_to_matrix``) is kept: the retargeter holds on it (``nan_input``)."""
        if name not in VR_TRACKERS:
            raise ValueError(f"unknown VR tracker {name!r}; expected one of {VR_TRACKERS}")
        if not self._accept(float(stamp), recv):
            return False
        self._vr_latest[name] = (T_world, float(stamp), token)
        self._vr_recv[name] = recv
        if len(self._vr_latest) < len(VR_TRACKERS):
            return False
        if any(s <= self._vr_last_stamp for (_T, s, _tok) in self._vr_latest.values()):
            return False
        oldest = min(self._vr_latest.values(), key=lambda e: e[1])
        self._vr_last_stamp = max(s for (_T, s, _tok) in self._vr_latest.values())
        kp = {n: self._vr_latest[n][0] for n in VR_TRACKERS}
        self.pose = self.vr.human_pose(kp["head"], kp["left_wrist"], kp["right_wrist"],
                                       left_hand=self._vr_hands.get("left"), right_hand=self._vr_hands.get("right"),
                                       stamp=oldest[1])
        self._set_input(oldest[2])
        oldest_recv = self._vr_recv.get(min(self._vr_latest, key=lambda n: self._vr_latest[n][1]))
        if oldest_recv is not None:  # staleness is judged on the oldest tracker: so is its age at receive
            self._recv_stamp = (oldest[1], float(oldest_recv))
        return True

    def on_vr_hand(self, side: str, joints_world, stamp: float | None = None, recv: float | None = None) -> None:
        """OpenXR hand joints (list of 4x4 in ``vr_world``) for ``left``/``right``; used with the next pose
        (``vr``) and, whatever the source, by the mapping's hands (:attr:`hands`; ``stamp``/``recv`` s)."""
        if side not in ("left", "right"):
            raise ValueError(f"hand side must be 'left' or 'right', got {side!r}")
        if self.vr is not None:
            self._vr_hands[side] = list(joints_world)
        if self.hands is not None:
            self.hands.on_hand(side, joints_world, stamp, recv)

    def _set_input(self, token) -> None:
        self.token = token
        self._new_input = True

    def _direct_sources(self) -> set:
        return set(getattr(self.direct, "source_names", None) or [])

    def _warn_once(self, unknown) -> str | None:
        new = sorted(set(unknown) - self._warned_direct)
        if not new or not self._direct_sources():
            return None
        self._warned_direct = self._warned_direct | set(new)
        return f"joint names {new} are not in the direct joint map; expected: {sorted(self._direct_sources())}"

    @property
    def has_new_input(self) -> bool:
        """An input arrived (a VR pose was assembled) since the last step."""
        return self._new_input

    @property
    def has_input(self) -> bool:
        return self.pose is not None

    # ------------------------------------------------------------------- step
    def step(self, t: float):
        """Retarget the latest input at time ``t`` (s). Returns ``(output, token)`` or ``None`` before any input.

        ``output`` is the retargeter's ``RetargetOutput`` (direct mode: ``Retargeter.step_direct``,
        the same filter and limits without IK).
        """
        pose = self.pose
        if pose is None:
            return None
        self._new_input = False
        flood = self._flooded(t)
        stamp = pose[2] if self.direct is not None else getattr(pose, "stamp", None)
        bound = self.stale_bound()
        stale = stamp is None or not (t - stamp <= bound) or (self._recv is not None and t - self._recv > bound)
        rejected = set(self._rejected)  # already counted in the window when they happened
        extra = rejected | ({"input_flood"} if flood else set())
        self._rejected.clear()
        if stale:
            flags = set(pose[1] if self.direct is not None else getattr(pose, "flags", ()) or ())
            out = self.retargeter._hold(t, stamp, "stale", flags | extra)
        elif self.direct is not None:
            out = self._step_direct(t)
        else:
            t_step = t
            if self.filter_on_stamps and 0.0 <= t - stamp <= bound:
                t_step = stamp  # fresh input: the filter's dt is the sampling interval
            out = self.retargeter.step(pose, t_step, enabled=self.enabled)
        if extra:
            out.flags = set(out.flags) | extra
        if self.hands is not None:  # a stale/lost/bad hand holds its last command (flagged), like the arms
            self.hands.step(t, enabled=self.enabled)
        self._account(out, rejected)
        self._last_output = out
        return out, self.token

    def joint_command(self, out) -> tuple[list, np.ndarray, np.ndarray]:
        """``(names, q, qd)`` for the command topic: ``out.joint_command()`` (arm model joints and coupled
        motor joints) followed by every hand joint (:meth:`LiveHands.command`), rad and rad/s."""
        names, q, qd = out.joint_command()
        if self.hands is None:
            return names, q, qd
        hn, hq, hqd = self.hands.command()
        return list(names) + hn, np.concatenate([q, hq]), np.concatenate([qd, hqd])

    def note_coalesced(self, n: int) -> None:
        """``n`` inputs were received but dropped unread by the caller (only the newest is passed
        on): counted as inputs, for the window and the flood check."""
        self._window.inputs += int(n)
        self._since_step += int(n)

    def _flooded(self, t: float) -> bool:
        """More than ``flood_hz`` inputs per second over the last ``FLOOD_WINDOW_S`` of steps."""
        n, self._since_step = self._since_step, 0
        return self._flood.step(t, n)

    def stale_reason(self, t: float) -> str:
        """Why the input in use is stale at step time ``t`` (s), one line
        (:func:`~robot_capture.retarget.input_checks.stale_reason`: age at receive vs age at use)."""
        pose = self._pose if self._pending_exo is None else None
        stamp = (pose[2] if self.direct is not None else getattr(pose, "stamp", None)) if pose is not None else None
        rs = self._recv_stamp
        if stamp is None and rs is not None:
            stamp = rs[0]
        return stale_reason(stamp, rs[1] if rs is not None and rs[0] == stamp else None, t, self.stale_bound())

    def _step_direct(self, t: float):
        q, flags, stamp = self.pose
        return self.retargeter.step_direct(q, t, stamp, enabled=self.enabled, flags=flags)

    # ------------------------------------------------------------ diagnostics
    def limit_margin(self, q) -> float:
        """Smallest distance (rad or m) of ``q`` to a position limit (``inf`` for unbounded joints)."""
        q = np.asarray(q, dtype=float)
        m = np.minimum(q - self.lower, self.upper - q)
        m = m[np.isfinite(m)]
        return float(m.min()) if m.size else math.inf

    def _account(self, out, counted=()) -> None:
        w = self._window
        w.outputs += 1
        for f in getattr(out, "flags", ()) or ():
            if f not in counted:
                w.flags[f] = w.flags.get(f, 0) + 1
        pe = getattr(out, "position_errors", None)
        oe = getattr(out, "orientation_errors", None)
        if pe is not None and len(pe):
            pe = np.asarray(pe, dtype=float)
            lagging = getattr(getattr(out, "status", None), "name", "") == "LIMIT_BOUND" and \
                "limit_bound" not in (getattr(out, "flags", ()) or ())
            if self._wrist_tasks and not lagging and np.nanmax(pe[self._wrist_tasks], initial=0.0) > IK_FAILURE_M:
                w.flags["ik_failure"] = w.flags.get("ik_failure", 0) + 1
            w.max_position_error = pe.copy() if w.max_position_error is None else np.fmax(w.max_position_error, pe)
        if oe is not None and len(oe):
            oe = np.asarray(oe, dtype=float)
            w.max_orientation_error = oe.copy() if w.max_orientation_error is None else np.fmax(w.max_orientation_error, oe)
        st = float(getattr(out, "solve_time_s", 0.0) or 0.0)
        w.solve_time_sum += st
        w.solve_time_max = max(w.solve_time_max, st)
        it = int(getattr(out, "iterations", 0) or 0)
        w.iterations_sum += it
        w.iterations_max = max(w.iterations_max, it)
        w.min_limit_margin = min(w.min_limit_margin, self.limit_margin(out.q))

    def diagnostics(self) -> tuple[int, str, dict]:
        """Summary of the outputs since the last call: ``(level 0 OK / 1 WARN, message, values)``; resets the window.

        Values (strings or numbers): outputs, inputs, enabled, source, status, flags
        (``name:count`` list; ``ik_failure``: outputs whose wrist IK residual > ``IK_FAILURE_M``), per task ``<task>.position_error_m`` / ``.orientation_error_rad``
        (window maximum), ``solve_time_ms_mean``/``_max``, ``iterations_mean``/``_max``,
        ``joint_limit_margin_rad`` (window minimum), ``command_lag_s`` (the retargeter's estimate of
        how far the command lags the operator under the safety limits, see :mod:`robot_capture.retarget.lag`).
        """
        w, self._window = self._window, _Window()
        out = self._last_output
        values: dict = {"source": self.source, "enabled": self.enabled, "outputs": w.outputs, "inputs": w.inputs}
        if out is not None:
            status = getattr(out, "status", "")
            values["status"] = getattr(status, "name", str(status))
            lag = getattr(out, "lag_s", float("nan"))
            if math.isfinite(lag):
                values["command_lag_s"] = float(lag)
        tasks = [t.name for t in self.mapping.tasks]
        if w.max_position_error is not None:
            for name, e in zip(tasks, w.max_position_error):
                if math.isfinite(e):
                    values[f"{name}.position_error_m"] = float(e)
        if w.max_orientation_error is not None:
            for name, e in zip(tasks, w.max_orientation_error):
                if math.isfinite(e):
                    values[f"{name}.orientation_error_rad"] = float(e)
        if w.outputs:
            values["solve_time_ms_mean"] = 1e3 * w.solve_time_sum / w.outputs
            values["solve_time_ms_max"] = 1e3 * w.solve_time_max
            values["iterations_mean"] = w.iterations_sum / w.outputs
            values["iterations_max"] = w.iterations_max
            values["joint_limit_margin_rad"] = w.min_limit_margin
        if self.hands is not None:  # per-finger fingertip error, held steps and why (live_hands)
            hv, hf = self.hands.diagnostics()
            values.update(hv)
            for k, v in hf.items():
                w.flags[k] = w.flags.get(k, 0) + v
        values["flags"] = ",".join(f"{k}:{v}" for k, v in sorted(w.flags.items()))
        warn = sorted(set(w.flags) & _WARN_FLAGS)
        if w.outputs == 0:
            return 1, "no output (waiting for input)" if self.pose is None else "no output in window", values
        if warn:
            return 1, "flags: " + ", ".join(warn), values
        return 0, "ok", values
