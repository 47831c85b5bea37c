"""Headset clock -> station clock, from round trips on the pose WebSocket (NTP-style, min-RTT filter).

The station sends ``ping`` with its send time ``t0``; the page answers ``pong`` with its receive
time ``t1`` and send time ``t2`` (headset clock); the station notes the arrival ``t3``. As in NTP
(RFC 5905 section 8): ``offset = ((t1 - t0) + (t2 - t3)) / 2`` (headset minus station) and
``delay = (t3 - t0) - (t2 - t1)``. The offset error is at most ``delay / 2``, so of the last
:data:`WINDOW` samples the one with the smallest delay is used (RFC 5905 section 10's clock filter
keeps 8 samples and picks the least delay; a queued or retransmitted round trip is long and
loses). Times are seconds (float) here.
"""
from __future__ import annotations

from collections import deque

__all__ = ["ClockSync", "WINDOW"]

#: samples kept by the min-delay filter (RFC 5905's clock filter keeps 8)
WINDOW = 8


class ClockSync:
    """Estimate ``offset_s`` = headset clock - station clock.

    Attributes: ``offset_s`` / ``delay_s`` (None before the first sample), ``samples`` (count),
    ``rejected`` (round trips that made no sense: negative delay).
    """

    def __init__(self, window: int = WINDOW):
        self._window: deque = deque(maxlen=window)
        self.offset_s: float | None = None
        self.delay_s: float | None = None
        self.samples = 0
        self.rejected = 0

    @property
    def synced(self) -> bool:
        return self.offset_s is not None

    def add(self, t0: float, t1: float, t2: float, t3: float) -> bool:
        """One round trip (s): t0 station send, t1 headset receive, t2 headset send, t3 station receive.

        Returns False (and counts it in ``rejected``) for a round trip with negative delay
        (``t3 < t0`` or ``t2 < t1`` beyond 1 ms of rounding: not a real exchange).
        """
        delay = (t3 - t0) - (t2 - t1)
        if t3 < t0 or t2 < t1 or delay < -1e-3:
            self.rejected += 1
            return False
        self._window.append((max(delay, 0.0), ((t1 - t0) + (t2 - t3)) / 2.0))
        self.samples += 1
        self.delay_s, self.offset_s = min(self._window)
        return True

    def to_station(self, t_headset: float) -> float:
        """Headset time (s) -> station time (s). Raises RuntimeError before the first round trip."""
        if self.offset_s is None:
            raise RuntimeError("headset clock not synchronised yet (no round trip)")
        return t_headset - self.offset_s
