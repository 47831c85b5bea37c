"""How far the robot command lags the operator, estimated online (published by the live node).

For the lag tasks (the wrist tasks, else every position-tracked task), with ``p_target(t)``
the task targets (relative to each task's root) and ``p_command(t)`` the task frames at the
command ``q`` (FK of only those frames), the lag at time ``t`` is the age of the past target
the command is at now:

    tau(t) = argmin_{0 <= tau <= window_s} sum_tasks |p_command(t) + o(t) - p_target(t - tau)|^2

over the targets of the last ``window_s`` (1 s), where ``o`` is the mean offset
``p_target - p_command`` (exponentially weighted, 2 s), so that an unreachable target (a
constant offset) does not read as lag. ``tau`` is exponentially smoothed (1 s) and updated
only while the targets move (> 0.05 m/s per task); NaN until then. Both the filter's lag
and the velocity/acceleration limits' count. On the shipped clips under the teleop limits it
reads about 80-100 % of the whole-trajectory cross-correlation lag (``benchmarks/retarget_quality.py``
prints both). ROS-free.
"""
from __future__ import annotations

import numpy as np


class LagEstimator:
    """Online command-lag estimate (s), see the module docstring.

    Args:
        model: RobotModel of the command. tasks: the mapping's TaskSpecs. root_index: per task
            the model frame index of its root (-1: base). lag_tasks: indices of the tasks used.
        time_constant_s: smoothing of the estimate (s). window_s: longest lag measured (s).
        offset_time_constant_s: smoothing of the mean target-command offset (s).
        capacity: history length (steps); at least ``window_s`` times the step rate.
    """

    #: at most one history search per this many seconds of input (the history is kept every step)
    search_period_s = 0.02

    def __init__(self, model, tasks, root_index, lag_tasks, time_constant_s: float = 1.0,
                 window_s: float = 1.0, offset_time_constant_s: float = 2.0, capacity: int = 1024):
        self.model = model
        self.tasks = list(lag_tasks)
        ids = sorted({model.frame_index(tasks[k].ik_frame) for k in self.tasks}
                     | {root_index[k] for k in self.tasks if root_index[k] >= 0})
        self._f = [ids.index(model.frame_index(tasks[k].ik_frame)) for k in self.tasks]
        self._r = [ids.index(root_index[k]) if root_index[k] >= 0 else -1 for k in self.tasks]
        self._ids = np.array(ids, dtype=np.int32)
        self._P = np.empty((1, len(ids), 4, 4))
        self._has_root = any(r >= 0 for r in self._r)
        self._rr = [max(r, 0) for r in self._r]
        self._root_mask = np.array([[r >= 0] for r in self._r])
        self.tau, self.window, self.tau_off = float(time_constant_s), float(window_s), float(offset_time_constant_s)
        self._hist_p = np.zeros((capacity, len(self.tasks), 3))
        self._hist_t = np.full(capacity, -np.inf)
        self._arange = np.arange(capacity)
        self.lag_s = float("nan")
        self.reset(keep_estimate=False)

    def reset(self, keep_estimate: bool = True) -> None:
        """Forget the target history (a hold breaks it); keep the estimate unless told."""
        self._n = 0
        self._t = 0.0
        self._t_search = -np.inf
        self._p_search = None
        self._hist_t[:] = -np.inf
        self._off = None
        if not keep_estimate:
            self.lag_s = float("nan")

    def _order(self, m: int) -> np.ndarray:
        """Ring indices of the newest ``m`` history entries, newest first."""
        return (self._n - 1 - self._arange[:m]) % len(self._hist_t)

    def _command_positions(self, q_cmd) -> np.ndarray:
        kin = self.model._kin
        if kin is not None:
            kin.fk_links(q_cmd, self._ids, self._P)
            P = self._P[0]
        else:
            P = self.model.fk_frames(q_cmd[None], self._ids)[0]
        pf = P[self._f, :3, 3]
        if self._has_root:
            R, pr = P[self._rr, :3, :3], P[self._rr, :3, 3]
            rel = np.einsum("nji,nj->ni", R, pf - pr)
            pf = np.where(self._root_mask, rel, pf)
        return pf

    def update(self, targets: np.ndarray, q_cmd: np.ndarray, dt: float) -> float:
        """Add one step: ``targets`` (ntarget,4,4) root-relative, ``q_cmd`` (nq,), ``dt`` s > 0.
        Returns the current estimate (s, NaN while unknown). The history grows every step; the
        FK, the offset and the search run at most every ``search_period_s``."""
        if not self.tasks:
            return self.lag_s
        p = targets[self.tasks, :3, 3]
        self._t += dt
        cap = len(self._hist_t)
        i = self._n % cap
        self._hist_p[i], self._hist_t[i] = p, self._t
        self._n += 1
        elapsed = self._t - self._t_search
        if elapsed < self.search_period_s:
            return self.lag_s
        first = self._t_search == -np.inf
        prev = self._p_search
        self._t_search, self._p_search = self._t, p.copy()
        pc = self._command_positions(q_cmd)
        el = min(elapsed, 0.1)
        if self._off is None:
            self._off = p - pc
        else:
            self._off += (el / (self.tau_off + el)) * ((p - pc) - self._off)
        if first or prev is None:
            return self.lag_s
        d = p - prev
        speed = float(np.sqrt((d * d).sum(axis=1)).sum()) / elapsed
        if speed > 0.05 * len(self.tasks):  # m/s: only while the operator moves
            # newest first: the ring's last K entries are the ones within the window
            k = int(np.searchsorted(self._t - self._hist_t[self._order(min(self._n, cap))], self.window + 1e-9,
                                    side="right"))
            idx = self._order(max(k, 1))
            e = self._hist_p[idx] - (pc + self._off)
            lag = float(self._t - self._hist_t[idx[int(np.argmin((e * e).sum(axis=(1, 2))))]])
            a = el / (self.tau + el)
            self.lag_s = lag if not np.isfinite(self.lag_s) else self.lag_s + a * (lag - self.lag_s)
        return self.lag_s
