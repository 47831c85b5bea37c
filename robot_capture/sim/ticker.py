"""Fixed-rate sample clock for the simulators: which samples are due, with their nominal times.

A ROS timer on a loaded machine fires late and, when more than a period late, skips
periods (rcl advances its next call time past the missed ones), so a 500 Hz publisher
delivers fewer than 500 messages per second. ``Ticker`` instead counts samples on an
absolute grid ``t0 + k * period``: each call returns every sample that has come due since
the last call (a short burst after a stall), each with its nominal time, so the average
rate is exact and stamps are evenly spaced. Stalls longer than ``max_catchup`` samples
are skipped (``skipped`` counts them) rather than replayed. A clock that jumps (sim time
starting at 0 then following ``/clock``, a bag played in a loop) restarts the grid at the new
time: backwards by more than a period, or forwards by more than ``MAX_STALL_S``; ``jumps``
counts them (nothing is skipped for a jump).

Times are int nanoseconds on any clock (the node's ROS clock).
"""
from __future__ import annotations

import math

MAX_STALL_S = 60.0  # a longer gap between calls is a clock jump, not a stall


class Ticker:
    """Sample grid ``t0_ns + k * period_ns`` (k = 0, 1, ...).

    Args:
        rate_hz: sample rate, Hz (finite, > 0).
        t0_ns: time of sample 0.
        max_catchup: most samples returned by one :meth:`due` call.

    Raises:
        ValueError: ``rate_hz`` not a finite number > 0 (NaN, inf, 0, negative), or
            ``max_catchup < 1``.
    """

    def __init__(self, rate_hz: float, t0_ns: int, max_catchup: int = 25) -> None:
        try:
            rate = float(rate_hz)
        except (TypeError, ValueError):
            rate = math.nan
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate_hz must be a finite number > 0, got {rate_hz!r}")
        if max_catchup < 1:
            raise ValueError(f"max_catchup must be >= 1, got {max_catchup}")
        self.period_ns = 1e9 / rate
        self.t0_ns = int(t0_ns)
        self.max_catchup = int(max_catchup)
        self.next_k = 0
        self.skipped = 0
        self.jumps = 0

    def stamp_ns(self, k: int) -> int:
        """Nominal time of sample ``k``."""
        return self.t0_ns + int(round(k * self.period_ns))

    def due(self, now_ns: int) -> list[tuple[int, int]]:
        """Samples due at ``now_ns`` not yet returned: ``[(k, stamp_ns), ...]`` in order."""
        expected = self.stamp_ns(self.next_k)  # the next sample's time
        if now_ns < expected - 2 * self.period_ns or now_ns - expected > MAX_STALL_S * 1e9:
            self.t0_ns, self.next_k = int(now_ns), 0  # the clock jumped: a new grid from now
            self.jumps += 1
        last_due = int((now_ns - self.t0_ns) // self.period_ns)
        if last_due < self.next_k:
            return []
        first = self.next_k
        if last_due - first + 1 > self.max_catchup:
            new_first = last_due - self.max_catchup + 1
            self.skipped += new_first - first
            first = new_first
        self.next_k = last_due + 1
        return [(k, self.stamp_ns(k)) for k in range(first, last_due + 1)]
