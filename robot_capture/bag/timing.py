"""Per-topic receive times and gaps, read from MCAP message indexes (no decompression).

``topic_log_times(reader)`` reads each chunk's MessageIndex records (log time and
offset of every message, written after each chunk by our writer and by rosbag2),
so a multi-GB image bag is summarized without touching the image bytes. Files
whose chunks have no message index, or a damaged one (framing wrong, or times
outside the chunk's own time range), fall back to ``BagReader.messages``, which
skips damaged chunks (and lists them in ``reader.damaged_chunks``).

``gap_report(times)``: a gap is an interval between consecutive messages of one
topic that exceeds ``max(factor * median interval, min_gap_s)``, or a fixed
``threshold_s`` when given.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

__all__ = ["TopicTiming", "gap_report", "topic_log_times"]


def _index_times(f, summary) -> dict[int, list] | None:
    """Log times per channel id from the MessageIndex records; None if any looks damaged."""
    out: dict[int, list] = {}
    for ci in summary.chunk_indexes:
        if not ci.message_index_offsets:
            return None
        for cid, off in ci.message_index_offsets.items():
            f.seek(off)
            head = f.read(9 + 6)
            if len(head) < 15 or head[0] != 0x07:
                return None
            _op, length, ch, nbytes = struct.unpack("<BQHI", head)
            if ch != cid or nbytes % 16 or length != 6 + nbytes:
                return None
            body = f.read(nbytes)
            if len(body) != nbytes:
                return None
            arr = np.frombuffer(body, dtype="<u8").reshape(-1, 2)[:, 0]
            if len(arr) and (arr.min() < ci.message_start_time or arr.max() > ci.message_end_time):
                return None
            out.setdefault(cid, []).append(arr)
    return out


def topic_log_times(reader) -> dict[str, np.ndarray]:
    """Sorted log times (int64 ns) per topic over all files of a BagReader."""
    acc: dict[str, list] = {}
    fallback = False
    for path, summary in zip(reader.files, reader._summaries):
        try:
            with open(path, "rb") as f:
                per_ch = _index_times(f, summary)
        except OSError:
            per_ch = None
        if per_ch is None:
            fallback = True
            continue
        for cid, parts in per_ch.items():
            ch = summary.channels.get(cid)
            if ch is not None:
                acc.setdefault(ch.topic, []).extend(parts)
    if fallback:  # read the files without usable indexes message by message (skips damaged chunks)
        times: dict[str, list] = {}
        for m in reader.messages():
            times.setdefault(m.topic, []).append(m.log_time_ns)
        acc = {t: [np.array(v, dtype=np.uint64)] for t, v in times.items()}
    return {t: np.sort(np.concatenate(p).astype(np.int64)) for t, p in acc.items() if p}


@dataclass
class TopicTiming:
    """Timing of one topic. Times in s; ``gaps``: (start offset from bag start in s, length s)."""

    count: int
    rate_hz: float
    median_period_s: float
    largest_gap_s: float
    largest_gap_at_s: float
    threshold_s: float
    gaps: list = field(default_factory=list)


def gap_report(times: dict[str, np.ndarray], bag_start_ns: int, threshold_s: float | None = None,
               factor: float = 10.0, min_gap_s: float = 0.05) -> dict[str, TopicTiming]:
    """Rate, largest gap and gaps above a threshold per topic (see module docstring)."""
    out = {}
    for topic, t in times.items():
        n = len(t)
        if n < 2:
            out[topic] = TopicTiming(n, 0.0, 0.0, 0.0, 0.0, float(threshold_s or 0.0))
            continue
        d = np.diff(t) / 1e9
        span = (t[-1] - t[0]) / 1e9
        med = float(np.median(d))
        thr = float(threshold_s) if threshold_s is not None else max(factor * med, min_gap_s)
        i = int(np.argmax(d))
        idx = np.nonzero(d > thr)[0]
        gaps = [((int(t[k]) - bag_start_ns) / 1e9, float(d[k])) for k in idx]
        out[topic] = TopicTiming(n, (n - 1) / span if span > 0 else 0.0, med, float(d[i]),
                                 (int(t[i]) - bag_start_ns) / 1e9, thr, gaps)
    return out
