"""Per-topic recording statistics: rate, messages, bytes, drops and gaps.

Pure bookkeeping on receive times (``recv_ns``, wall clock, ns) fed from the
subscription callback, cheap enough for the hot path (a few attribute updates).

Definitions:

* ``rate_hz``: messages received over the last status window (``window()`` call
  to ``window()`` call, normally 1 s) divided by its length.
* ``messages``/``bytes``: written into the current episode.
* ``drops``: messages known to be lost in the current episode, the larger of
  (a) gaps in a publisher's ``publication_sequence_number`` (rmw MessageInfo;
  Fast DDS numbers each writer's samples 1, 2, 3, ...), per publisher GID, and
  (b) DDS ``message_lost`` events (``QoSMessageLostInfo.total_count_change``).
  The two usually see the same losses, so they are not added.
  A message lost on the publisher's own side (its history overflowed before
  sending) is invisible to both.
* ``max_gap_s``: the largest interval between consecutive receptions in the
  episode; ``expected_period_s`` is the running mean interval (EWMA, alpha
  0.05), and ``gaps`` counts intervals longer than ``GAP_FACTOR`` times the
  running mean (and at least ``GAP_MIN_S``).
* ``publishers``: distinct publishers (rmw publisher GIDs) whose messages went into the
  current episode. More than one on a single-source stream means a second source (another
  station on the domain, a restarted driver): the QA's ``sources`` check judges it.
* ``problems``: counted bad-publisher events (type change, unknown type, write
  errors), by kind.
"""
from __future__ import annotations

import dataclasses

GAP_FACTOR = 3.0
GAP_MIN_S = 0.02
_EWMA = 0.05


@dataclasses.dataclass
class TopicStats:
    """Counters of one topic (see the module docstring for definitions)."""

    topic: str
    type: str = ""
    received: int = 0
    messages: int = 0
    bytes: int = 0
    drops: int = 0
    seq_drops: int = 0
    lost_events: int = 0
    gaps: int = 0
    max_gap_s: float = 0.0
    expected_period_s: float = 0.0
    rate_hz: float = 0.0
    last_recv_ns: int = 0
    problems: dict = dataclasses.field(default_factory=dict)
    publishers: int = 0
    _ep_publishers: set = dataclasses.field(default_factory=set, repr=False)
    _seq: dict = dataclasses.field(default_factory=dict, repr=False)
    _win_count: int = dataclasses.field(default=0, repr=False)
    _win_start_ns: int = dataclasses.field(default=0, repr=False)
    _ep_last_ns: int = dataclasses.field(default=0, repr=False)

    def on_receive(self, recv_ns: int, seq: int | None = None, publisher: bytes | None = None) -> None:
        """A message arrived (recorded or not). Updates rate window, period and drops."""
        self.received += 1
        self._win_count += 1
        last = self.last_recv_ns
        if last and recv_ns > last:
            dt = (recv_ns - last) * 1e-9
            p = self.expected_period_s
            self.expected_period_s = dt if p == 0.0 else p + _EWMA * (dt - p)
        self.last_recv_ns = recv_ns
        if seq is not None:
            key = publisher or b""
            prev = self._seq.get(key)
            if prev is not None and seq > prev + 1:
                self.seq_drops += seq - prev - 1
                self.drops = max(self.seq_drops, self.lost_events)
            if prev is None or seq > prev:
                self._seq[key] = seq

    def on_written(self, nbytes: int, recv_ns: int, publisher: bytes | None = None) -> None:
        """A message went into the episode bag; updates episode counts, gaps and publishers."""
        if publisher is not None and publisher not in self._ep_publishers:
            self._ep_publishers.add(publisher)
            self.publishers = len(self._ep_publishers)
        self.messages += 1
        self.bytes += nbytes
        last = self._ep_last_ns
        if last and recv_ns > last:
            dt = (recv_ns - last) * 1e-9
            if dt > self.max_gap_s:
                self.max_gap_s = dt
            if self.expected_period_s > 0 and dt > max(GAP_MIN_S, GAP_FACTOR * self.expected_period_s):
                self.gaps += 1
        self._ep_last_ns = recv_ns

    def on_lost(self, count: int) -> None:
        """``count`` messages reported lost by the middleware (message_lost event)."""
        self.lost_events += max(0, int(count))
        self.drops = max(self.seq_drops, self.lost_events)

    def on_problem(self, kind: str) -> int:
        """Count a problem of ``kind``; returns the new count (1 = first time: warn)."""
        n = self.problems.get(kind, 0) + 1
        self.problems[kind] = n
        return n

    def reset_episode(self) -> None:
        """Zero the per-episode counters (at episode start). Keeps sequence tracking."""
        self.messages = self.bytes = self.drops = self.seq_drops = self.lost_events = self.gaps = 0
        self.max_gap_s = 0.0
        self._ep_last_ns = 0
        self._ep_publishers = set()
        self.publishers = 0

    def window(self, now_ns: int) -> float:
        """Close the current rate window at ``now_ns``; returns and stores ``rate_hz``."""
        if self._win_start_ns and now_ns > self._win_start_ns:
            self.rate_hz = self._win_count / ((now_ns - self._win_start_ns) * 1e-9)
        self._win_start_ns = now_ns
        self._win_count = 0
        return self.rate_hz

    def as_dict(self) -> dict:
        """Public fields as a plain dict (for status/diagnostics)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if not k.startswith("_")}
