"""Hand retargeting: 26 OpenXR hand joints -> robot hand joint angles, in our C IK solver. ROS-free.

Per frame (:meth:`HandRetargeter.solve`):

1. check the input: (26, 3) positions or (26, 4, 4) poses in OpenXR order
   (:data:`robot_capture.retarget.pose.OPENXR_HAND_JOINTS`), any frame, metres; finite; a
   hand of the mapping's side (:func:`handedness`);
2. human palm frame from the knuckles (:func:`.model.palm_frame`), then each mapped
   fingertip's wrist-relative vector into the robot's base axes, times the finger's scaling;
3. solve one warm-started damped least squares problem (``robot_capture.kinematics``) whose
   tasks depend on the mode:

   * ``vector``: per finger a :class:`VectorTask` base link -> fingertip, target the scaled
     human wrist -> fingertip vector;
   * ``position``: the same tasks with targets ``wrist_offset + scaled vector`` (fingertips in
     the base frame);
   * ``dexpilot``: the vector tasks plus one task per fingertip pair (tip_i -> tip_j); a thumb
     pair in a human pinch gets a closed target and DexPilot's high weight (:mod:`.pinch`);

   plus a small posture task toward the previous solution (``solver.regularization``); with
   ``solver.restart`` the same problem is also solved from the open hand and that solution kept
   when its cost is clearly lower (:data:`RESTART_GAIN`; a warm start after a jump can stick). Joint
   limits (mimic-safe, :mod:`.model`) are the solver's box constraints, so every command is
   within them; mimic joints follow their drivers by construction (one column of ``q``).
4. a first-order low-pass (``filter_alpha``).

:meth:`HandRetargeter.step` is the live entry point: bad input never raises there; the hand
holds its last command and the result says why (``held``, ``reason``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_capture.kinematics import IKSolver, IKStatus, PostureTask, VectorTask
from robot_capture.retarget.direct import DirectJointMap
from robot_capture.retarget.pose import OPENXR_HAND_JOINTS

from .model import Hand, load_hand, palm_frame
from .pinch import pair_list, pair_targets

N_OPENXR = len(OPENXR_HAND_JOINTS)  # 26
_STATUS = {int(s): s for s in IKStatus}
_J = {n: i for i, n in enumerate(OPENXR_HAND_JOINTS)}
WRIST = _J["wrist"]


#: a fingertip target moving more than this between two frames (m) is a jump (a tracking gap, a
#: static pose): the side check and the restart from the open hand run only then. Continuous
#: tracking moves a fingertip well under 2 cm per frame (1 m/s at 60 Hz is 1.7 cm).
JUMP_M = 0.02

#: the restart from the open hand replaces the warm-started solution when its weighted cost is below
#: this fraction of the warm start's (a margin against flipping between near-equal solutions)
RESTART_GAIN = 0.7


class HandInputError(ValueError):
    """A hand pose the retargeter cannot use (wrong joint count, NaN, wrong hand)."""


def as_positions(keypoints) -> np.ndarray:
    """(26, 3) float64 positions from (26, 3) positions or (26, 4, 4) poses (OpenXR order, m).

    Raises:
        HandInputError: a 25-joint WebXR hand (convert it with
            ``robot_capture.retarget.hand_tracking.webxr_to_openxr``), any other shape, NaN/inf.
    """
    p = np.asarray(keypoints, dtype=float)
    if p.ndim == 3 and p.shape[1:] == (4, 4):
        p = p[:, :3, 3]
    if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] != N_OPENXR:
        if p.ndim >= 2 and p.shape[0] == N_OPENXR - 1:
            raise HandInputError(f"got 25 hand joints: a WebXR hand (wrist first, no palm); 26 OpenXR joints are "
                                 "expected: convert it with robot_capture.retarget.hand_tracking.webxr_to_openxr")
        raise HandInputError(f"expected the 26 OpenXR hand joints as (26, 3) positions or (26, 4, 4) poses, "
                             f"got shape {p.shape}")
    if not np.isfinite(p).all():
        bad = sorted({OPENXR_HAND_JOINTS[i] for i in np.nonzero(~np.isfinite(p).all(axis=1))[0]})
        raise HandInputError(f"hand pose has NaN/inf at {', '.join(bad[:4])}{' ...' if len(bad) > 4 else ''}")
    return p


_KNUCKLES = [_J["index_proximal"], _J["middle_proximal"], _J["ring_proximal"], _J["little_proximal"]]


def handedness(positions, R=None) -> str:
    """``"left"`` or ``"right"`` from the geometry of a (26, 3) hand: the thumb's proximal joint
    lies on the palm side, which is ``-y`` of the palm frame (:func:`.model.palm_frame`) for a
    left hand and ``+y`` for a right one (a mirror image flips it; all 55 + 55 recorded Quest
    poses agree). ``R``: the palm frame if already computed (any subset of knuckles, index first)."""
    p = positions
    if R is None:
        R = palm_frame(p[WRIST], p[_KNUCKLES])
    return "left" if (p[_J["thumb_proximal"]] - p[WRIST]) @ R[:, 1] < 0 else "right"


@dataclass
class HandResult:
    """One :meth:`HandRetargeter.step`.

    Attributes:
        q: (nq,) command, radians, ``hand.joint_names`` order (a copy).
        held: True when the input was rejected and ``q`` is the last command.
        reason: why it was held ("" otherwise).
        status: the IK status (None when held).
        fingertip_error: (nfingers,) m, |robot tip - scaled human tip| (wrist-relative, base
            axes; position mode: plus ``wrist_offset``) per finger, FINGERS order; NaN when held.
    """

    q: np.ndarray
    held: bool
    reason: str
    status: IKStatus | None
    fingertip_error: np.ndarray


class HandRetargeter:
    """Retarget one human hand onto one robot hand (module docstring).

    Args:
        hand: a :class:`~.model.Hand` or a hand mapping name/path (:func:`~.model.load_hand`).
        backend: the IK backend, "c" (default) or "numpy" (the reference, ~100x slower).
        check_side: reject a hand whose geometry is the other side's (:func:`handedness`).
    Raises:
        FileNotFoundError / HandConfigError: from :func:`load_hand`.
    """

    def __init__(self, hand, backend: str = "c", check_side: bool = True):
        self.hand = hand if isinstance(hand, Hand) else load_hand(hand)
        h, spec = self.hand, self.hand.spec
        self.check_side = check_side
        nf = len(h.fingers)
        self._tip_kp = np.array([_J[k] for k in h.keypoints])
        self._knuckle_kp = np.array([_J[spec.fingers[f].keypoint.split("_")[0] + "_proximal"]
                                     for f in h.fingers if f != "thumb"])
        self._scale = np.array([spec.fingers[f].scaling or spec.scaling for f in h.fingers])
        w_f = np.array([spec.fingers[f].weight for f in h.fingers])
        position = spec.mode == "position"
        origin = spec.base_link if position else h.wrist_link
        tasks = [VectorTask(h.tip_links[i], origin, w_f[i]) for i in range(nf)]
        self._dexpilot = spec.mode == "dexpilot"
        if self._dexpilot:
            pairs = pair_list(nf)
            self._I = np.array([i for i, _ in pairs])
            self._Jp = np.array([j for _, j in pairs])
            self._nthumb = nf - 1  # the thumb is finger 0 (FINGERS order): its pairs come first
            self._thumb_scale = self._scale[self._Jp[:nf - 1]]
            self._pair_w = np.sqrt(w_f[self._I] * w_f[self._Jp])
            tasks += [VectorTask(h.tip_links[j], h.tip_links[i], 1.0) for i, j in pairs]
        reg = spec.solver.regularization
        self._posture = len(tasks) if reg > 0 else None
        if reg > 0:
            tasks.append(PostureTask(reg))
        self.solver = IKSolver(h.model, tasks, damping=spec.solver.damping, error_damping=spec.solver.error_damping,
                               max_iterations=spec.solver.max_iterations, position_tolerance=1e-4,
                               step_tolerance=spec.solver.step_tolerance, velocity_limits=False, backend=backend)
        self._costs = np.array([t.cost if t.kind == "posture" else t.position_cost for t in tasks])
        self._targets = np.tile(np.eye(4), (self.solver.ntarget, 1, 1))
        self._wrist = h.wrist_position
        #: target = offset + scaled vector; position mode: fingertips in the base frame
        self._offset = (self._wrist + np.asarray(spec.wrist_offset, dtype=float)) if position else np.zeros(3)
        self._err_offset = self._wrist + (np.asarray(spec.wrist_offset, dtype=float) if position else 0.0)
        self._alpha = spec.filter_alpha
        self.q = h.model.neutral()
        self._open = h.model.neutral()
        self._out, self._out2 = self.q.copy(), self.q.copy()
        self._restart = spec.solver.restart
        self._max_it, self._warm_it, self._iter_jump = spec.solver.max_iterations, spec.solver.warm_iterations, True
        self._last_tips, self._jump = None, True
        #: solves where the restart from the open hand won (see :meth:`solve`)
        self.restarts = 0
        self.last_status: IKStatus | None = None
        self._glove = DirectJointMap(h.model, spec.glove.model_dump(exclude_none=True)["joints"])

    @property
    def joint_names(self) -> list:
        return self.hand.joint_names

    def reset(self, q=None) -> None:
        """Restart from ``q`` (nq,) (default the clipped zero configuration: the open hand)."""
        self._last_tips = None  # the next frame is a jump: side check and restart
        self.q = self.hand.model.neutral() if q is None else np.clip(self.hand.model.check_q(q), self.hand.model.lower,
                                                                     self.hand.model.upper)

    def human_tips(self, keypoints) -> np.ndarray:
        """(nfingers, 3) the scaled human wrist -> fingertip vectors in the robot base axes (m).

        Raises:
            HandInputError: see :func:`as_positions`; the other hand's geometry (``check_side``);
                a degenerate palm.
        """
        p = as_positions(keypoints)
        try:
            Rh = palm_frame(p[WRIST], p[self._knuckle_kp])
        except ValueError as e:
            raise HandInputError(f"hand pose: {e}") from None
        M = self.hand.R_palm @ Rh.T
        tips = ((p[self._tip_kp] - p[WRIST]) @ M.T) * self._scale[:, None]
        last = self._last_tips
        self._jump = last is None or float(np.abs(tips - last).max()) > JUMP_M * float(self._scale.max())
        if self.check_side and self._jump:
            side = handedness(p)
            if side != self.hand.side:
                raise HandInputError(f"a {side} hand was given to the {self.hand.side} hand mapping "
                                     f"{self.hand.name!r}: left and right swapped?")
        return tips

    def solve(self, keypoints) -> np.ndarray:
        """Retarget one pose, warm-started from the last solution; returns ``q`` (nq,), rad (a copy).

        Raises:
            HandInputError: bad input (see :meth:`human_tips`); the state is unchanged.
        """
        tips = self.human_tips(keypoints)
        nf = len(tips)
        tv = self._targets[:, :3, 3]
        tv[:nf] = tips + self._offset
        if self._dexpilot:
            sp = self.hand.spec.pinch
            vec, w = pair_targets(tips, self._I, self._Jp, self._nthumb, self._thumb_scale, sp.close_m,
                                  sp.release_m, sp.weight, 1.0)
            tv[nf:] = vec
            w = w * self._pair_w
            if not np.array_equal(w, self._costs[nf:nf + len(w)]):  # only while a pinch weight changes
                self._costs[nf:nf + len(w)] = w
                self.solver.set_position_costs(self._costs)
        if self._posture is not None:
            self.solver.set_posture_reference(self._posture, self.q)
        solve_into, te = self.solver.solve_into, self.solver.task_errors
        if self._jump != self._iter_jump:  # more Gauss-Newton steps after a jump, fewer while tracking
            self.solver.set_max_iterations(self._max_it if self._jump else self._warm_it)
            self._iter_jump = self._jump
        st = solve_into(self.q, self._targets, self._out, 0.0)
        if st == IKStatus.INVALID_INPUT:  # cannot happen after the checks above; hold rather than move
            raise HandInputError("the IK solver rejected the hand targets")
        if self._restart and self._jump:
            # a jump (a tracking gap, a static pose) can leave the warm start in a local minimum (a thumb
            # stuck at a limit on the wrong side of a pinch): also solve from the open hand and keep
            # that only if its cost is clearly lower (no chatter between two near-equal solutions)
            cost = float(te @ te)
            st2 = solve_into(self._open, self._targets, self._out2, 0.0)
            if st2 != IKStatus.INVALID_INPUT and float(te @ te) < RESTART_GAIN * cost:
                self._out, self._out2, st = self._out2, self._out, st2
                self.restarts += 1
        self.last_status = _STATUS[st]
        self.q = self.q + self._alpha * (self._out - self.q)
        self._last_tips = tips
        return self.q.copy()

    def fingertip_error(self, q=None, tips=None) -> np.ndarray:
        """(nfingers,) m, |robot tip - (offset +) scaled human tip| at ``q`` (default the last solve)."""
        q = self.q if q is None else q
        tips = self._last_tips if tips is None else tips
        return np.linalg.norm(self.hand.tip_positions(q) - (tips + self._err_offset), axis=1)

    def step_glove(self, names, positions) -> HandResult:
        """A data glove's joint angles (JointState ``name``/``position``, rad) -> command, through the
        mapping's ``glove.joints`` (:class:`robot_capture.retarget.direct.DirectJointMap`, clamped to the
        hand's limits). A joint without a finite reading keeps its command; no usable reading at all, a
        name/position length mismatch, or no ``glove:`` section holds the hand (``held``, ``reason``).
        ``fingertip_error`` is NaN (no human fingertips to compare with)."""
        nf = len(self.hand.fingers)
        if not self._glove.source_names:
            return HandResult(self.q.copy(), True, f"hand mapping {self.hand.name!r} has no glove: joints", None,
                              np.full(nf, np.nan))
        q, flags = self._glove.map(list(names), list(positions))
        ok = np.isfinite(q)
        if "malformed" in flags or not ok.any():
            why = "malformed JointState (names and positions differ)" if "malformed" in flags else \
                f"no reading for {', '.join(self._glove.source_names[:3])}" + (" (NaN)" if "nan_input" in flags else "")
            return HandResult(self.q.copy(), True, f"glove: {why}", None, np.full(nf, np.nan))
        self.q = np.where(ok, self.q + self._alpha * (np.where(ok, q, 0.0) - self.q), self.q)
        self._last_tips = None  # the next tracked frame is a jump
        return HandResult(self.q.copy(), False, ", ".join(sorted(flags)), None, np.full(nf, np.nan))

    def step(self, keypoints) -> HandResult:
        """Live entry point: like :meth:`solve`, but bad input holds the last command (never raises)."""
        try:
            q = self.solve(keypoints)
        except HandInputError as e:
            return HandResult(self.q.copy(), True, str(e), None, np.full(len(self.hand.fingers), np.nan))
        return HandResult(q, False, "", self.last_status, self.fingertip_error())
