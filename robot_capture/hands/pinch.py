"""DexPilot's pinch weighting of fingertip pairs. ROS-free, NumPy.

Handa et al., "DexPilot: Vision-Based Teleoperation of Dexterous Robotic Hand-Arm System",
ICRA 2020, sec. IV-B: the cost has one term per fingertip pair; when the operator's thumb
and another fingertip are within a few centimetres, that pair's target distance is set to
(near) zero and its weight raised (200 in the paper), so the robot's pinch closes even when
its thumb cannot reproduce the human vector. Thresholds are the mapping's ``pinch:`` keys
(:class:`~.schema.PinchSpec`; defaults 2 cm closed, 4 cm released, weight 200).
"""
from __future__ import annotations

import numpy as np


def pair_list(nfingers: int) -> list[tuple[int, int]]:
    """Fingertip pairs ``(i, j)``, ``i < j``, in finger order: the thumb's (0, j) pairs first."""
    return [(i, j) for i in range(nfingers) for j in range(i + 1, nfingers)]


def pinch_blend(distance_m, close_m: float, release_m: float) -> np.ndarray:
    """Per pair, how far from a full pinch: 0 at or under ``close_m``, 1 at or over ``release_m``,
    linear in between (dimensionless, same shape as ``distance_m``)."""
    d = np.asarray(distance_m, dtype=float)
    return np.clip((d - close_m) / (release_m - close_m), 0.0, 1.0)


def pair_targets(tips, I, J, nthumb, scale, close_m, release_m, pinch_weight, base_weight):
    """DexPilot pair targets and weights (vectorized over pairs).

    Args:
        tips: (nf, 3) human fingertips in the robot base axes, already scaled by ``scale`` (m).
        I, J: (npairs,) int index arrays of the pairs (:func:`pair_list`: the ``nthumb`` thumb
            pairs come first). scale: (nthumb,) the scaling of the thumb pairs: the thresholds
            apply to the human distance ``|v| / scale``.
        close_m, release_m: pinch thresholds (m, human). pinch_weight, base_weight: pair cost
            when fully pinched / released (1/m^2).
    Returns:
        (vec (npairs, 3), weight (npairs,)): target ``tip_j - tip_i`` (m, base axes; shrunk to 0
        for the thumb pair in a pinch: one at a time, the index first (pair 0 is thumb-index), else the
        finger nearest the thumb) and its cost.
    """
    v = tips[J] - tips[I]
    vt = v[:nthumb]
    d = np.sqrt((vt * vt).sum(axis=1)) / scale
    b = pinch_blend(d, close_m, release_m)
    # one pinch at a time: the index when it is within close_m of the thumb (the precision pinch), else the
    # thumb's nearest finger; when the human thumb touches two fingers (a grab), closing both pulled a
    # 3-finger hand's thumb between them, 28 mm from either (Dex3, Quest poses "grab" and "asl o")
    k = 0 if d[0] <= close_m else int(np.argmin(d))
    bk = b[k]
    b[:] = 1.0
    b[k] = bk
    vt *= b[:, None]
    w = np.full(len(I), float(base_weight))
    w[:nthumb] += (1.0 - b) * (pinch_weight - base_weight)
    return v, w
