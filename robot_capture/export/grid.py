"""The fixed frame grid and how each stream is sampled onto it (header stamps, ns).

LeRobot v3.0 has one rate per dataset: frame k of an episode has ``timestamp = k / fps``
and its video frame is decoded at ``from_timestamp + k / fps`` within 0.1 ms
(``LeRobotDataset.tolerance_s = 1e-4``, lerobot v0.4.4 ``datasets/lerobot_dataset.py``);
its maintainers refused multi-rate data (huggingface/lerobot#3513). So every stream is
resampled here onto ``t_k = t_0 + k * 1e9 / fps`` ns:

* the grid starts at the primary camera's first frame at or after the moment every
  stream has data, and ends at the earliest last sample of any stream;
* ``interpolate``: linear between the samples around ``t_k`` (joint positions, 500 Hz);
* ``hold``: the last sample at or before ``t_k`` (a command in effect until the next one);
* cameras: the frame nearest ``t_k`` if within half a grid period, else the last frame
  used is repeated and the frame is counted stale.

All times are int ns since the epoch (header stamps); arrays are numpy. Pure functions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Grid", "GridError", "estimate_rate_hz", "make_grid", "sort_samples", "interpolate", "hold",
           "nearest_frames"]


class GridError(ValueError):
    """The streams do not overlap for at least two frames (message says by how much)."""


@dataclass(frozen=True)
class Grid:
    """``n`` frames at ``fps`` from ``t0_ns``; ``times_ns[k] = t0_ns + round(k * 1e9 / fps)``."""

    t0_ns: int
    n: int
    fps: int

    @property
    def times_ns(self) -> np.ndarray:
        return self.t0_ns + np.round(np.arange(self.n) * (1e9 / self.fps)).astype(np.int64)

    @property
    def timestamps(self) -> np.ndarray:
        """LeRobot's ``timestamp`` column: exactly ``k / fps`` as float32 (s)."""
        return (np.arange(self.n, dtype=np.float64) / self.fps).astype(np.float32)


def estimate_rate_hz(stamps_ns: np.ndarray) -> float:
    """Rate (Hz) from the median interval of sorted stamps; 0.0 with fewer than 2."""
    s = np.asarray(stamps_ns, dtype=np.int64)
    if s.size < 2:
        return 0.0
    d = np.diff(np.sort(s))
    d = d[d > 0]
    return 1e9 / float(np.median(d)) if d.size else 0.0


def make_grid(first_ns: list[int], last_ns: list[int], primary_ns: np.ndarray | None, fps: int) -> Grid:
    """The grid for streams whose first/last stamps are given.

    Args:
        first_ns, last_ns: first and last stamp of every stream (cameras included).
        primary_ns: sorted stamps of the primary camera (None: no camera; the grid then
            starts when every stream has data).
        fps: grid rate (Hz, > 0).

    Raises:
        GridError: the overlap is shorter than one frame period (fewer than 2 frames),
            or the primary camera has no frame inside the overlap.
    """
    if fps <= 0:
        raise GridError(f"fps must be > 0, got {fps}")
    ready, end = max(first_ns), min(last_ns)
    if primary_ns is not None and len(primary_ns):
        i = int(np.searchsorted(primary_ns, ready, side="left"))
        if i >= len(primary_ns):
            raise GridError("the primary camera has no frame after every stream has data")
        t0 = int(primary_ns[i])
    else:
        t0 = int(ready)
    period = 1e9 / fps
    span = end - t0
    if span < period:
        raise GridError(f"episode shorter than one frame period: the streams overlap for "
                        f"{max(span, 0) / 1e6:.1f} ms < {period / 1e6:.1f} ms at {fps} fps")
    n = int(np.floor(span * fps / 1e9 + 1e-9)) + 1
    return Grid(t0_ns=t0, n=n, fps=fps)


def sort_samples(stamps_ns: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stamps sorted ascending with duplicates dropped (the later message wins), values likewise."""
    t = np.asarray(stamps_ns, dtype=np.int64)
    order = np.argsort(t, kind="stable")
    t, v = t[order], values[order]
    if t.size > 1:
        keep = np.ones(t.size, dtype=bool)
        keep[:-1] = t[1:] != t[:-1]
        t, v = t[keep], v[keep]
    return t, v


def interpolate(stamps_ns: np.ndarray, values: np.ndarray, grid_ns: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``values`` (N, D) at ``grid_ns`` (M,) -> (M, D) float64.

    Stamps must be sorted and unique (:func:`sort_samples`); grid times outside the
    samples take the end values (the grid lies inside them by construction).
    """
    t = (np.asarray(stamps_ns, dtype=np.int64) - grid_ns[0]).astype(np.float64)
    g = (grid_ns - grid_ns[0]).astype(np.float64)
    v = np.asarray(values, dtype=np.float64).reshape(len(t), -1)
    if len(t) == 1:
        return np.repeat(v, len(g), axis=0)
    j = np.clip(np.searchsorted(t, g, side="right"), 1, len(t) - 1)
    t0, t1 = t[j - 1], t[j]
    w = np.clip((g - t0) / (t1 - t0), 0.0, 1.0)[:, None]
    return v[j - 1] * (1.0 - w) + v[j] * w


def hold(stamps_ns: np.ndarray, values: np.ndarray, grid_ns: np.ndarray) -> np.ndarray:
    """The last sample at or before each grid time (zero-order hold) -> (M, D) float64.
    Grid times before the first sample take the first one."""
    v = np.asarray(values, dtype=np.float64).reshape(len(stamps_ns), -1)
    j = np.clip(np.searchsorted(stamps_ns, grid_ns, side="right") - 1, 0, len(stamps_ns) - 1)
    return v[j]


def nearest_frames(stamps_ns: np.ndarray, grid_ns: np.ndarray, period_ns: float) -> tuple[np.ndarray, int]:
    """Which camera frame each grid time shows, and how many grid frames are stale.

    The frame nearest ``t_k`` is used if ``|stamp - t_k| <= period_ns / 2``; otherwise the
    frame used for ``t_{k-1}`` is repeated (stale; at k = 0 the nearest one is used and
    counted stale). Returns ``(index (M,) int64 into stamps_ns, nondecreasing; stale count)``.
    """
    s = np.asarray(stamps_ns, dtype=np.int64)
    j = np.clip(np.searchsorted(s, grid_ns, side="left"), 0, len(s) - 1)
    jm = np.clip(j - 1, 0, len(s) - 1)
    pick = np.where(np.abs(s[jm] - grid_ns) <= np.abs(s[j] - grid_ns), jm, j)
    ok = np.abs(s[pick] - grid_ns) <= period_ns / 2.0
    out = pick.copy()
    for k in np.flatnonzero(~ok):
        if k > 0:
            out[k] = out[k - 1]
    out = np.maximum.accumulate(out)  # a repeat never goes back in time
    return out, int(np.count_nonzero(~ok))
