"""Two judgements of the live retarget input that must hold on a loaded PC. ROS-free.

* :class:`FloodWindow`: is the input a flood? Its rate over at least ``FLOOD_WINDOW_S``, not
  over one step interval. A loaded machine delivers an ordinary 90-200 Hz input in bursts: a
  starved publisher sends its backlog at once (the sim Ticker catches up by up to 25 samples),
  a starved executor takes it 1 ms after its previous step, and over that one interval 24
  inputs read as 24 kHz (issue 23: 20 of 174 diagnostics windows flagged ``input_flood``).
* :func:`stale_reason`: why an input is stale: its age at receive (receive time - stamp)
  against its age at use (step time - stamp). Old already at receive: the stamps are not on
  this clock (or the sender stamps long before it sends); fresh at receive, old at use: nothing
  newer came in time, the machine is loaded (or the sender stopped), not a clock problem.

Times are float seconds on one clock.
"""
from __future__ import annotations

import math
from collections import deque

__all__ = ["FLOOD_WINDOW_S", "FloodWindow", "stale_reason"]

#: the input rate is judged over at least this long (s): a burst of an ordinary input is no flood,
#: and a 10 kHz flood still shows within 0.1 s (its count passes flood_hz x the window)
FLOOD_WINDOW_S = 0.5


class FloodWindow:
    """Input rate over the last ``window_s``, from the inputs counted at each step.

    :meth:`step` is called once per step with the inputs received since the previous step,
    taken as spread evenly over that interval (all that is known of their arrival times when
    the middleware coalesced them). The count in ``[t - window_s, t]`` is the intervals inside
    plus the overlapping share of the oldest one, so a long stall's backlog counts at its true
    rate and a flood right after it still shows at once. The rate is that count over
    ``window_s`` (also while less than ``window_s`` has passed: a start is never judged on a
    shorter time). A clock that steps back starts a new window.

    Args:
        flood_hz: rate (inputs/s) above which the input is a flood (> 0).
        window_s: the time the rate is judged over (s, > 0).
    """

    def __init__(self, flood_hz: float, window_s: float = FLOOD_WINDOW_S) -> None:
        if not (flood_hz > 0 and window_s > 0):
            raise ValueError(f"flood_hz and window_s must be > 0, got {flood_hz!r}, {window_s!r}")
        self.flood_hz, self.window_s = float(flood_hz), float(window_s)
        self._intervals: deque = deque()  # (start, end, inputs) of the step intervals in the window
        self._count = 0  # inputs in _intervals
        self._last: float | None = None  # the previous step's time

    def step(self, t: float, n: int) -> bool:
        """A step at ``t`` (s) with ``n`` inputs received since the previous one. True: a flood."""
        last, self._last = self._last, t
        if last is None or t < last:  # the first step, or the clock stepped back: a new window
            self._intervals.clear()
            self._count = 0
            return False
        self._intervals.append((last, t, int(n)))
        self._count += int(n)
        since = t - self.window_s
        while self._intervals and self._intervals[0][1] <= since:
            self._count -= self._intervals.popleft()[2]
        count = float(self._count)
        if self._intervals:
            start, end, first = self._intervals[0]
            if start < since < end:  # the oldest interval overlaps the window in part
                count -= first * (since - start) / (end - start)
        return count >= 10 and count > self.flood_hz * self.window_s


def stale_reason(stamp: float | None, recv: float | None, t: float, bound: float) -> str:
    """One line: why an input stamped ``stamp``, received at ``recv`` (None: unknown), is stale
    at step time ``t`` under the staleness ``bound`` (all s, one clock).

    * ``recv - stamp > bound``: old already at receive: a clock or stamp problem;
    * else: fresh at receive, old at use: nothing newer arrived for ``t - recv``: a loaded
      machine (the sender or the node starved) or a stopped sender, not the clock;
    * no ``recv``: the age at use only.
    """
    if stamp is None or not math.isfinite(stamp):
        return f"holding: no usable input (limit {bound:.3f} s)"
    use = t - stamp
    if recv is None:
        return f"holding: input is {use:.3f} s old (limit {bound:.3f} s)"
    rx = recv - stamp
    if rx > bound:
        return (f"holding: input was already {rx:.3f} s old when received ({use:.3f} s at use, limit {bound:.3f} s): "
                "its stamps are not on this clock, or the sender stamps long before it sends")
    return (f"holding: input was {rx:.3f} s old when received but {use:.3f} s at use (limit {bound:.3f} s): "
            f"nothing newer arrived for {t - recv:.3f} s: a loaded machine or a stopped sender, not a clock problem")
