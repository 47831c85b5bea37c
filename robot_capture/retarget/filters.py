"""Command smoothing and limits, per joint, vectorized over joints.

* :class:`OneEuroFilter`: Casiez, Roussel, Vogel, "1 Euro Filter: A Simple Speed-based Low-pass
  Filter for Noisy Input in Interactive Systems", CHI 2012 (adaptive cutoff
  ``fc = min_cutoff + beta * |dx/dt|``, exponential smoothing with ``alpha = 1 / (1 + tau/dt)``,
  ``tau = 1 / (2 pi fc)``).
* :class:`CriticallyDampedFilter`: second-order follower ``x'' = w^2 (u - x) - 2 w x'`` (damping
  ratio 1, no overshoot), integrated semi-implicitly.
* :class:`RateLimiter`: velocity and acceleration limits with a braking bound
  (discrete-time ``|v| <= a dt (sqrt(1/4 + 2|e|/(a dt^2)) - 1/2)``, ~ ``sqrt(2 a |e|)``) so the
  command stops on the target without overshoot. The braking bound makes a follower of a
  *moving* target lag by ``v^2 / (2a)``; ``brake=False`` drops it (a pure guard: an input that
  already respects the limits passes through unchanged), which is how the retargeter uses it
  behind an IK that respects the limits itself.
All take ``dt`` in seconds and arrays of shape (n,). The per-step arithmetic runs in the C
extension ``_filters`` when it is built (same operations, element by element), else in NumPy;
``use_c=False`` forces NumPy (tests compare the two).
"""
from __future__ import annotations

import math

import numpy as np

try:
    from robot_capture.retarget import _filters as _c
except ImportError:  # pragma: no cover - extension not built
    _c = None


class OneEuroFilter:
    def __init__(self, n: int, min_cutoff_hz=1.0, beta=0.0, d_cutoff_hz=1.0, use_c=True):
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff_hz), float(beta), float(d_cutoff_hz)
        self.use_c = bool(use_c and _c is not None)
        self.x = None
        self.dx = np.zeros(n)
        self._tmp = np.zeros(n)
        self._a = np.zeros(n)

    def reset(self, x=None):
        self.x = None if x is None else np.array(x, dtype=float)
        self.dx[:] = 0.0

    def __call__(self, u: np.ndarray, dt: float) -> np.ndarray:
        if self.x is None:
            self.x = np.array(u, dtype=float)
            return self.x.copy()
        if self.use_c:
            _c.one_euro(self.x, self.dx, np.ascontiguousarray(u, dtype=float), dt,
                        self.min_cutoff, self.beta, self.d_cutoff)
            return self.x.copy()
        # alpha = 1 / (1 + tau/dt), tau = 1/(2 pi fc)  <=>  alpha = k / (k + 1), k = 2 pi fc dt
        kd = 2.0 * math.pi * self.d_cutoff * dt
        tmp, a = self._tmp, self._a
        np.subtract(u, self.x, out=tmp)                      # u - x
        self.dx += (kd / (kd + 1.0) / dt) * tmp - (kd / (kd + 1.0)) * self.dx
        np.abs(self.dx, out=a)
        a *= self.beta * 2.0 * math.pi * dt
        a += self.min_cutoff * 2.0 * math.pi * dt             # k = 2 pi fc dt
        np.divide(a, a + 1.0, out=a)
        tmp *= a
        self.x += tmp
        return self.x.copy()


class CriticallyDampedFilter:
    def __init__(self, n: int, frequency_hz=8.0, use_c=True):
        self.w = 2.0 * math.pi * float(frequency_hz)
        self.use_c = bool(use_c and _c is not None)
        self.x = None
        self.v = np.zeros(n)

    def reset(self, x=None):
        self.x = None if x is None else np.array(x, dtype=float)
        self.v[:] = 0.0

    def __call__(self, u: np.ndarray, dt: float) -> np.ndarray:
        if self.x is None:
            self.x = np.array(u, dtype=float)
            return self.x.copy()
        if self.use_c:
            _c.critically_damped(self.x, self.v, np.ascontiguousarray(u, dtype=float), dt, self.w)
            return self.x.copy()
        w = self.w
        # semi-implicit Euler on the damping term: stable for any dt
        self.v = (self.v + dt * w * w * (u - self.x)) / (1.0 + 2.0 * w * dt + (w * dt) ** 2)
        self.x = self.x + dt * self.v
        return self.x.copy()


class PassThrough:
    def __init__(self, n: int, use_c=True):
        pass

    def reset(self, x=None):
        pass

    def __call__(self, u, dt):
        return np.array(u, dtype=float)


def make_filter(n: int, spec: dict):
    """Filter from a mapping's ``filter`` section: type one_euro | critically_damped | none."""
    spec = dict(spec or {})
    kind = spec.pop("type", "one_euro")
    if kind == "one_euro":
        return OneEuroFilter(n, **spec)
    if kind == "critically_damped":
        return CriticallyDampedFilter(n, **spec)
    if kind in ("none", None):
        return PassThrough(n)
    raise ValueError(f"unknown filter type {kind!r}; expected one_euro, critically_damped or none")


class RateLimiter:
    """Velocity/acceleration-limited follower of a command.

    Args:
        vmax: (n,) velocity limits (>0); amax: acceleration limit (scalar or (n,)).
        lower, upper: (n,) position limits the output is clipped to.
        brake: keep the braking bound (stop on a still target without overshoot); False makes a
            guard that passes any input within the limits unchanged.
    """

    def __init__(self, vmax, amax, lower, upper, use_c=True, brake=True):
        self.brake = bool(brake)
        self.use_c = bool(use_c and _c is not None)
        self.vmax = np.ascontiguousarray(vmax, dtype=float)
        self.amax = np.broadcast_to(np.asarray(amax, dtype=float), self.vmax.shape).copy()
        self.lower, self.upper = np.ascontiguousarray(lower, float), np.ascontiguousarray(upper, float)
        self._two_a = 2.0 * self.amax
        self.q = None
        self.v = np.zeros_like(self.vmax)

    def reset(self, q=None):
        self.q = None if q is None else np.clip(np.array(q, dtype=float), self.lower, self.upper)
        self.v[:] = 0.0

    def hold(self):
        """Stop: velocity zero, position unchanged."""
        self.v[:] = 0.0

    def __call__(self, target: np.ndarray, dt: float):
        """Advance by ``dt`` toward ``target``; returns (q, v)."""
        if self.q is not None and self.use_c:
            _c.rate_limit(self.q, self.v, np.ascontiguousarray(target, dtype=float), self.vmax, self.amax,
                          self.lower, self.upper, dt, self.brake)
            return self.q.copy(), self.v.copy()
        target = np.minimum(np.maximum(target, self.lower), self.upper)
        if self.q is None:
            self.q = target.copy()
            return self.q.copy(), self.v.copy()
        e = target - self.q
        ae = np.abs(e)
        # speed that still stops on the target: min(|e|/dt, vmax, v_brake), with the discrete-time braking
        # bound v_brake = a dt (sqrt(1/4 + 2|e|/(a dt^2)) - 1/2) (-> sqrt(2 a |e|) as dt -> 0)
        adt = self.amax * dt
        vdes = np.minimum(ae * (1.0 / dt), self.vmax)
        if self.brake:
            vdes = np.minimum(vdes, adt * (np.sqrt(0.25 + ae * (2.0 / dt) / adt) - 0.5))
        vdes = np.copysign(vdes, e)
        vdes -= self.v
        self.v += np.minimum(np.maximum(vdes, -adt), adt)
        q = self.q + self.v * dt
        self.q = np.minimum(np.maximum(q, self.lower), self.upper)
        return self.q.copy(), self.v.copy()
