"""Per-window pose-path figures for ``/xr/latency``: network delay, XR frame rate, dropped frames.

* **network** = station receive time - the frame's sample time in station time (the headset
  clock through :class:`~robot_capture.xr.clock.ClockSync`), ms; includes the page's own
  serialisation and the WebSocket.
* **xr_fps** = frames in the window / span of their headset sample times (the headset's XR
  frame rate as the station saw it, not the station's receive rate).
* **dropped** = frames the page numbered but the station never got (``seq`` gaps), plus frames
  the station received and refused (bad input), counted separately.
"""
from __future__ import annotations

import threading

import numpy as np

__all__ = ["LatencyWindow"]


class LatencyWindow:
    """Collect one window of frames; :meth:`take` summarises it and starts the next.

    Totals (``dropped_total``, ``refused_total``, ``frames_total``) run over the whole session.
    Thread-safe: the server's loop adds frames while the node's timer takes windows.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._net: list[float] = []
        self._t: list[float] = []
        self._last_seq: int | None = None
        self._dropped = self._refused = 0
        self.dropped_total = self.refused_total = self.frames_total = 0

    def frame(self, seq: int, sample_s: float, network_s: float) -> None:
        """A published frame: its ``seq``, sample time (station clock, s) and network delay (s)."""
        with self._lock:
            self._frame(seq, sample_s, network_s)

    def _frame(self, seq: int, sample_s: float, network_s: float) -> None:
        if self._last_seq is not None and seq > self._last_seq + 1:
            gap = seq - self._last_seq - 1
            self._dropped += gap
            self.dropped_total += gap
        if self._last_seq is None or seq > self._last_seq:
            self._last_seq = seq
        self._net.append(network_s)
        self._t.append(sample_s)
        self.frames_total += 1

    def refused(self) -> None:
        """A frame received and refused (bad input): counted, not published."""
        with self._lock:
            self._refused += 1
            self.refused_total += 1

    def restart_sequence(self) -> None:
        """A new connection numbers its frames from 0 again."""
        self._last_seq = None

    def take(self) -> dict:
        """Summary of the window since the last call (ms, Hz, counts); keys as in ``/xr/latency``.

        ``network_ms_p50``/``_p95``/``_max`` and ``xr_fps`` are NaN for a window without frames.
        """
        with self._lock:
            net, t, dropped, refused = np.asarray(self._net) * 1e3, np.asarray(self._t), self._dropped, self._refused
            self._net, self._t, self._dropped, self._refused = [], [], 0, 0
        out = {
            "network_ms_p50": float(np.percentile(net, 50)) if net.size else float("nan"),
            "network_ms_p95": float(np.percentile(net, 95)) if net.size else float("nan"),
            "network_ms_max": float(net.max()) if net.size else float("nan"),
            "xr_fps": float((t.size - 1) / (t.max() - t.min())) if t.size > 1 and t.max() > t.min() else float("nan"),
            "frames": int(net.size),
            "dropped_frames": dropped,
            "refused_frames": refused,
            "dropped_frames_total": self.dropped_total,
            "refused_frames_total": self.refused_total,
        }
        return out
