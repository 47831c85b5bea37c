"""Feature statistics in LeRobot v3.0's layout (``meta/stats.json`` and the per-episode
``stats/<feature>/<stat>`` columns of ``meta/episodes``).

Per feature: ``min``, ``max``, ``mean``, ``std`` (population), ``count`` (shape (1,)) and
the quantiles ``q01 q10 q50 q90 q99`` (lerobot v0.4.4 ``datasets/compute_stats.py``:
``DEFAULT_QUANTILES``). Numeric features: per dimension over the episode's frames, shape
(D,). Video features: per RGB channel over the pixels of sampled frames scaled to
[0, 1], shape (3, 1, 1); frames sampled and downscaled as LeRobot does
(``sample_indices``, ``auto_downsample_height_width``); ``count`` = frames sampled.

Differences from LeRobot, on purpose: per-episode quantiles are exact (``np.quantile``,
linear) where LeRobot uses a 5000-bin histogram; aggregation over episodes is LeRobot's
(``aggregate_feature_stats``: count-weighted means, parallel variance, count-weighted
quantile means), so ``lerobot-train`` normalizes with the same numbers it would compute.
"""
from __future__ import annotations

import numpy as np

__all__ = ["QUANTILES", "feature_stats", "image_stats", "sample_indices", "downsample", "aggregate",
           "to_json", "from_json"]

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
Q_KEYS = tuple(f"q{int(round(q * 100)):02d}" for q in QUANTILES)


def feature_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Stats of a (N, D) or (N,) array over axis 0 -> dict of (D,) arrays (``count`` (1,)).

    Scalar columns (N,) give shape (1,) stats, as LeRobot's ``keepdims`` for 1-D data.
    """
    a = np.asarray(values, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    out = {"min": a.min(axis=0), "max": a.max(axis=0), "mean": a.mean(axis=0), "std": a.std(axis=0),
           "count": np.array([a.shape[0]], dtype=np.int64)}
    qs = np.quantile(a, QUANTILES, axis=0)
    for k, q in zip(Q_KEYS, qs):
        out[k] = q
    return out


def sample_indices(n: int) -> list[int]:
    """Frames sampled for image stats: LeRobot's ``estimate_num_samples`` (min 100, max
    10 000, power 0.75) spread evenly over ``n`` frames."""
    lo = min(100, n)
    k = max(lo, min(int(n ** 0.75), 10_000))
    return np.round(np.linspace(0, n - 1, k)).astype(int).tolist()


def downsample(img: np.ndarray, target: int = 150, threshold: int = 300) -> np.ndarray:
    """(H, W, 3) -> strided (H', W', 3) when the long side is >= ``threshold`` (LeRobot's
    ``auto_downsample_height_width``)."""
    h, w = img.shape[:2]
    if max(h, w) < threshold:
        return img
    f = int(w / target) if w > h else int(h / target)
    return img[::f, ::f]


def _quantile_from_counts(counts: np.ndarray, q: float) -> float:
    """``np.quantile(values, q)`` (method ``linear``) of integer values 0..255 given as a
    histogram ``counts`` (256,): exact, without sorting the values."""
    n = int(counts.sum())
    pos = q * (n - 1)
    lo, frac = int(np.floor(pos)), pos - np.floor(pos)
    cum = np.cumsum(counts)
    v_lo = int(np.searchsorted(cum, lo, side="right"))
    v_hi = int(np.searchsorted(cum, min(lo + 1, n - 1), side="right"))
    return v_lo + frac * (v_hi - v_lo)


def image_stats(frames: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-channel stats of sampled (H, W, 3) uint8 frames scaled to [0, 1] -> (3, 1, 1)
    arrays; ``count`` = number of frames. Computed from per-channel 256-bin histograms
    (exact for 8-bit pixels: same numbers as :func:`feature_stats` on the pixels)."""
    if not frames:
        raise ValueError("image stats need at least one frame")
    px = np.concatenate([downsample(f).reshape(-1, 3) for f in frames])
    levels = np.arange(256, dtype=np.float64)
    out: dict = {k: np.zeros(3) for k in ("min", "max", "mean", "std", *Q_KEYS)}
    for ch in range(3):
        counts = np.bincount(px[:, ch], minlength=256).astype(np.float64)
        n = counts.sum()
        nz = np.flatnonzero(counts)
        mean = float((counts * levels).sum() / n)
        out["min"][ch], out["max"][ch], out["mean"][ch] = nz[0], nz[-1], mean
        out["std"][ch] = np.sqrt(max(float((counts * (levels - mean) ** 2).sum() / n), 0.0))
        for k, q in zip(Q_KEYS, QUANTILES):
            out[k][ch] = _quantile_from_counts(counts, q)
    out = {k: (v / 255.0).reshape(3, 1, 1) for k, v in out.items()}
    out["count"] = np.array([len(frames)], dtype=np.int64)
    return out


def aggregate(stats_list: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """Combine per-episode stats into dataset stats (LeRobot's ``aggregate_stats``)."""
    keys = sorted({k for s in stats_list for k in s})
    out = {}
    for key in keys:
        fs = [s[key] for s in stats_list if key in s]
        means = np.stack([np.asarray(f["mean"], dtype=np.float64) for f in fs])
        var = np.stack([np.asarray(f["std"], dtype=np.float64) ** 2 for f in fs])
        counts = np.stack([np.asarray(f["count"], dtype=np.float64) for f in fs])
        total = counts.sum(axis=0)
        c = counts
        while c.ndim < means.ndim:
            c = c[..., None]
        mean = (means * c).sum(axis=0) / total
        variance = ((var + (means - mean) ** 2) * c).sum(axis=0) / total
        agg = {"min": np.min(np.stack([f["min"] for f in fs]), axis=0),
               "max": np.max(np.stack([f["max"] for f in fs]), axis=0),
               "mean": mean, "std": np.sqrt(variance), "count": total.astype(np.int64)}
        for q in Q_KEYS:
            if all(q in f for f in fs):
                agg[q] = (np.stack([np.asarray(f[q], dtype=np.float64) for f in fs]) * c).sum(axis=0) / total
        out[key] = agg
    return out


def to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict:
    """Arrays -> nested lists (``meta/stats.json``)."""
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}


def from_json(doc: dict) -> dict[str, dict[str, np.ndarray]]:
    return {k: {s: np.asarray(v) for s, v in d.items()} for k, d in doc.items()}
