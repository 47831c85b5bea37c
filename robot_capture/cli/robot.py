"""``robot-capture robot check ROBOT``: check a robot mapping before retargeting with it.

Loads the mapping (a name from the user robot folder or the shipped ones, or a YAML path) and
its URDF, prints the IK chains (root -> task frame), every solved joint with its position,
URDF and teleop velocity and acceleration limits, the locked and coupled joints, and the task
frames with their position at q = 0 and at the calibration pose, flags common mistakes (a
task frame that sits on its joint axis, a limb shorter than 5 cm), and renders a PNG: the
robot at q = 0 and at the calibration pose beside the human skeleton in that pose, front
and side views, task frames marked. Together with ``retarget --plot`` this is how a new
robot is checked (README "Adding a robot").
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "check a robot mapping: chains, joints, limits, task frames, and a PNG at q=0 and the calibration pose"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "robot", help=HELP, description=HELP + ".",
        epilog="Examples:\n"
               "  robot-capture robot check g1\n"
               "  robot-capture robot check ./myrobot.yaml --png myrobot_check.png\n"
               "  robot-capture robot check inspire_right       # a hand: open, fist and pinch beside the human hand\n"
               "Robots: a name looked up in $ROBOT_CAPTURE_ROBOTS (or ~/.config/robot_capture/robots), then in\n"
               "the shipped config/robots; or a mapping YAML path. Hands: a name in config/hands\n"
               "($ROBOT_CAPTURE_HANDS first) or a hand YAML (one with fingers:).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="<action>")
    c = actions.add_parser("check", help="load a mapping, list what the IK will use, render a PNG",
                           description="Load a robot mapping and its URDF, list chains, joints, limits and task "
                                       "frames, flag likely mistakes, and render the robot at q=0 and at the "
                                       "calibration pose beside a human skeleton.")
    c.add_argument("robot", help="robot mapping name or YAML path")
    c.add_argument("--png", default="", metavar="PATH",
                   help="where to write the picture (default: <robot>_check.png in the current directory)")
    c.add_argument("--no-png", action="store_true", help="print only (no matplotlib needed)")
    return p


def run(args) -> int:
    if getattr(args, "action", None) != "check":
        print("usage: robot-capture robot check ROBOT [--png PATH]", file=sys.stderr)
        return 2
    from robot_capture.hands.check import check_hand, is_hand_mapping

    if is_hand_mapping(args.robot):  # a hand mapping (config/hands/, issue 20): its own report and picture
        return check_hand(args)
    from robot_capture.retarget.mapping import RobotMapping
    from robot_capture.retarget.retargeter import Retargeter

    try:
        mapping = RobotMapping.load(args.robot)
        r = Retargeter(mapping)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        return 2
    report, warnings = describe(mapping, r)
    print(report)
    for w in warnings:
        print(f"warning: {w}")
    if not args.no_png:
        png = Path(args.png or f"{mapping.robot}_check.png")
        try:
            render(mapping, r, png)
        except ImportError:
            print("error: the picture needs matplotlib: pip install matplotlib (or use --no-png)", file=sys.stderr)
            return 3
        print(f"picture: {png}")
    return 0


def _fmt(x: float) -> str:
    return "inf" if x == float("inf") else ("-inf" if x == float("-inf") else f"{x:.3f}")


def describe(mapping, r) -> tuple[str, list[str]]:
    """(text report, warnings) for a mapping and its Retargeter ``r``."""
    import numpy as np

    model = r.model
    out = [f"robot {mapping.robot}: {mapping.source}", f"  urdf {mapping.urdf}", f"  base link {model.base_link}",
           f"  {model.nq} joints solved by the IK, {len(model.locked)} locked, {len(r.coupled_names)} coupled"]
    out.append("\nchains (root -> task frame: joints)")
    for t in mapping.tasks:
        fi = model.frame_index(t.ik_frame)
        root = model.frame_index(t.root) if t.root else 0
        chain, k = [], fi
        while k > 0 and k != root:
            if model.link_qidx[k] >= 0:
                chain.append(model.link_joint[k])
            k = int(model.link_parent[k])
        out.append(f"  {t.name}: {t.root or model.base_link} -> {t.ik_frame}: {', '.join(reversed(chain)) or '(none)'}")
    out.append("\njoints (rad; rad/s; rad/s^2)")
    out.append(f"  {'joint':32s} {'lower':>7s} {'upper':>7s} {'v urdf':>7s} {'v teleop':>8s} {'a teleop':>8s}")
    for i, n in enumerate(model.joint_names):
        out.append(f"  {n:32s} {_fmt(model.lower[i]):>7s} {_fmt(model.upper[i]):>7s} "
                   f"{_fmt(model.velocity_limit[i]):>7s} {_fmt(r.vmax[i]):>8s} {_fmt(r.amax[i]):>8s}")
    if model.locked:
        out.append("locked: " + ", ".join(f"{k}={v:g}" for k, v in model.locked.items()))
    for m, row in zip(r.coupled_names, r.coupling_A):
        terms = " + ".join(f"{row[j]:g}*{model.joint_names[j]}" for j in np.nonzero(row)[0])
        out.append(f"coupled: {m} = {terms} + {r.coupling_b[r.coupled_names.index(m)]:g}")
    q0 = np.zeros(model.nq)
    qc = mapping.calibration_q(model)
    P0, Pc = model.fk_all(np.clip(q0, model.lower, model.upper)), model.fk_all(qc)
    out.append("\ntask frames (position in the root frame, m: at q=0 | at the calibration pose)")
    warnings = []
    for k, t in enumerate(mapping.tasks):
        fi = model.frame_index(t.ik_frame)
        ri = r._root_index[k]
        pos = []
        for P in (P0, Pc):
            T = P[fi] if ri < 0 else np.linalg.inv(P[ri]) @ P[fi]
            pos.append(" ".join(f"{v:+.3f}" for v in T[:3, 3]))
        kind = "wrist" if t.wrist else "task"
        out.append(f"  {t.name:12s} {kind:5s} {t.ik_frame:28s} <- {t.keypoint:12s} cost p {t.position_cost:g} "
                   f"o {t.orientation_cost:g}   {pos[0]} | {pos[1]}")
        parent = int(model.link_parent[fi])
        if t.position_cost > 0 and parent >= 0 and t.point is None and \
                np.linalg.norm(P0[fi, :3, 3] - P0[parent, :3, 3]) < 1e-3 and model.link_qidx[fi] >= 0:
            warnings.append(f"task {t.name!r}: frame {t.frame} sits on its own joint axis origin; if the hand is "
                            "further along the link, give the task a point: [x, y, z] (link frame, m)")
    for side, (up, fo) in r._robot_lengths.items():
        out.append(f"limb {side}: upper arm {up:.3f} m, forearm {fo:.3f} m (human default "
                   f"{r.human_lengths['upper_arm']:.3f} / {r.human_lengths['forearm']:.3f})")
        if min(up, fo) < 0.05 and any(t.scale and t.scale.startswith(side) and not t.scale.endswith("upper")
                                      for t in mapping.tasks):
            warnings.append(f"limb {side}: a segment is shorter than 5 cm ({up:.3f}, {fo:.3f} m): check the "
                            "limbs shoulder/elbow/wrist frames")
    if not any(t.wrist for t in mapping.tasks):
        warnings.append("no task has wrist: true: error reports and retarget --plot use the position-tracked "
                        "tasks (" + ", ".join(t.name for t in mapping.tasks if t.position_cost > 0) + ")")
    return "\n".join(out), warnings


def _bones(model, P):
    return [(P[int(model.link_parent[i]), :3, 3], P[i, :3, 3]) for i in range(1, model.nframes)]


_HUMAN_BONES = [("pelvis", "torso"), ("torso", "head"), ("torso", "left_shoulder"), ("torso", "right_shoulder"),
                ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
                ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist")]


def render(mapping, r, path) -> None:
    """PNG: front (y-z) and side (x-z) views of the robot at q=0, the robot at the calibration pose
    and the human arm model in the calibration pose; task frames marked. ImportError without matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from robot_capture.retarget.retargeter import _human_calibration_keypoints

    model = r.model
    P0 = model.fk_all(np.clip(np.zeros(model.nq), model.lower, model.upper))
    Pc = model.fk_all(mapping.calibration_q(model))
    kp = _human_calibration_keypoints(mapping)
    fig, axes = plt.subplots(2, 3, figsize=(13, 8.5))
    titles = ("robot at q = 0", "robot at the calibration pose", "human in the calibration pose")
    for col, (title, P) in enumerate(zip(titles, (P0, Pc, None))):
        for row, (a, b, view) in enumerate(((1, 2, "front (y-z)"), (0, 2, "side (x-z)"))):
            ax = axes[row, col]
            if P is not None:
                for p, c in _bones(model, P):
                    ax.plot([p[a], c[a]], [p[b], c[b]], "-", color="0.4", lw=1.2)
                for t in mapping.tasks:
                    x = P[model.frame_index(t.ik_frame), :3, 3]
                    ax.plot(x[a], x[b], "o" if t.wrist else "s", ms=6, label=t.name if row == 0 else None)
            else:
                for u, v in _HUMAN_BONES:
                    if u in kp and v in kp:
                        p, c = kp[u][:3, 3], kp[v][:3, 3]
                        ax.plot([p[a], c[a]], [p[b], c[b]], "-", color="tab:orange", lw=2)
                for t in mapping.tasks:
                    if t.keypoint in kp:
                        x = kp[t.keypoint][:3, 3]
                        ax.plot(x[a], x[b], "o" if t.wrist else "s", ms=6)
            ax.set_title(f"{title}, {view}", fontsize=9)
            ax.set_xlabel("xyz"[a] + " (m)")
            ax.set_ylabel("xyz"[b] + " (m)")
            ax.set_aspect("equal", adjustable="datalim")
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{mapping.robot}: {mapping.source} (robot base frame; human body frame, x forward, z up)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
