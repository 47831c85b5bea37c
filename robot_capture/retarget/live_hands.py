"""Live hands: the robot mapping's ``hands:`` driven by ``/vr/<side>_hand``. ROS-free.

:class:`LiveHands` holds one :class:`~robot_capture.hands.solver.HandRetargeter` per side
named in the robot mapping (``hands: {left: g1_dex3_left, right: g1_dex3_right}``) and is
stepped by :class:`~robot_capture.retarget.live.LiveRetarget` with the arms, whatever the arm
source (exo, vr, direct: the hand input is always the 26 OpenXR joints of ``/vr/<side>_hand``).

* Each step, a side with a new hand frame is retargeted (:meth:`HandRetargeter.step`); a side
  whose newest frame is stale (stamp or receive time older than
  ``max(stale_after_s, stale_periods x the hand's own period)``, the arms' rule), never
  received, rejected by its stamp (non-finite, or more than ``max_future_s`` ahead of its
  receive time), or while the deadman is off is not stepped: its last command holds
  (flags ``hand_stale``/``hand_disabled``). A frame the hand retargeter rejects (NaN, wrong
  joint count, the other side's hand) holds too (flag ``hand_held``, its reason kept).
* :meth:`command` gives every hand joint (drivers and mimic joints, ``hand.command``), always
  the same names in the same order, so the command topic keeps one column set (the export
  relies on it). Before any hand frame the command is the open hand (the hand's neutral q).
* Every command is within the hand's (mimic-safe) joint limits: the solver's box
  (DESIGN.md "hands").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

SIDES = ("left", "right")
#: flags of a hand step (LiveRetarget's diagnostics make them WARN)
HAND_FLAGS = ("hand_stale", "hand_held", "hand_disabled", "hand_bad_stamp")


@dataclass
class _Side:
    retargeter: object
    names: list
    q: np.ndarray  # (nq,) the hand's driver joints, rad: the command in effect
    cmd: np.ndarray  # (len(names),) every hand joint at q (drivers + mimic), rad
    frame: object = None  # the newest (26, 4, 4) OpenXR joints, not yet stepped
    stamp: float = math.nan
    recv: float | None = None
    last_stamp: float | None = None
    period_s: float = math.nan
    received: bool = False
    reason: str = "no hand input yet"
    max_err: np.ndarray | None = None  # (nfingers,) m, window maximum
    held: int = 0  # steps held in the window
    last_t: float | None = None
    qd: np.ndarray = field(default_factory=lambda: np.zeros(0))


class LiveHands:
    """The live hands of one robot mapping (module docstring).

    Args:
        hands: ``{side: hand mapping name or path}`` (the robot mapping's ``hands``).
        arm_joints: the joints the arm IK solves for; a hand joint among them is an error.
        stale_after_s, stale_periods, max_future_s: the session's staleness rule (s, periods, s).

    Raises:
        ValueError: an unknown side, or a hand joint the arm IK also solves for (it must be in
            the robot mapping's ``locked_joints``). FileNotFoundError / HandConfigError: from
            :func:`robot_capture.hands.load_hand`.
    """

    def __init__(self, hands: dict, arm_joints, stale_after_s: float = 0.1, stale_periods: float = 3.0,
                 max_future_s: float = 0.05) -> None:
        from robot_capture.hands.solver import HandRetargeter

        self.stale_after_s, self.stale_periods, self.max_future_s = stale_after_s, stale_periods, max_future_s
        self.sides: dict[str, _Side] = {}
        arm = set(arm_joints)
        for side, name in hands.items():
            if side not in SIDES:
                raise ValueError(f"hands: side must be 'left' or 'right', got {side!r}")
            r = HandRetargeter(name)
            if r.hand.side != side:
                raise ValueError(f"hands.{side}: {name!r} is a {r.hand.side} hand mapping")
            names = list(r.hand.command(r.q))
            both = sorted(arm & set(names))
            if both:
                raise ValueError(f"hands.{side}: joints {both[:3]}{' ...' if len(both) > 3 else ''} are also solved by "
                                 "the arm IK: add them to the robot mapping's locked_joints")
            q0 = r.q.copy()
            self.sides[side] = _Side(r, names, q0, np.fromiter(r.hand.command(q0).values(), float),
                                     qd=np.zeros(len(names)))
        self._flags: dict = {}
        self._order = [n for s in self.sides.values() for n in s.names]

    @property
    def joint_names(self) -> list:
        """Every commanded hand joint (drivers + mimic), left then right (as ``hands`` lists them)."""
        return list(self._order)

    def on_hand(self, side: str, joints, stamp: float = math.nan, recv: float | None = None) -> bool:
        """The newest OpenXR hand frame of ``side`` (26 poses or positions, any frame; ``stamp``/``recv``:
        s on the step clock; no stamp: ``recv``, else the frame never goes stale). False (flagged) when
        the side is not driven or the stamp is rejected; the frame itself is checked at the step."""
        s = self.sides.get(side)
        if s is None:
            return False
        stamp = math.nan if stamp is None else float(stamp)
        if math.isnan(stamp):  # no stamp: judged on the receive time alone
            stamp = math.inf if recv is None else float(recv)
        if stamp == -math.inf or (recv is not None and stamp - recv > self.max_future_s):
            self._flag("hand_bad_stamp")
            return False
        if s.last_stamp is not None and math.isfinite(stamp) and 0.0 < stamp - s.last_stamp <= 1.0:
            d = stamp - s.last_stamp
            s.period_s = d if not math.isfinite(s.period_s) else s.period_s + 0.05 * (d - s.period_s)
        s.last_stamp = stamp if math.isfinite(stamp) else s.last_stamp
        s.frame, s.stamp, s.recv, s.received = joints, stamp, recv, True
        return True

    def bound(self, side: str) -> float:
        """The staleness bound of ``side`` now (s)."""
        p = self.sides[side].period_s
        return max(self.stale_after_s, self.stale_periods * p) if math.isfinite(p) else self.stale_after_s

    def step(self, t: float, enabled: bool = True) -> None:
        """Step every side at time ``t`` (s); never raises on input (a bad frame holds, flagged)."""
        for side, s in self.sides.items():
            cmd_prev = s.cmd
            b = self.bound(side)
            stale = not s.received or (s.stamp != math.inf and not (t - s.stamp <= b)) or \
                (s.recv is not None and t - s.recv > b)
            if stale:
                s.reason = "no hand input yet" if not s.received else f"hand tracking lost (> {b:.3g} s old)"
                self._hold(s, "hand_stale")
            elif not enabled:
                s.reason = "deadman off"
                self._hold(s, "hand_disabled")
            elif s.frame is not None:
                frame, s.frame = s.frame, None
                try:
                    res = s.retargeter.step(frame)
                except Exception as e:  # noqa: BLE001 - a malformed frame (ragged list, ...) must not raise
                    res = None
                    s.reason = f"bad hand frame: {e}"
                if res is None or res.held:
                    s.reason = s.reason if res is None else res.reason
                    self._hold(s, "hand_held")
                else:
                    s.q, s.reason = np.asarray(res.q, dtype=float), ""
                    s.cmd = np.fromiter(s.retargeter.hand.command(s.q).values(), float, len(s.names))
                    e = np.asarray(res.fingertip_error, dtype=float)
                    s.max_err = e.copy() if s.max_err is None else np.fmax(s.max_err, e)
            dt = None if s.last_t is None else t - s.last_t
            s.qd = (s.cmd - cmd_prev) / dt if dt and dt > 0 and s.cmd is not cmd_prev else np.zeros_like(s.cmd)
            s.last_t = t

    def _hold(self, s: _Side, flag: str) -> None:
        s.held += 1
        s.frame = None if flag != "hand_disabled" else s.frame
        self._flag(flag)

    def _flag(self, flag: str) -> None:
        self._flags[flag] = self._flags.get(flag, 0) + 1

    def command(self) -> tuple[list, np.ndarray, np.ndarray]:
        """``(names, q, qd)``: every hand joint's command (rad) and velocity (rad/s, the change over the
        last step; 0 while held), :attr:`joint_names` order."""
        if not self.sides:
            return [], np.zeros(0), np.zeros(0)
        return (list(self._order), np.concatenate([s.cmd for s in self.sides.values()]),
                np.concatenate([s.qd for s in self.sides.values()]))

    def diagnostics(self) -> tuple[dict, dict]:
        """``(values, flags)`` since the last call (then reset): per side ``<side>_hand.<finger>.fingertip_error_m``
        (window maximum, m), ``<side>_hand.held`` (steps held), ``<side>_hand.reason`` (why the last step held,
        '' when it moved); flags ``{name: count}``."""
        values: dict = {}
        for side, s in self.sides.items():
            if s.max_err is not None:
                for f, e in zip(s.retargeter.hand.fingers, s.max_err):
                    if math.isfinite(e):
                        values[f"{side}_hand.{f}.fingertip_error_m"] = float(e)
            values[f"{side}_hand.held"] = s.held
            values[f"{side}_hand.reason"] = s.reason
            s.max_err, s.held = None, 0
        flags, self._flags = self._flags, {}
        return values, flags
