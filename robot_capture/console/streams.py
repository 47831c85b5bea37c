"""Stream freshness: is every expected topic flowing at its rate?

ROS-free. The recorder node already receives every selected topic, recording or not,
and counts each message in its :class:`robot_capture.record.stats.TopicStats`
(``received``, ``last_recv_ns``). :class:`StreamTracker` samples those two counters
on a timer (the episode manager's tick, ~4 Hz), so the hot path pays nothing extra.

Per expected stream (``expected``: the station contract's streams,
:class:`robot_capture.floor.contract.Stream`, or the older topic -> rate in Hz mapping, ``None`` =
event-driven, presence only):

* ``age_s``: seconds since the last message (since the tracker started when none came yet).
* ``rate_hz``: messages over the last ``rate_window_s`` (default 2 s) of samples / their span.
* status ``never`` (nothing received yet), ``silent`` (age over the silence threshold),
  ``slow`` (rate under ``min_rate_fraction`` of the expected rate once a full window was
  seen), else ``ok``.

A process that was not scheduled sees old receive times for messages still queued in DDS.
So a stream only *becomes* ``silent`` (or ``slow``) when two consecutive samples say so, and
never on a sample taken after a stall (more than ``stall_after_s`` since the previous sample:
the tracker's own process was starved and its view is stale); it recovers at once. This adds
one sample period (0.25 s at the node's 4 Hz) to the detection time.

Root causes: :meth:`StreamTracker.reasons` names the device first (``robot joint state
(/joint_states, robot driver) silent for 12.0 s``), robot and operator streams before cameras
and derived ones, and a derived stream (``/retarget/joint_command``) only when its sources are
fine (:func:`robot_capture.floor.contract.root_causes`).

Silence threshold: ``max(silent_after_s, 3 / rate)`` (3 periods: a 1 Hz topic is not silent
after 1.1 s); ``max(silent_after_s, 3 s)`` for a presence-only stream. Slow: under
``(1 - tolerance)`` of the rate, the stream's contract tolerance (``min_rate_fraction`` for a
stream given as a bare rate). The defaults (1.0 s, fraction 0.5) are this project's choice: a stream at less
than half its rate makes a bag QA rejects anyway (the QA rate check warns at -10 %), and a
one-second hole is already a lost demonstration at 30-500 Hz.
"""
from __future__ import annotations

import collections
import dataclasses
import time
from typing import Mapping

from robot_capture.floor.contract import Stream, root_causes

__all__ = ["StreamState", "StreamTracker"]

OK, SLOW, SILENT, NEVER = "ok", "slow", "silent", "never"


@dataclasses.dataclass
class StreamState:
    """One expected stream as last evaluated (times in s, rates in Hz)."""

    topic: str
    expected_hz: float | None
    required: bool = True
    rate_hz: float = 0.0
    age_s: float = 0.0
    received: int = 0
    status: str = NEVER
    name: str = ""            # the contract's name, e.g. "robot joint state" ("" = the topic)
    role: str = ""            # robot | operator | camera | derived ("" = not declared)
    source: str = ""          # the device or driver, e.g. "robot driver"
    derived_from: tuple = ()
    min_fraction: float = 0.5  # slow under this fraction of expected_hz (1 - contract tolerance)

    @property
    def fresh(self) -> bool:
        return self.status == OK

    def label(self) -> str:
        """``robot joint state (/joint_states, robot driver)``; the bare topic when not declared."""
        if not self.name or self.name == self.topic:
            return self.topic
        return f"{self.name} ({self.topic}, {self.source})" if self.source else f"{self.name} ({self.topic})"

    def reason(self) -> str:
        """Plain words for a stream that is not fresh, device first, e.g. ``robot joint state
        (/joint_states, robot driver) silent for 3.2 s``."""
        if self.status == NEVER:
            return f"{self.label()} silent for {self.age_s:.1f} s (nothing received yet)"
        if self.status == SILENT:
            return f"{self.label()} silent for {self.age_s:.1f} s"
        if self.status == SLOW:
            return f"{self.label()} at {self.rate_hz:.1f} Hz, expected {self.expected_hz:.1f} Hz"
        return ""

    def as_dict(self) -> dict:
        """JSON-able: every field (``name``, ``role``, ``source`` for the console) and ``reason``."""
        d = dataclasses.asdict(self)
        d["derived_from"] = list(self.derived_from)
        d["name"] = self.name or self.topic
        d["reason"] = self.reason()
        return d


class StreamTracker:
    """Freshness of the expected streams from sampled receive counters.

    Args:
        expected: the contract's streams (:class:`~robot_capture.floor.contract.Stream`; each
            carries its name, role, source, tolerance and required flag), or topic -> expected
            rate (Hz) or None (presence only, required unless in ``optional``).
        silent_after_s: silence threshold floor (s); see the module docstring.
        min_rate_fraction: a stream under this fraction of its expected rate is ``slow``.
        rate_window_s: span of samples the rate is measured over (s).
        optional: topics that are shown but never block a start or stop an episode.
        now_ns: the start time (default: now); used as "last message" until one arrives.
    """

    def __init__(self, expected: Mapping[str, float | None] | list, silent_after_s: float = 1.0,
                 min_rate_fraction: float = 0.5, rate_window_s: float = 2.0, optional=(),
                 now_ns: int | None = None, stall_after_s: float = 0.75):
        if silent_after_s <= 0 or rate_window_s <= 0 or not 0 <= min_rate_fraction <= 1:
            raise ValueError("silent_after_s and rate_window_s must be > 0, min_rate_fraction within 0..1")
        self.silent_after_s = float(silent_after_s)
        self.min_rate_fraction = float(min_rate_fraction)
        self.rate_window_s = float(rate_window_s)
        self.started_ns = now_ns if now_ns is not None else time.time_ns()
        self.stall_after_s = float(stall_after_s)
        self.stalled = False
        self._last_update_ns = 0
        self._pending: dict[str, str] = {}   # topic -> a worse status seen once, awaiting confirmation
        self.states: dict[str, StreamState] = {}
        self._samples: dict[str, collections.deque] = {}
        streams = list(expected) if not isinstance(expected, Mapping) else [
            Stream(topic=t, type="", name=t, role="", rate_hz=r, tolerance=1.0 - self.min_rate_fraction)
            for t, r in expected.items()]
        optional = set(optional)
        for st in streams:
            rate = float(st.rate_hz) if st.rate_hz else None
            self.states[st.topic] = StreamState(
                st.topic, rate, required=st.required and st.topic not in optional, name=st.name, role=st.role,
                source=st.source, derived_from=tuple(st.derived_from), min_fraction=1.0 - st.tolerance)
            self._samples[st.topic] = collections.deque()

    def silence_threshold_s(self, state: StreamState) -> float:
        # presence-only (event or ~1 Hz) streams: 3 s, as 3 periods of a 1 Hz topic
        return max(self.silent_after_s, 3.0 / state.expected_hz) if state.expected_hz else max(self.silent_after_s, 3.0)

    def update(self, counters: Mapping[str, tuple[int, int]], now_ns: int | None = None) -> dict[str, StreamState]:
        """Take one sample. ``counters``: topic -> (received, last_recv_ns); a topic missing
        from it has received nothing. Returns the states (also in :attr:`states`)."""
        now_ns = now_ns if now_ns is not None else time.time_ns()
        self.stalled = bool(self._last_update_ns) and (now_ns - self._last_update_ns) * 1e-9 > self.stall_after_s
        self._last_update_ns = now_ns
        for topic, st in self.states.items():
            received, last_ns = counters.get(topic, (0, 0))
            samples = self._samples[topic]
            samples.append((now_ns, int(received)))
            while len(samples) > 2 and (now_ns - samples[1][0]) * 1e-9 >= self.rate_window_s:
                samples.popleft()
            span = (samples[-1][0] - samples[0][0]) * 1e-9
            st.rate_hz = (samples[-1][1] - samples[0][1]) / span if span > 0 else 0.0
            st.received = int(received)
            st.age_s = max(0.0, (now_ns - (last_ns or self.started_ns)) * 1e-9)
            if not received:
                status = NEVER
            elif st.age_s > self.silence_threshold_s(st):
                status = SILENT
            elif (st.expected_hz and span >= 0.9 * self.rate_window_s
                  and st.rate_hz < st.min_fraction * st.expected_hz):
                status = SLOW
            else:
                status = OK
            if status == OK or st.status != OK or status == NEVER:  # only ok -> bad waits for confirmation
                st.status = status
                self._pending.pop(topic, None)
            elif not self.stalled and self._pending.get(topic) == status:
                st.status = status  # confirmed by a second sample
                self._pending.pop(topic, None)
            else:
                self._pending[topic] = status  # seen once (or after a stall): wait for the next sample
        return self.states

    def not_fresh(self, required_only: bool = True) -> list[StreamState]:
        """The streams that are not ``ok`` (required ones only by default), in topic order."""
        return [s for t, s in sorted(self.states.items()) if not s.fresh and (s.required or not required_only)]

    def root_causes(self) -> list[StreamState]:
        """The required streams that are not fresh, as the gate names them: robot and operator
        devices first, a derived stream only when its sources are fresh."""
        return root_causes(self.not_fresh())

    def reasons(self) -> list[str]:
        """:meth:`root_causes` in plain words (the gate's and every refusal's text)."""
        return [s.reason() for s in self.root_causes()]

    def ready(self) -> bool:
        """Every required stream is fresh."""
        return not self.not_fresh()
