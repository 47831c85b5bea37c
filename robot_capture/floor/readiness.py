"""``up``'s live health: one "floor ready" line, then a status line every N seconds.

ROS-free: :class:`FloorWatch` gets the supervisor (which nodes are alive) and a ``state()``
callable that returns the recorder's console state (``EpisodeManager.status()`` JSON, as
published on ``<recorder>/console_state``; ``robot-capture up`` reads it through a
:class:`robot_capture.console.bridge.RecorderBridge`). The floor is *ready* when every node
of the graph runs and the recorder reports every required stream fresh. Once every node runs
and the recorder answers, ``on_up(sup)`` is called once (``up`` starts the station check there,
:mod:`robot_capture.floor.station_sample`, in a thread). The "not ready" line gives the
recorder's reasons: the station contract's root causes, device first
(:meth:`robot_capture.console.streams.StreamTracker.reasons`).
"""
from __future__ import annotations

import time

from robot_capture.console.text import status_line

__all__ = ["FloorWatch"]


class FloorWatch:
    """Call :meth:`__call__` with the supervisor on every supervisor poll.

    Args:
        state: ``() -> dict`` (the recorder's state; ``state: offline`` while it is unknown).
        status_every_s: a status line this often (0: never).
        not_ready_after_s: say once why the floor is not ready after this long (0: never).
        clock: monotonic seconds (tests inject one).
        on_up: ``(sup) -> None``, called once when every node runs and the recorder answers.
    """

    def __init__(self, state, status_every_s: float = 0.0, not_ready_after_s: float = 60.0, clock=time.monotonic,
                 on_up=None):
        self.state = state
        self.on_up = on_up
        self.status_every_s = float(status_every_s)
        self.not_ready_after_s = float(not_ready_after_s)
        self.clock = clock
        self.t0 = clock()
        self.ready_at: float | None = None
        self._next_status = self.t0 + self.status_every_s if self.status_every_s > 0 else None
        self._warned = False

    def __call__(self, sup) -> None:
        now = self.clock()
        total = len(sup.children)
        alive = len(sup.alive())
        if self.on_up is not None and alive == total and (self.state().get("state") or "offline") != "offline":
            on_up, self.on_up = self.on_up, None
            on_up(sup)
        if self.ready_at is None:
            s = self.state()
            streams = s.get("streams") or []
            if alive == total and s.get("ready"):
                self.ready_at = now
                sup.log(f"floor ready: {alive}/{total} nodes up, {len(streams)}/{len(streams)} streams flowing "
                        f"({now - self.t0:.1f} s)")
            elif self.not_ready_after_s and not self._warned and now - self.t0 > self.not_ready_after_s:
                self._warned = True
                why = "; ".join(s.get("reasons") or []) or "recorder state unknown"
                sup.log(f"floor not ready after {self.not_ready_after_s:.0f} s: {alive}/{total} nodes up; {why}")
        if self._next_status is not None and now >= self._next_status:
            self._next_status = now + self.status_every_s
            sup.log(f"status: nodes {alive}/{total} | {status_line(self.state())}")
