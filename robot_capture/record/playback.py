"""Playback planning for ``robot-capture play`` / player_node, without rclpy.

* :func:`parse_remaps` reads ``from:=to`` pairs (the ``ros2 bag play --remap`` syntax).
* :func:`publisher_qos` picks the QoS to publish a topic with from the offers stored
  in the bag (as ``ros2 bag play``: the recorded offers; when publishers disagreed,
  best effort if any offered it, transient local only if all did).
* :class:`PlaybackClock` maps bag time (``log_time``, ns) to wall time for a rate and
  start offset: ``wall(t) = wall_start + (t - bag_start - offset) / rate``.
"""
from __future__ import annotations

import time
from typing import Iterable

from robot_capture.bag.qos import adapt_request_to_offers


def parse_remaps(items: Iterable[str]) -> dict[str, str]:
    """``["/a:=/b", "c:=/d"]`` -> ``{"/a": "/b", "/c": "/d"}`` (names made absolute).

    Raises:
        ValueError: an item without ``:=`` or with an empty side.
    """
    out = {}
    for item in items or []:
        if not item:
            continue
        src, sep, dst = str(item).partition(":=")
        if not sep or not src.strip() or not dst.strip():
            raise ValueError(f"remap must be FROM:=TO, got {item!r}")
        out["/" + src.strip().lstrip("/")] = "/" + dst.strip().lstrip("/")
    return out


def publisher_qos(offers: list[dict], min_depth: int = 10) -> dict:
    """QoS dict (``robot_capture.bag.qos`` form) to publish a topic recorded with ``offers``."""
    req = adapt_request_to_offers(offers)
    req["depth"] = max([min_depth] + [int(o.get("depth", 0) or 0) for o in offers])
    return req


class PlaybackClock:
    """Wall-clock schedule of a bag replayed at ``rate`` from ``bag_start_ns + offset``.

    Args:
        bag_start_ns: the bag's first ``log_time`` (ns).
        rate: playback speed factor (> 0).
        offset_s: skip this many seconds of the bag.
    Raises:
        ValueError: rate <= 0 or offset < 0.
    """

    def __init__(self, bag_start_ns: int, rate: float = 1.0, offset_s: float = 0.0, now=time.monotonic):
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        if offset_s < 0:
            raise ValueError(f"start offset must be >= 0, got {offset_s}")
        self.rate = float(rate)
        self.start_ns = int(bag_start_ns) + int(offset_s * 1e9)
        self._now = now
        self.wall_start = now()

    def restart(self) -> None:
        """Begin again (loop)."""
        self.wall_start = self._now()

    def due_in(self, log_time_ns: int) -> float:
        """Seconds until a message stamped ``log_time_ns`` is due (<= 0: now)."""
        return self.wall_start + (log_time_ns - self.start_ns) / 1e9 / self.rate - self._now()

    def bag_now_ns(self) -> int:
        """The bag time being played now (for ``/clock``)."""
        return self.start_ns + int((self._now() - self.wall_start) * self.rate * 1e9)
