"""First-order joint follower: the dynamics of the simulated humanoid.

Each joint follows its commanded position as a first-order lag,

    dq/dt = (q_cmd - q) / tau,

integrated exactly over a step ``dt`` (``q += (1 - exp(-dt/tau)) (q_cmd - q)``),
then the step is clipped to the joint's velocity limit (``|dq| <= v_max dt``) and
the position to ``[lower, upper]`` (URDF ``<limit>``). Commands are clipped to the
position limits too, so the follower never leaves them.

Units: rad (m for prismatic joints), rad/s, s. Arrays are ``float64`` shape ``(n,)``
in the order of ``joint_names``.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np


class FirstOrderFollower:
    """Joint-space first-order follower with position and velocity limits.

    Args:
        joint_names: every simulated joint, in publish order; length ``n``.
        lower, upper: position limits ``(n,)``; use ``-inf``/``inf`` for continuous joints.
        velocity_limit: ``(n,)`` positive speeds; ``inf`` or ``<= 0`` means unlimited.
        tau: time constant in s (> 0).
        q0: initial positions ``(n,)`` (default: 0 clipped into the limits).
        locked: ``{name: value}`` joints held at a fixed value; commands for them are ignored.

    Raises:
        ValueError: shapes disagree, ``tau <= 0`` or a lower limit exceeds an upper one.
    """

    def __init__(
        self,
        joint_names: Sequence[str],
        lower,
        upper,
        velocity_limit,
        tau: float = 0.05,
        q0=None,
        locked: Mapping[str, float] | None = None,
    ) -> None:
        self.joint_names = list(joint_names)
        n = len(self.joint_names)
        self.lower = np.asarray(lower, dtype=float).reshape(-1)
        self.upper = np.asarray(upper, dtype=float).reshape(-1)
        vmax = np.asarray(velocity_limit, dtype=float).reshape(-1)
        for label, arr in (("lower", self.lower), ("upper", self.upper), ("velocity_limit", vmax)):
            if arr.shape != (n,):
                raise ValueError(f"{label} has shape {arr.shape}, expected ({n},) for {n} joints")
        if np.any(self.lower > self.upper):
            bad = [self.joint_names[i] for i in np.nonzero(self.lower > self.upper)[0]]
            raise ValueError(f"lower limit above upper limit for joints {bad}")
        if not tau > 0:
            raise ValueError(f"time constant tau must be > 0 s, got {tau}")
        self.tau = float(tau)
        self.velocity_limit = np.where(vmax > 0, vmax, np.inf)
        self.index = {name: i for i, name in enumerate(self.joint_names)}
        self.locked_mask = np.zeros(n, dtype=bool)
        q = np.zeros(n) if q0 is None else np.asarray(q0, dtype=float).reshape(-1).copy()
        if q.shape != (n,):
            raise ValueError(f"q0 has shape {q.shape}, expected ({n},)")
        for name, value in (locked or {}).items():
            if name not in self.index:
                raise KeyError(f"locked joint {name!r} is not one of the simulated joints")
            q[self.index[name]] = float(value)
            self.locked_mask[self.index[name]] = True
        self.q = np.clip(q, self.lower, self.upper)
        self.qd = np.zeros(n)
        self.q_cmd = self.q.copy()

    def set_command(self, names: Sequence[str], positions: Sequence[float]) -> list[str]:
        """Set the target of each named joint; returns the names that were ignored.

        Ignored: unknown names, locked joints, and non-finite values (the previous
        target is held). Targets are clipped to the position limits.
        """
        ignored = []
        for name, value in zip(names, positions):
            i = self.index.get(name)
            if i is None or self.locked_mask[i] or not math.isfinite(value):
                ignored.append(name)
                continue
            self.q_cmd[i] = min(max(float(value), self.lower[i]), self.upper[i])
        return ignored

    def step(self, dt: float) -> np.ndarray:
        """Advance by ``dt`` s (``dt <= 0`` is a no-op); returns the new positions ``(n,)``.

        ``self.qd`` holds the mean velocity over the step.
        """
        if not dt > 0:
            return self.q
        alpha = -math.expm1(-dt / self.tau)  # 1 - exp(-dt/tau), exact first-order step
        dq = alpha * (self.q_cmd - self.q)
        vmax_dt = self.velocity_limit * dt
        dq = np.clip(dq, -vmax_dt, vmax_dt)
        dq[self.locked_mask] = 0.0
        q_new = np.clip(self.q + dq, self.lower, self.upper)
        self.qd = (q_new - self.q) / dt
        self.q = q_new
        return self.q
