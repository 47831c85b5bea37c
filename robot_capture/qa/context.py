"""What every check sees of one episode: :class:`EpisodeContext`.

Definitions shared by all checks (and by ``robot-capture info``):

* **timebase** of a topic: its header stamps when it has a Header and they increase
  (at least 99 % of intervals > 0), else its receive times (MCAP ``log_time``). Stamps are
  the publisher's sample times, so a delivery stall that the publisher caught up on is not
  a data hole; a topic that reuses its input's stamp (a command at a fixed rate) falls
  back to receive times.
* **period**: ``1 / expected Hz`` when the rate is known, else the median interval.
* **drops** (missing messages): on stamps, each interval ``dt`` over ``drop_periods`` (1.5)
  periods counts ``round(dt / period) - 1``; on receive times (which jitter under load) the
  deficit ``round(span / period) + 1 - n``; the recorder's own counter (``drops/<topic>`` in
  custom_data: DDS lost samples, sequence gaps) is used when larger.
* **sustained rate**: ``1 / median interval``; the effective rate ``(n - 1) / span`` is a
  figure only (holes are the gaps check's business, so one defect is one finding).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robot_capture.qa.bagdata import BagData
from robot_capture.qa.config import QAConfig

__all__ = ["EpisodeContext", "TopicTiming", "topic_timing", "short_name"]


@dataclass
class TopicTiming:
    """Timing of one topic on its timebase. Times in s, rates in Hz."""

    topic: str
    count: int
    timebase: str                 # "stamp" | "receive"
    expected_hz: float | None
    period_s: float
    rate_hz: float                # sustained (1 / median interval)
    effective_hz: float           # (n - 1) / span
    drops: int
    longest_gap_s: float
    longest_gap_at_s: float       # offset from the episode start
    first_s: float                # first / last message, offsets from the episode start (receive time)
    last_s: float


def short_name(topic: str, names: dict | None = None) -> str:
    """Plain name for messages: the station contract's name of the stream when the bag has one
    (``names``: ``{topic: {"name": ...}}`` from
    :func:`robot_capture.floor.contract.streams_from_custom_data`), as ``robot joint state
    (/joint_states)``; else ``/camera/head/image_raw`` -> ``camera head``, other topics as they are."""
    name = ((names or {}).get(topic) or {}).get("name")
    if name:
        return f"{name} ({topic})"
    parts = [p for p in topic.split("/") if p]
    if len(parts) >= 2 and parts[0] == "camera":
        return f"camera {parts[1]}" + ("" if parts[-1] in ("image_raw", "compressed") else f" {parts[-1]}")
    return topic


def topic_timing(times_ns: np.ndarray, timebase: str, expected_hz: float | None, start_ns: int,
                 log_ns: np.ndarray, drop_periods: float = 1.5, recorder_drops: int = 0, topic: str = "") -> TopicTiming:
    """:class:`TopicTiming` of sorted ``times_ns`` (see the module docstring for definitions)."""
    n = len(times_ns)
    first = (int(log_ns[0]) - start_ns) / 1e9 if n else 0.0
    last = (int(log_ns[-1]) - start_ns) / 1e9 if n else 0.0
    if n < 2:
        return TopicTiming(topic, n, timebase, expected_hz, 1.0 / expected_hz if expected_hz else 0.0, 0.0, 0.0,
                           int(recorder_drops), 0.0, 0.0, first, last)
    t = np.sort(times_ns)
    dt = np.diff(t) / 1e9
    med = float(np.median(dt))
    period = 1.0 / expected_hz if expected_hz else med
    span = (int(t[-1]) - int(t[0])) / 1e9
    drops = 0
    if period > 0 and timebase == "stamp":
        long = dt[dt > drop_periods * period]
        drops = int(np.sum(np.maximum(np.rint(long / period) - 1, 1)))
    elif period > 0:  # receive times jitter: count the deficit against the expected count instead
        drops = max(0, int(round(span / period)) + 1 - n)
    i = int(np.argmax(dt))
    at = (int(t[i]) - int(t[0])) / 1e9 + ((int(log_ns[0]) - start_ns) / 1e9)
    return TopicTiming(topic, n, timebase, expected_hz, period, 1.0 / med if med > 0 else 0.0,
                       (n - 1) / span if span > 0 else 0.0, max(drops, int(recorder_drops)), float(dt[i]), at,
                       first, last)


@dataclass
class EpisodeContext:
    """One episode under QA: the bag's data, its labels, the expected rates, the config."""

    data: BagData
    episode: object                       # robot_capture.episodes.EpisodeRecord
    expected: dict                        # {topic: Hz | None}; the topics that must be present
    expected_source: str                  # argument | bag | config | floor | none
    config: QAConfig
    start_ns: int
    stop_ns: int
    folder_stats: dict | None = None      # {task: [durations s]} for the IQR rule
    optional: dict = field(default_factory=dict)  # {topic: Hz}: declared rates of streams not required
    metrics: dict = field(default_factory=dict)
    trim: dict = field(default_factory=dict)
    _timing: dict = field(default_factory=dict)
    _streams: dict | None = field(default=None, repr=False)

    @property
    def stream_names(self) -> dict:
        """``{topic: {name, role, source}}`` of the bag's station contract (custom_data
        ``stream/<topic>``); empty for a bag recorded without one."""
        if self._streams is None:
            from robot_capture.floor.contract import streams_from_custom_data

            self._streams = streams_from_custom_data(getattr(self.episode, "custom_data", None) or {})
        return self._streams

    def name(self, topic: str) -> str:
        """:func:`short_name` of ``topic`` with this bag's contract names."""
        return short_name(topic, self.stream_names)

    @property
    def duration_s(self) -> float:
        return max(0.0, (self.stop_ns - self.start_ns) / 1e9)

    def recorder_drops(self, topic: str) -> int:
        cd = self.episode.custom_data or {}
        for key in (f"drops/{topic}", f"drops.{topic}"):
            try:
                return int(float(cd.get(key, 0) or 0))
            except ValueError:
                continue
        return 0

    def timebase(self, topic: str) -> tuple[str, np.ndarray]:
        """``("stamp", stamps)`` or ``("receive", log times)``, int64 ns sorted as received."""
        st = self.data.stamps(topic)
        if st is not None and len(st) >= 2 and np.all(st > 0):
            d = np.diff(st)
            if np.count_nonzero(d > 0) >= 0.99 * len(d):
                return "stamp", st
        return "receive", self.data.log_times(topic)

    def timing(self, topic: str) -> TopicTiming:
        tt = self._timing.get(topic)
        if tt is None:
            base, times = self.timebase(topic)
            exp = self.expected.get(topic) or self.optional.get(topic)
            tt = topic_timing(times, base, exp, self.start_ns, self.data.log_times(topic),
                              self.config.gaps.drop_periods, self.recorder_drops(topic), topic)
            self._timing[topic] = tt
        return tt
