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

import numpy as np

__all__ = ["LatencyWindow"]


class LatencyWindow:
    """Collect one window of frames; :meth:`take` summarises it and starts the next.

    Totals (``dropped_total``, ``refused_total``, ``frames_total``) run over the whole session.
    """

    def __init__(self):
        self._net: list[float] = []
        self._t: list[float] = []
        self._last_seq: int | None = None
        self._dropped = self._refused = 0
        self.dropped_total = self.refused_total = self.frames_total = 0

    def frame(self, seq: int, sample_s: float, network_s: float) -> None:
        """A published frame: its ``seq``, sample time (station clock, s) and network delay (s)."""
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
        self._refused += 1
        self.refused_total += 1

    def restart_sequence(self) -> None:
        """A new connection numbers its frames from 0 again."""
        self._last_seq = None

    def take(self) -> dict:
        """Summary of the window since the last call (ms, Hz, counts); keys as in ``/xr/latency``.

        ``network_ms_p50``/``_p95``/``_max`` and ``xr_fps`` are NaN for a window without frames.
        """
        net = np.asarray(self._net) * 1e3
        t = np.asarray(self._t)
        out = {
            "network_ms_p50": float(np.percentile(net, 50)) if net.size else float("nan"),
            "network_ms_p95": float(np.percentile(net, 95)) if net.size else float("nan"),
            "network_ms_max": float(net.max()) if net.size else float("nan"),
            "xr_fps": float((t.size - 1) / (t.max() - t.min())) if t.size > 1 and t.max() > t.min() else float("nan"),
            "frames": int(net.size),
            "dropped_frames": self._dropped,
            "refused_frames": self._refused,
            "dropped_frames_total": self.dropped_total,
            "refused_frames_total": self.refused_total,
        }
        self._net, self._t, self._dropped, self._refused = [], [], 0, 0
        return out
