"""Quality checks of a recorded episode bag: rates, gaps, drops, IK error.

ROS-free: reads the bag with :class:`robot_capture.bag.reader.BagReader`; decoding
(for the IK error in ``/diagnostics``) uses the schemas stored in the bag.

Definitions (all from receive times, ``log_time``, i.e. what the recorder got):

* rate: ``(n - 1) / (t_last - t_first)`` over the topic's messages, in Hz;
  ``rate_ok`` when within ``rate_tolerance`` (default 10 %) of the expected rate.
* gap: an interval between consecutive messages of one topic longer than
  ``gap_threshold_s`` (default 0.1 s); ``max_gap_s`` is the longest interval.
* drops: the recorder's own per-topic drop counters (DDS message-lost events, queue
  overflows), as it stores them in the bag's ``custom_data`` or metadata records
  (``recorder_drops``; keys ``drops/<topic>``, ``drops.<topic>`` or ``drops:<topic>``).
  Timing alone cannot tell a drop from a publisher that fell behind, so the
  spacing estimate ``late`` (each interval ``dt`` longer than 1.5 periods of the
  expected rate ``r`` counts ``round(dt * r) - 1`` missing periods) is reported but
  is not a failure; a late publisher shows up in the rate check instead.
* IK error: per ``/diagnostics`` status of the retarget node, the largest wrist-task
  position error (a window maximum); p95 over the episode, in metres
  (:func:`ik_position_errors`).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from robot_capture.bag.reader import BagReader


@dataclass
class TopicQA:
    """QA of one topic. Rates in Hz, times in s."""

    topic: str
    type: str
    count: int
    rate_hz: float
    expected_hz: float | None
    max_gap_s: float
    gaps: int
    late: int
    rate_ok: bool


@dataclass
class EpisodeQA:
    """QA of one episode bag; ``ok`` when every expected topic is present at its rate,
    with no gap and no recorder-reported drop."""

    bag: str
    duration_s: float
    topics: dict = field(default_factory=dict)       # topic -> TopicQA
    missing: list = field(default_factory=list)      # expected topics absent from the bag
    recorder_drops: dict = field(default_factory=dict)
    ik_p95_position_m: float | None = None
    labels: dict = field(default_factory=dict)       # task, operator, success, ... from custom_data

    @property
    def ok(self) -> bool:
        rated = [t for t in self.topics.values() if t.expected_hz]
        return (not self.missing and all(t.rate_ok and t.gaps == 0 for t in rated)
                and not any(self.recorder_drops.values()))

    @property
    def drops(self) -> int | None:
        """Recorder-counted drops over all topics; None when the recorder stored no counters."""
        return sum(self.recorder_drops.values()) if self.recorder_drops else None


def _interval_stats(times_ns: np.ndarray, expected_hz: float | None, gap_threshold_s: float):
    if len(times_ns) < 2:
        return 0.0, 0.0, 0, 0
    t = np.sort(times_ns.astype(np.int64))
    dt = np.diff(t) / 1e9
    span = (t[-1] - t[0]) / 1e9
    rate = (len(t) - 1) / span if span > 0 else math.inf
    gaps = int(np.count_nonzero(dt > gap_threshold_s))
    late = 0
    if expected_hz:
        long = dt[dt > 1.5 / expected_hz]
        late = int(np.sum(np.maximum(np.rint(long * expected_hz) - 1, 0)))
    return rate, float(dt.max()), gaps, late


def _recorder_drops(reader: BagReader) -> dict[str, int]:
    """Per-topic drop counts the recorder stored (custom_data / metadata records), if any."""
    found: dict[str, int] = {}
    sources = [getattr(reader.metadata, "custom_data", None) or {}]
    try:
        sources += list(reader.metadata_records().values())
    except Exception:  # noqa: BLE001 - older bags without metadata records
        pass
    for src in sources:
        for key, value in dict(src).items():
            m = re.match(r"^(?:drops?|dropped)[./:](.+)$", str(key))
            if m:
                try:
                    found[m.group(1)] = int(float(value))
                except ValueError:
                    continue
    return found


_POS_KEY = re.compile(r"(position|pos)[_ ]?(error|err)", re.I)


def ik_position_errors(reader: BagReader, node_hint: str = "retarget", wrist_only: str = "wrist") -> np.ndarray:
    """Largest IK position error per retarget diagnostics status, in metres.

    Reads ``/diagnostics`` (decoded from the bag's stored schema); for each
    ``DiagnosticStatus`` whose name starts with ``node_hint``, takes the key-values whose
    key looks like ``<task>.position_error*`` (values in m; keys ending in ``_mm`` are
    converted), only those of tasks whose name contains ``wrist_only`` when there are
    any (elbow and torso tasks are soft by design), and keeps the largest. The retarget
    node reports the maximum over each diagnostics window (1 s by default), so the p95
    of these values is an upper bound of the per-frame p95.
    Returns shape ``(n_statuses,)``; empty if none.
    """
    if "/diagnostics" not in reader.topics:
        return np.zeros(0)
    out = []
    for m in reader.messages(topics=["/diagnostics"], decode=True):
        if m.message is None:
            continue
        for st in m.message.status:
            if not st.name.startswith(node_hint):  # "retarget: g1", not "recorder: /retarget/..."
                continue
            vals, wrist = [], []
            for kv in st.values:
                if not _POS_KEY.search(kv.key):
                    continue
                try:
                    v = float(kv.value)
                except ValueError:
                    continue
                if kv.key.endswith("_mm"):
                    v /= 1000.0
                if math.isfinite(v):
                    vals.append(v)
                    if wrist_only in kv.key:
                        wrist.append(v)
            vals = wrist or vals
            if vals:
                out.append(max(vals))
    return np.asarray(out, dtype=float)


def check_bag(bag_dir: str | Path, expected: Mapping[str, float | None], gap_threshold_s: float = 0.1,
              rate_tolerance: float = 0.10) -> EpisodeQA:
    """QA of one bag against ``expected`` = {topic: rate in Hz, or None for no rate check}.

    Raises:
        the reader's errors (NotABagError, IncompleteBagFileError) for unreadable bags.
    """
    with BagReader(bag_dir) as reader:
        from robot_capture.bag.timing import topic_log_times  # message indexes: image bytes not read

        times = {t: np.zeros(0, dtype=np.int64) for t in reader.topics}
        times.update(topic_log_times(reader))
        qa = EpisodeQA(bag=str(bag_dir), duration_s=0.0)
        nonempty = [ts for ts in times.values() if len(ts)]
        if nonempty:
            qa.duration_s = (max(int(ts[-1]) for ts in nonempty) - min(int(ts[0]) for ts in nonempty)) / 1e9
        for topic, info in reader.topics.items():
            exp = expected.get(topic)
            rate, max_gap, gaps, late = _interval_stats(times[topic], exp, gap_threshold_s)
            rated = bool(exp) and exp >= 1.0 / gap_threshold_s  # a 1 Hz topic has 1 s "gaps" by design
            ok = True if not exp else abs(rate - exp) <= rate_tolerance * exp
            qa.topics[topic] = TopicQA(topic, info.type, len(times[topic]), rate, exp, max_gap,
                                       gaps if rated else 0, late if rated else 0, ok)
        qa.missing = sorted(t for t in expected if t not in reader.topics or not len(times.get(t, ())))
        qa.recorder_drops = _recorder_drops(reader)
        errs = ik_position_errors(reader)
        if errs.size:
            qa.ik_p95_position_m = float(np.percentile(errs, 95))
        custom = getattr(reader.metadata, "custom_data", None) or {}
        for k in ("task", "operator", "scene", "success"):  # the recorder writes episode.<key>
            v = custom.get(f"episode.{k}", custom.get(k))
            if v is not None:
                qa.labels[k] = v
    return qa


def qa_line(qa: EpisodeQA) -> str:
    """One line per episode: verdict, labels, rates vs expected, drops, gaps, p95 IK error."""
    rated = [t for t in qa.topics.values() if t.expected_hz]
    worst = max(rated, key=lambda t: abs(t.rate_hz - t.expected_hz) / t.expected_hz, default=None)
    parts = [f"QA {'PASS' if qa.ok else 'FAIL'} {Path(qa.bag).name}"]
    if qa.labels:
        parts.append(" ".join(f"{k}={v}" for k, v in qa.labels.items()))
    parts.append(f"{qa.duration_s:.1f}s")
    n_ok = sum(t.rate_ok for t in rated)
    parts.append(f"rates {n_ok}/{len(rated)} within 10%")
    if worst is not None:
        parts.append(f"(worst {worst.topic} {worst.rate_hz:.1f}/{worst.expected_hz:.0f} Hz)")
    parts.append(f"drops {qa.drops if qa.drops is not None else 'n/a (not counted by recorder)'}")
    fast = [t for t in rated if t.expected_hz >= 10.0]
    parts.append(f"late periods ~{sum(t.late for t in fast)}")
    max_gap = max((t.max_gap_s for t in fast), default=0.0)
    parts.append(f"gaps>100ms {sum(t.gaps for t in rated)} (max {max_gap * 1e3:.0f} ms)")
    parts.append("p95 IK wrist error " + (f"{qa.ik_p95_position_m * 1e3:.1f} mm" if qa.ik_p95_position_m is not None
                                    else "n/a"))
    if qa.missing:
        parts.append(f"MISSING {qa.missing}")
    return " | ".join(parts)
