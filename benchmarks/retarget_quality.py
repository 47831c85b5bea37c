#!/usr/bin/env python3
"""Retargeting quality on every shipped clip: does the command keep up with the operator?

For each robot (default g1, h1, kuavo), each BVH clip in ``shared/data/motion`` and each
limit set (``urdf``: the offline default; ``teleop``: the live safety limits), the clip is
retargeted with the installed package's offline pipeline (:func:`retarget_clip`, the same
Retargeter the live node steps) and the table prints:

* ``IK p95/max``: wrist position error of the IK solution (mm; robots without a wrist task,
  e.g. H1, report their position-tracked elbow tasks);
* ``cmd p95/max``: the same for the command (FK of q after filter and limiter; ``urdf`` runs
  the offline default, no filter; ``teleop`` the live node's pipeline with the mapping's filter), and
  ``cmd/IK`` the ratio of the p95s (target offline: <= 1.5 at the defaults);
* ``lag``: command lag (ms), the peak of the cross-correlation of the commanded and the
  target wrist positions (+-500 ms, parabolic sub-frame peak), and ``est`` the median of the
  retargeter's own online lag estimate (what the live node publishes);
* ``jerk``: RMS of the command's third finite difference over joints and frames (rad/s^3);
* ``speed``: peak |dq/dt| of the command over its velocity limit (the limit set's), max over
  joints (<= 1.00 means within limits).

    python benchmarks/retarget_quality.py                      # all robots, clips, both limit sets
    python benchmarks/retarget_quality.py --robots g1 --clips cmu_05_02_dance_expressive_arms
    python benchmarks/retarget_quality.py --filter none        # override the mapping's filter
"""
from __future__ import annotations

import argparse
import copy
import sys
import time

import numpy as np

from _installed import require_installed  # noqa: E402

require_installed()

from robot_capture.paths import data_dir  # noqa: E402
from robot_capture.retarget.bvh import load_bvh  # noqa: E402
from robot_capture.retarget.calibration import Calibration  # noqa: E402
from robot_capture.retarget.mapping import RobotMapping  # noqa: E402
from robot_capture.retarget.offline import retarget_clip, tracked_tasks  # noqa: E402
from robot_capture.retarget.retargeter import Retargeter  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--robots", nargs="+", default=["g1", "h1", "kuavo"], help="robot names or YAML paths")
    p.add_argument("--clips", nargs="*", default=None, help="clip names (default: every .bvh in shared/data/motion)")
    p.add_argument("--limits", nargs="+", default=["urdf", "teleop"], choices=Retargeter.LIMITS,
                   help="limit sets to run (default: urdf teleop)")
    p.add_argument("--filter", default=None, choices=("one_euro", "critically_damped", "none"),
                   help="override the filter type (default: the pipeline's per limit set: none offline with urdf "
                        "limits, the mapping's live filter with teleop limits)")
    p.add_argument("--max-lag-ms", type=float, default=500.0, help="cross-correlation search window (ms)")
    return p.parse_args(argv)


def xcorr_lag(ref: np.ndarray, sig: np.ndarray, dt: float, max_lag: float) -> float:
    """Lag (s) of ``sig`` behind ``ref`` (both (N, D) positions): the peak of their cross-correlation
    (means removed, normalized over each overlap) over -max_lag..max_lag, refined by a parabola."""
    ok = np.isfinite(ref).all(1) & np.isfinite(sig).all(1)
    a, b = ref[ok] - ref[ok].mean(0), sig[ok] - sig[ok].mean(0)
    kmax = min(int(max_lag / dt), len(a) // 2)
    if kmax < 1:
        return float("nan")
    ks = np.arange(-kmax, kmax + 1)
    def corr(x, y):  # normalized over the overlap, so shorter overlaps are not penalized
        return (x * y).sum() / max(np.sqrt((x * x).sum() * (y * y).sum()), 1e-300)

    c = np.array([corr(a[: len(a) - k], b[k:]) if k >= 0 else corr(a[-k:], b[: len(b) + k]) for k in ks])
    i = int(np.argmax(c))
    off = 0.0
    if 0 < i < len(c) - 1:
        den = c[i - 1] - 2 * c[i] + c[i + 1]
        off = 0.5 * (c[i - 1] - c[i + 1]) / den if den != 0 else 0.0
    return (ks[i] + off) * dt


def quality(res, retargeter) -> dict:
    """Figures of one RetargetResult (see module docstring)."""
    t = res.t
    dt = float(np.median(np.diff(t)))
    model = retargeter.model
    ks = tracked_tasks(retargeter)
    frames = [retargeter.tasks[k].ik_frame for k in ks]
    P = model.fk_frames(res.q, frames)[:, :, :3, 3]
    tgt = np.stack([res.targets[:, retargeter.target_frames.index(f), :3, 3] for f in frames], axis=1)
    lag = xcorr_lag(tgt.reshape(len(t), -1), P.reshape(len(t), -1), dt, ARGS.max_lag_ms / 1e3)
    qd = np.diff(res.q, axis=0) / dt
    jerk = np.diff(res.q, n=3, axis=0) / dt ** 3
    vlim = retargeter.vmax
    return {
        "ik_p95": float(np.nanpercentile(res.wrist_ik_errors, 95)) * 1e3,
        "ik_max": float(np.nanmax(res.wrist_ik_errors)) * 1e3,
        "cmd_p95": float(np.nanpercentile(res.wrist_errors, 95)) * 1e3,
        "cmd_max": float(np.nanmax(res.wrist_errors)) * 1e3,
        "lag_ms": lag * 1e3, "lag_est_ms": float(np.nanmedian(res.lag_s)) * 1e3,
        "jerk": float(np.sqrt(np.mean(jerk ** 2))),
        "speed": float(np.max(np.abs(qd).max(0) / vlim)),
        "peak_qd": float(np.abs(qd).max()),
    }


def main(argv=None) -> int:
    global ARGS
    ARGS = args = parse_args(argv)
    motion = data_dir() / "motion"
    clips = [motion / (c if c.endswith(".bvh") else f"{c}.bvh") for c in args.clips] if args.clips else \
        sorted(motion.glob("*.bvh"))
    rows = []
    t0 = time.perf_counter()
    loaded = [(c, load_bvh(c)) for c in clips]
    cals = {c: Calibration.from_poses(b.human_poses()) for c, b in loaded}
    for robot in args.robots:
        mapping = RobotMapping.load(robot)
        for limits in args.limits:
            m = copy.copy(mapping)
            if args.filter:
                m.filter = {"type": args.filter}
            elif limits == "urdf":  # the offline default (retarget_clip, retarget_bag): no filter
                m.filter = {"type": "none"}
            for path, clip in loaded:
                r = Retargeter(m, cals[path], limits=limits)
                res = retarget_clip(clip, robot, retargeter=r)
                rows.append((mapping.robot, path.stem, limits, quality(res, r)))
                print(f"  {mapping.robot} {limits} {path.stem}: {len(res)} frames", file=sys.stderr, flush=True)
    hdr = (f"{'robot':6s} {'limits':6s} {'clip':40s} {'IK p95':>7s} {'IK max':>7s} {'cmd p95':>7s} {'cmd max':>7s} "
           f"{'cmd/IK':>6s} {'lag ms':>6s} {'est ms':>6s} {'jerk':>8s} {'speed':>6s}")
    print()
    print(hdr)
    print("-" * len(hdr))
    worst = {}
    for robot, clip, limits, q in rows:
        ratio = q["cmd_p95"] / max(q["ik_p95"], 1e-9)
        worst[(robot, limits)] = max(worst.get((robot, limits), 0.0), ratio)
        print(f"{robot:6s} {limits:6s} {clip[:40]:40s} {q['ik_p95']:7.1f} {q['ik_max']:7.1f} {q['cmd_p95']:7.1f} "
              f"{q['cmd_max']:7.1f} {ratio:6.2f} {q['lag_ms']:6.0f} {q['lag_est_ms']:6.0f} {q['jerk']:8.0f} "
              f"{q['speed']:6.2f}")
    print("errors in mm (wrist tasks; H1: elbows); speed = peak |dq/dt| / velocity limit of the limit set")
    for (robot, limits), w in sorted(worst.items()):
        verdict = "ok" if w <= 1.5 else "OVER"
        print(f"target cmd p95 <= 1.5 x IK p95 ({robot}, {limits}): worst {w:.2f} {verdict if limits == 'urdf' else '(live limits: reported only)'}")
    print(f"{len(rows)} runs in {time.perf_counter() - t0:.1f} s")
    return 0


ARGS = None

if __name__ == "__main__":
    sys.exit(main())
