"""``robot-capture robot check <hand>``: check a hand mapping before retargeting with it.

Prints the hand's joints (drivers with their solver limits, mimic joints with their drivers),
the fingers (tip link <- human keypoint, weight, scaling) and the mode, then solves three
reference poses from the recorded Quest hands (``shared/data/hand_tracking``: ``flat`` = open,
``asl s`` = fist, ``pinch``) and renders a PNG: the robot hand in each pose above the human hand
(scaled, in the robot's base axes), projected on the robot palm plane (x thumb side, z away
from the fingers, :func:`robot_capture.hands.model.palm_frame`), fingertips marked.
"""
from __future__ import annotations

import difflib
import sys
from pathlib import Path

import numpy as np

#: the reference poses: (title, Quest pose name)
REFERENCE_POSES = (("open", "flat"), ("fist", "asl s"), ("pinch", "pinch"))
_HUMAN_CHAINS = ((1, 2, 3, 4, 5),) + tuple((1,) + tuple(range(s, s + 5)) for s in (6, 11, 16, 21))


def is_hand_mapping(name_or_path) -> bool:
    """True for a shipped/user hand name (or a near miss of one), or a YAML file with a top-level ``fingers:`` key."""
    from robot_capture.config_schema import load_yaml

    from .model import shipped_hands

    p = Path(str(name_or_path)).expanduser()
    if p.suffix in (".yaml", ".yml") and p.is_file():
        try:
            d = load_yaml(p)
        except Exception:  # noqa: BLE001 - a broken file is the robot check's to report
            return False
        return isinstance(d, dict) and "fingers" in d
    hands = shipped_hands()
    # a near miss of a hand name (a typo) is a hand too, so that the error suggests the hand
    return str(name_or_path) in hands or bool(difflib.get_close_matches(str(name_or_path), hands, n=1, cutoff=0.85))


def describe(r) -> str:
    """Text report of a :class:`~.solver.HandRetargeter`'s hand."""
    h = r.hand
    m = h.model
    out = [f"hand {h.name} ({h.side}): {h.source}", f"  urdf base link {m.base_link}, wrist link {h.wrist_link}",
           f"  mode {h.spec.mode}, scaling {h.spec.scaling:g}, {m.nq} driver joints, {len(m.mimic)} mimic joints",
           "\ndriver joints (rad; the solver's limits: URDF, narrowed for the mimic joints and limits:)"]
    for i, n in enumerate(m.joint_names):
        out.append(f"  {n:34s} [{m.lower[i]:+.3f}, {m.upper[i]:+.3f}]")
    for j, (drv, mult, off) in m.mimic.items():
        out.append(f"  mimic {j} = {mult:g} * {drv} {off:+g}")
    out.append("\nfingers (robot tip link <- human keypoint)")
    tips = h.tip_positions(m.neutral()) - h.wrist_position
    for f, t in zip(h.fingers, tips):
        fs = h.spec.fingers[f]
        out.append(f"  {f:7s} {fs.link:26s} <- {fs.keypoint:11s} weight {fs.weight:g} scaling "
                   f"{fs.scaling or h.spec.scaling:g}   open-hand tip from the wrist {np.linalg.norm(t):.3f} m")
    return "\n".join(out)


def solve_reference_poses(r):
    """[(title, q, human tips+joints (26, 3) in the robot base axes, scaled)] for :data:`REFERENCE_POSES`."""
    from robot_capture.retarget.hand_tracking import load_webxr_hand_poses, webxr_sample_path, webxr_to_openxr

    from .model import palm_frame

    side = r.hand.side
    poses = {p.name: webxr_to_openxr(p.positions, np.eye(4), side)[:, :3, 3]
             for p in load_webxr_hand_poses(webxr_sample_path(side))}
    out = []
    for title, name in REFERENCE_POSES:
        k = poses[name]
        r.reset()
        q = r.solve(k)
        M = r.hand.R_palm @ palm_frame(k[1], k[r._knuckle_kp]).T
        human = (k - k[1]) @ M.T * r.hand.spec.scaling + r.hand.wrist_position
        out.append((title, q, human))
    return out


def render(r, solved, path) -> None:
    """PNG of :func:`solve_reference_poses`' result (module docstring). ImportError without matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, m = r.hand, r.hand.model
    R = h.R_palm
    proj = lambda p: (np.asarray(p) - h.wrist_position) @ R  # noqa: E731  palm-frame coordinates
    fig, axes = plt.subplots(2, len(solved), figsize=(4 * len(solved), 8))
    for c, (title, q, human) in enumerate(solved):
        P = proj(m.fk_all(q)[:, :3, 3])
        ax = axes[0, c]
        for i in range(1, m.nframes):
            a, b = P[int(m.link_parent[i])], P[i]
            ax.plot([a[0], b[0]], [a[2], b[2]], "-", color="0.35", lw=1.5)
        T = proj(h.tip_positions(q))
        ax.plot(T[:, 0], T[:, 2], "o", color="tab:red", ms=5)
        gap = np.linalg.norm(h.tip_positions(q)[0] - h.tip_positions(q)[1]) * 1e3
        ax.set_title(f"robot {title} (thumb-index {gap:.0f} mm)", fontsize=9)
        ax = axes[1, c]
        H = proj(human)
        for chain in _HUMAN_CHAINS:
            ax.plot(H[list(chain), 0], H[list(chain), 2], "-", color="tab:orange", lw=2)
        ax.plot(H[[5, 10, 15, 20, 25], 0], H[[5, 10, 15, 20, 25], 2], "o", color="tab:red", ms=5)
        ax.set_title(f"human {title} (scaled {h.spec.scaling:g})", fontsize=9)
        for row in (0, 1):
            axes[row, c].set_xlabel("palm x, thumb side (m)")
            axes[row, c].set_ylabel("palm z, away from the fingers (m)")
            axes[row, c].set_aspect("equal", adjustable="datalim")
            axes[row, c].grid(alpha=0.3)
    fig.suptitle(f"{h.name}: {h.source} (palm plane of the robot hand)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def check_hand(args) -> int:
    """The ``robot check`` verb for a hand mapping: 0 ok, 2 bad mapping, 3 no matplotlib."""
    from .model import HandConfigError
    from .solver import HandRetargeter

    try:
        r = HandRetargeter(args.robot)
    except (HandConfigError, FileNotFoundError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        return 2
    print(describe(r))
    solved = solve_reference_poses(r)
    print("\nreference poses (Quest recordings): " + ", ".join(
        f"{t} thumb-index {np.linalg.norm(np.subtract(*r.hand.tip_positions(q)[:2])) * 1e3:.0f} mm"
        for t, q, _ in solved))
    if not args.no_png:
        png = Path(args.png or f"{r.hand.name}_check.png")
        try:
            render(r, solved, png)
        except ImportError:
            print("error: the picture needs matplotlib: pip install matplotlib (or use --no-png)", file=sys.stderr)
            return 3
        print(f"picture: {png}")
    return 0
