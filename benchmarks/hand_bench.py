#!/usr/bin/env python3
"""Hand retargeting benchmark (issue 20): every shipped hand on the 55 + 55 recorded Quest poses.

Data: the 55 + 55 recorded Quest poses (static: every pose is a jump from the previous one, cycled
--passes times) and the Qualisys pillow grasp (a right hand, 60 s at 100 Hz, a continuous time
series; OpenXR joints synthesized from the markers, :mod:`robot_capture.hands.qualisys`).
Per hand and mode, over both data sets of its side: median and p99 time of one
``HandRetargeter.step`` call through Python (warm-started from the previous frame), fingertip position error
(p95 over poses and fingers, mm: |robot tip - scaled human tip|, wrist-relative, robot base
axes, the mode's scaling), pinch gap (for poses whose human thumb and index tips are closer
than 15 mm, the max robot thumb-index tip distance, mm), and joint-limit violations (commands
of any joint, mimic ones included, outside the URDF limits).

dex-retargeting (PyPI ``dex-retargeting``, its own teleop DexPilot config for the same hand:
Inspire and Allegro) runs in its own venv (``--dex-python``, default /work/venv-dex/bin/python)
as a subprocess given the same poses (21 MediaPipe-order keypoints in the robot base axes);
its time is measured inside that process around ``retarget``, its error with our FK and its own
scaling. When that venv is missing its columns are null and the reason is printed.

The last line is one JSON object: {"hands": {name: {mode, median_us, p99_us, fingertip_err_mm_p95,
pinch_gap_mm_max, limit_violations, dex_retargeting_median_us, dex_retargeting_fingertip_err_mm_p95}}}.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from _installed import require_installed  # noqa: E402

require_installed()

from robot_capture.hands import HandRetargeter, shipped_hands  # noqa: E402
from robot_capture.hands.model import palm_frame  # noqa: E402
from robot_capture.kinematics import RobotModel  # noqa: E402
from robot_capture.hands.qualisys import load_qualisys_tsv, qualisys_to_openxr  # noqa: E402
from robot_capture.paths import data_dir  # noqa: E402
from robot_capture.retarget.hand_tracking import load_webxr_hand_poses, webxr_sample_path, webxr_to_openxr  # noqa: E402

#: OpenXR joint index of each of the 21 MediaPipe / MANO keypoints dex-retargeting expects
MEDIAPIPE_FROM_OPENXR = [1, 2, 3, 4, 5, 7, 8, 9, 10, 12, 13, 14, 15, 17, 18, 19, 20, 22, 23, 24, 25]
DEX_CONFIG = {"inspire_left": "inspire_hand_left_dexpilot.yml", "inspire_right": "inspire_hand_right_dexpilot.yml",
              "allegro_left": "allegro_hand_left_dexpilot.yml", "allegro_right": "allegro_hand_right_dexpilot.yml"}

DEX_HELPER = r'''
import json, sys, time
import numpy as np
from pathlib import Path
import dex_retargeting
from dex_retargeting.retargeting_config import RetargetingConfig
a = json.load(sys.stdin)
RetargetingConfig.set_default_urdf_dir(a["urdf_dir"])
cfg = Path(dex_retargeting.__file__).parent / "configs" / "teleop" / a["config"]
ret = RetargetingConfig.load_from_file(cfg).build()
ret.filter = None  # its low-pass (alpha 0.2) would lag every static pose; ours runs unfiltered too
idx = ret.optimizer.target_link_human_indices
kps = np.asarray(a["keypoints"])
qs, ts = [], []
for p in range(a["passes"]):
    for k in kps:
        ref = k[idx[1]] - k[idx[0]]
        t0 = time.perf_counter()
        q = ret.retarget(ref)
        ts.append((time.perf_counter() - t0) * 1e6)
        if p == a["passes"] - 1:
            qs.append(q.tolist())
print(json.dumps({"joint_names": list(ret.joint_names), "q": qs, "us": ts,
                  "scaling": float(ret.optimizer.scaling) if hasattr(ret.optimizer, "scaling") else None}))
'''


def run_dex(py, name, keypoints21, passes):
    """(result dict, reason) from the dex-retargeting helper; (None, why) when it cannot run."""
    if not Path(py).exists():
        return None, f"{py} not found (python3 -m venv /work/venv-dex && /work/venv-dex/bin/pip install dex-retargeting)"
    arg = json.dumps({"urdf_dir": str(data_dir() / "hands"), "config": DEX_CONFIG[name],
                      "keypoints": np.asarray(keypoints21).tolist(), "passes": passes})
    p = subprocess.run([py, "-c", DEX_HELPER], input=arg, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        lines = p.stderr.strip().splitlines() or ["failed"]
        return None, next((ln for ln in reversed(lines) if "Error" in ln), lines[-1])
    return json.loads(p.stdout.strip().splitlines()[-1]), ""


def violations(hand, q) -> int:
    """Joints (drivers and mimic) outside their URDF limits at ``q``."""
    n = 0
    for j, v in hand.command(q).items():
        uj = hand.model.urdf.joints[j]
        n += not (uj.lower - 1e-9 <= v <= uj.upper + 1e-9)
    return n


def dex_keypoints(r, kps):
    """The poses as 21 MediaPipe-order keypoints, wrist-relative, in the URDF root's axes (dex-retargeting's
    input: it computes every link in the URDF root frame; e.g. the Inspire's root ``base`` is turned
    (-pi/2, 0, pi) from our ``hand_base_link``)."""
    h = r.hand
    full = RobotModel(h.model.urdf)
    R_root_base = full.fk(full.neutral(), h.spec.base_link)[:3, :3]
    out = []
    for k in kps:
        M = R_root_base @ h.R_palm @ palm_frame(k[1], k[r._knuckle_kp]).T
        out.append(((k - k[1]) @ M.T)[MEDIAPIPE_FROM_OPENXR])
    return out


def dex_errors(h, res, k21):
    """(frames, nf) fingertip errors (m) of dex-retargeting's joint angles, with our FK and its scaling."""
    s = res["scaling"] or 1.0
    full = RobotModel(h.model.urdf)
    R_base_root = full.fk(full.neutral(), h.spec.base_link)[:3, :3].T
    col = {n: i for i, n in enumerate(res["joint_names"])}
    pick = [["thumb", "index", "middle", "ring", "little"].index(f) for f in h.fingers]
    errs = []
    for qd, k in zip(res["q"], k21):
        q = np.array([qd[col[n]] for n in h.joint_names])
        tips_h = (k[[4, 8, 12, 16, 20]][pick] * s) @ R_base_root.T
        errs.append(np.linalg.norm(h.tip_positions(q) - h.wrist_position - tips_h, axis=1))
    return np.array(errs)


def bench_hand(name, datasets, dex_py):
    """One hand over ``datasets`` [(label, side, keypoints (N,26,3), passes)] of its side: (row, {label: stats}, note)."""
    r = HandRetargeter(name)
    h = r.hand
    times, errs, gaps, viol, per, dtimes, derrs, note = [], [], [], 0, {}, [], [], ""
    for label, side, kps, passes in datasets:
        if side != h.side:
            continue
        r.reset()
        for k in kps[:60]:  # warm-up
            r.step(k)
        r.reset()
        t_set, e_set, held = [], [], 0
        for p in range(passes):
            for k in kps:
                t0 = time.perf_counter()
                res = r.step(k)
                t_set.append((time.perf_counter() - t0) * 1e6)
                if p == passes - 1:
                    held += res.held
                    if res.held:
                        continue
                    e_set.append(res.fingertip_error)
                    viol += violations(h, res.q)
                    if np.linalg.norm(k[5] - k[10]) < 0.015:
                        t = h.tip_positions(res.q)
                        gaps.append(np.linalg.norm(t[0] - t[1]))
        times += t_set
        errs += e_set
        per[label] = {"median_us": float(np.median(t_set)), "err_p95_mm": float(np.percentile(e_set, 95)) * 1e3,
                      "held": held, "frames": len(kps)}
        if name in DEX_CONFIG:
            good = [k for k in kps if np.isfinite(k).all()]
            k21 = dex_keypoints(r, good)
            res, why = run_dex(dex_py, name, k21, passes)
            if res is None:
                note = why
            else:
                de = dex_errors(h, res, k21)
                dtimes += res["us"]
                derrs.append(de)
                per[label]["dex_median_us"] = float(np.median(res["us"]))
                per[label]["dex_err_p95_mm"] = float(np.percentile(de, 95)) * 1e3
    row = {"mode": h.spec.mode, "median_us": round(float(np.median(times)), 2),
           "p99_us": round(float(np.percentile(times, 99)), 2),
           "fingertip_err_mm_p95": round(float(np.percentile(np.concatenate(errs), 95)) * 1e3, 2),
           "pinch_gap_mm_max": round(float(max(gaps)) * 1e3, 2) if gaps else None,
           "limit_violations": int(viol),
           "dex_retargeting_median_us": round(float(np.median(dtimes)), 2) if dtimes else None,
           "dex_retargeting_fingertip_err_mm_p95":
               round(float(np.percentile(np.concatenate(derrs), 95)) * 1e3, 2) if derrs else None}
    return row, per, note


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hands", nargs="*", default=None, help="hand mapping names (default: every shipped hand)")
    ap.add_argument("--passes", type=int, default=5, help="timed passes over the 55 poses per side")
    ap.add_argument("--dex-python", default="/work/venv-dex/bin/python", help="python of the dex-retargeting venv")
    a = ap.parse_args(argv)
    datasets = [(f"quest_{s}", s, [webxr_to_openxr(p.positions, np.eye(4), s)[:, :3, 3]
                                   for p in load_webxr_hand_poses(webxr_sample_path(s))], a.passes)
                for s in ("left", "right")]
    _, markers = load_qualisys_tsv(data_dir() / "hand_tracking" / "qualisys_hand_markers_pillow_grasp_recording.tsv")
    datasets.append(("qualisys_grasp", "right", list(qualisys_to_openxr(markers)), 1))  # 60 s at 100 Hz, a right hand
    out, notes, pers = {}, [], {}
    f = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    print(f"{'hand':18s} {'mode':9s} {'med us':>8s} {'p99 us':>8s} {'err p95 mm':>10s} {'pinch mm':>9s} {'viol':>4s} "
          f"{'dex med us':>10s} {'dex err mm':>10s} {'x faster':>8s}")
    for name in a.hands or shipped_hands():
        row, per, note = bench_hand(name, datasets, a.dex_python)
        out[name], pers[name] = row, per
        if note:
            notes.append(f"{name}: dex-retargeting not run: {note}")
        d = row["dex_retargeting_median_us"]
        ratio = f"{d / row['median_us']:.1f}" if d else "-"
        print(f"{name:18s} {row['mode']:9s} {row['median_us']:8.1f} {row['p99_us']:8.1f} "
              f"{row['fingertip_err_mm_p95']:10.1f} {f(row['pinch_gap_mm_max']):>9s} {row['limit_violations']:4d} "
              f"{f(d):>10s} {f(row['dex_retargeting_fingertip_err_mm_p95']):>10s} {ratio:>8s}", flush=True)
    print("per data set (median us / fingertip err p95 mm / held frames; dex-retargeting's median us / err p95 mm):")
    for name, per in pers.items():
        for label, v in per.items():
            print(f"  {name:18s} {label:15s} {v['median_us']:8.1f} us {v['err_p95_mm']:6.1f} mm held {v['held']:4d}/"
                  f"{v['frames']:<5d} dex {f(v.get('dex_median_us'))} us {f(v.get('dex_err_p95_mm'))} mm")
    for n in notes:
        print("note:", n)
    print(json.dumps({"hands": out}))


if __name__ == "__main__":
    main()
