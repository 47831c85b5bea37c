"""How far the robot command lags the operator, estimated online (published by the live node).

For the lag tasks (the wrist tasks, else every position-tracked task), with ``p_target`` the
task target (relative to the task's root), ``v_target`` its finite-difference velocity and
``p_command`` the task frame at the command ``q`` (FK of only those frames), the lag ``tau``
is the least-squares solution of ``p_target - p_command ~ tau * v_target``:

    tau = E[(p_target - p_command) . v_target] / E[|v_target|^2]

with both expectations exponentially weighted (time constant ``time_constant_s``, 1 s). A
constant offset (an unreachable target) averages out of the numerator; both the filter's
lag and the velocity/acceleration limits' count. NaN until the targets have moved
(``E[|v|^2] > (0.05 m/s)^2`` per task). ``benchmarks/retarget_quality.py`` compares it with
the cross-correlation lag of the whole trajectory. ROS-free.
"""
from __future__ import annotations

import numpy as np


class LagEstimator:
    """Online command-lag estimate (s), see the module docstring.

    Args:
        model: RobotModel of the command. tasks: the mapping's TaskSpecs. root_index: per task
            the model frame index of its root (-1: base). lag_tasks: indices of the tasks used.
        time_constant_s: exponential weighting (s).
    """

    def __init__(self, model, tasks, root_index, lag_tasks, time_constant_s: float = 1.0):
        self.model = model
        self.tasks = list(lag_tasks)
        ids = sorted({model.frame_index(tasks[k].ik_frame) for k in self.tasks}
                     | {root_index[k] for k in self.tasks if root_index[k] >= 0})
        self._f = [ids.index(model.frame_index(tasks[k].ik_frame)) for k in self.tasks]
        self._r = [ids.index(root_index[k]) if root_index[k] >= 0 else -1 for k in self.tasks]
        self._ids = np.array(ids, dtype=np.int32)
        self._P = np.empty((1, len(ids), 4, 4))
        self.tau = float(time_constant_s)
        self.reset()

    def reset(self, keep_estimate: bool = True) -> None:
        """Forget the previous target (a hold breaks the velocity); keep the estimate unless told."""
        self._p_prev = None
        if not keep_estimate:
            self.lag_s = float("nan")
            self._num = self._den = 0.0

    def update(self, targets: np.ndarray, q_cmd: np.ndarray, dt: float) -> float:
        """Add one step: ``targets`` (ntarget,4,4) root-relative, ``q_cmd`` (nq,), ``dt`` s > 0.
        Returns the current estimate (s, NaN while unknown)."""
        k = self.tasks
        if not k:
            return self.lag_s
        p = targets[k, :3, 3]
        if self._p_prev is not None:
            v = (p - self._p_prev) * (1.0 / dt)
            kin = self.model._kin
            if kin is not None:
                kin.fk_links(q_cmd, self._ids, self._P)
                P = self._P[0]
            else:
                P = self.model.fk_frames(q_cmd[None], self._ids)[0]
            e = 0.0
            for j, (f, r) in enumerate(zip(self._f, self._r)):
                pc = P[f, :3, 3] if r < 0 else P[r, :3, :3].T @ (P[f, :3, 3] - P[r, :3, 3])
                e += float((p[j] - pc) @ v[j])
            a = dt / (self.tau + dt)
            self._num += a * (e - self._num)
            self._den += a * (float((v * v).sum()) - self._den)
            if self._den > (0.05 ** 2) * len(k):  # (m/s)^2: only once the operator has moved
                self.lag_s = max(0.0, self._num / self._den)
        self._p_prev = p.copy()
        return self.lag_s
