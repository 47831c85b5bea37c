"""One retargeter command (:class:`RetargetOutput`), as the live node, the offline tools and
the benchmarks read it. ROS-free."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RetargetOutput:
    """One command.

    Attributes:
        q, qd: (nq,) command (rad, rad/s); joint_names: list[str].
        stamp: stamp of the input pose it came from (s); None when no input yet.
        target_frames: robot frames of the frame tasks (IK task order, posture excluded).
        position_errors, orientation_errors: (ntarget,) IK residuals (m, rad) of this step (NaN if held).
        iterations, solve_time_s, status (IKStatus or None when held), flags (set[str]).
        warnings: messages to log once (e.g. unknown joint names).
        targets: frame -> (4,4) target in the robot base frame (computed on first access).
        lag_s: estimated command lag behind the operator (s): the wrist (else elbow) position
            error over the target speed, smoothed (NaN until the target moves).
    """

    q: np.ndarray
    qd: np.ndarray
    joint_names: list
    stamp: float | None
    target_frames: list
    position_errors: np.ndarray
    orientation_errors: np.ndarray
    iterations: int = 0
    solve_time_s: float = 0.0
    status: object = None
    flags: set = field(default_factory=set)
    warnings: list = field(default_factory=list)
    q_ik: np.ndarray | None = None
    _rel_targets: np.ndarray | None = None
    _retargeter: object = None
    _targets: dict | None = None
    lag_s: float = float("nan")

    def joint_command(self):
        """``(names, q, qd)`` to send to the robot: the model joints plus the coupled motor
        joints (``q_motor = A q + b``, see the mapping's ``coupling``)."""
        r = self._retargeter
        if r is None or not r.coupled_names:
            return self.joint_names, self.q, self.qd
        return (r.command_names, np.concatenate([self.q, r.coupling_A @ self.q + r.coupling_b]),
                np.concatenate([self.qd, r.coupling_A @ self.qd]))

    @property
    def targets(self) -> dict:
        if self._targets is None:
            self._targets = {} if self._rel_targets is None else self._retargeter.base_targets(self.q_ik, self._rel_targets)
        return self._targets

    @property
    def held(self) -> bool:
        return "held" in self.flags
