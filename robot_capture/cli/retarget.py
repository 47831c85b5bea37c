"""``robot-capture retarget``: offline retargeting of a BVH clip, or of a recorded bag's human topics.

* ``robot-capture retarget CLIP.bvh --robot g1 --out traj.npz`` (or ``.csv``): time, robot joint
  names and q, human keypoints, IK targets and errors; ``--plot [out.png]`` draws human vs
  robot wrist paths (elbows for a robot without a wrist task, e.g. H1) and the error over time.
  Offline defaults: the URDF's velocity limits and no filter (``--limits teleop --filter
  mapping`` reproduces the live node's command).
* ``robot-capture retarget BAG --robot kuavo --out NEWBAG``: reads the bag's human topics
  (``/exo/joint_states`` or ``/vr/*``), retargets them onto another robot, and writes a new bag
  with those human topics copied plus ``/retarget/joint_command`` and ``/retarget/targets``
  (record once, retarget to many). See :mod:`robot_capture.offline.bag_retarget`.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HELP = "retarget a BVH clip or a bag's human topics onto a robot offline"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "retarget", help=HELP,
        description="Retarget human motion onto a humanoid offline, with the same pipeline as the live "
                    "retarget node (sources -> calibration/scaling -> IK -> filter -> velocity/acceleration "
                    "limits). INPUT is a BVH clip (a path, or a clip name in shared/data/motion) or a "
                    "rosbag2 bag directory with human topics (/exo/joint_states or /vr/*).",
        epilog="Examples:\n"
               "  robot-capture retarget cmu_02_05_punch_strike.bvh --robot g1 --out traj.npz --plot wrists.png\n"
               "  robot-capture retarget CLIP.bvh --robot kuavo --source exo --out traj.csv\n"
               "  robot-capture retarget recordings/BAG --robot kuavo --out recordings/BAG_kuavo\n"
               "Robots: a name looked up in $ROBOT_CAPTURE_ROBOTS (or ~/.config/robot_capture/robots), then in\n"
               "the shipped config/robots (g1, h1, kuavo); or a mapping YAML path.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="BVH clip (path or shipped clip name) or bag directory")
    p.add_argument("--robot", default="g1", help="robot mapping name or YAML path (default: g1)")
    p.add_argument("--out", required=True,
                   help="output: .npz or .csv for a clip; a new bag directory for a bag input")
    p.add_argument("--source", choices=("bvh", "exo", "vr"), default="bvh",
                   help="clip input only: retarget the clip directly (bvh), or through the exoskeleton "
                        "or VR conversion the mocap_replay node publishes (exo, vr) (default bvh)")
    p.add_argument("--calibration", default="",
                   help="operator calibration YAML (segment lengths, rotation offsets); default: measured "
                        "from the clip for --source bvh, arm-model defaults otherwise")
    p.add_argument("--plot", nargs="?", const="auto", default="", metavar="PNG",
                   help="clip input only: save human vs robot wrist paths (elbows if the robot has no wrist "
                        "task) and the error over time (matplotlib); without PNG: --out with .png "
                        "(default: no plot)")
    p.add_argument("--limits", choices=("urdf", "teleop"), default="urdf",
                   help="joint velocity/acceleration limits: the URDF's (urdf: the data is re-retargeted, not "
                        "sent to a motor) or the mapping's teleop safety limits the live node uses (default: urdf)")
    p.add_argument("--filter", choices=("none", "mapping"), default="none",
                   help="output filter: none, or the mapping's live filter (default: none)")
    p.add_argument("--bag-source", choices=("auto", "exo", "vr"), default="auto",
                   help="bag input only: which human topics to use (default: exo if present, else vr)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _progress(quiet: bool, label: str):
    if quiet:
        return None
    state = {"last": -1.0}

    def report(done, total):
        pct = 100.0 * done / max(total, 1)
        if pct - state["last"] >= 10 or done == total:
            state["last"] = pct
            print(f"\r{label}: {pct:5.1f}% ({done}/{total})", end="\n" if done == total else "",
                  file=sys.stderr, flush=True)

    return report


def _resolve_clip(name: str) -> Path:
    p = Path(name).expanduser()
    if p.exists():
        return p
    from robot_capture.paths import data_dir

    for cand in (data_dir() / "motion" / name, data_dir() / "motion" / f"{name}.bvh"):
        if cand.exists():
            return cand
    raise FileNotFoundError(f"{name}: no such file or shipped clip (see {data_dir() / 'motion'})")


def run(args) -> int:
    from robot_capture.retarget.calibration import Calibration

    calibration = Calibration.load(args.calibration) if args.calibration else None
    try:
        inp = _resolve_clip(args.input)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # create at most the last folder of an output path: a typo must not build a whole tree
    problem = _missing_parent(Path(args.out).parent if inp.is_dir() else Path(args.out).parent.parent, "--out")
    problem = problem or (_missing_parent(Path(args.plot).parent.parent, "--plot") if args.plot else "")
    if not problem:  # the robot and the folder: checked now, not after the retargeting
        from robot_capture.cli.flags import robot_flag_problem
        from robot_capture.cli.outputs import OutputPathError, check_output_dir

        problem = robot_flag_problem(args.robot)
        try:
            problem or check_output_dir(Path(args.out) if inp.is_dir() else Path(args.out).parent, "--out")
        except OutputPathError as exc:
            problem = str(exc)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if inp.is_dir():
        return _run_bag(args, inp, calibration)
    out = Path(args.out)
    if out.suffix not in (".npz", ".csv"):
        print(f"error: --out {out} must end in .npz or .csv for a clip input", file=sys.stderr)
        return 2
    from robot_capture.retarget.offline import retarget_clip

    t0 = time.perf_counter()
    try:
        res = retarget_clip(inp, robot=args.robot, source=args.source, calibration=calibration,
                            progress=_progress(args.quiet, f"retarget {inp.name} -> {args.robot}"),
                            limits=args.limits, filter=args.filter)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    out.parent.mkdir(exist_ok=True)
    res.save(out)
    s = res.summary()
    print(f"{inp.name}: {len(res)} frames -> {res.robot} ({args.source}, {args.limits} limits) in {dt:.2f} s; "
          f"wrote {out}")
    for k, v in s.items():
        if k.endswith("_m"):
            print(f"  {k}: {v * 100:.1f} cm")
    print(f"  max joint-limit violation: {max(0.0, s.get('max_limit_violation_rad', 0.0)):.2e} rad; "
          f"held frames: {s['held_frames']}")
    if args.plot:
        png = out.with_suffix(".png") if args.plot == "auto" else Path(args.plot)
        try:
            plot_result(res, png)
        except ImportError:
            print("error: --plot needs matplotlib: pip install matplotlib  (or robot_capture[plot])",
                  file=sys.stderr)
            return 3
        print(f"  plot: {png}")
    return 0


def plot_result(res, path) -> None:
    """Save a PNG: human (scaled target) vs robot paths of the tracked frames (the wrists, or a
    robot's position-tracked tasks when it has no wrist task, e.g. H1's elbows) in x-y and x-z of
    the robot base frame, and their error over time.

    Raises:
        ImportError: matplotlib is missing.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robot_capture.retarget.mapping import RobotMapping

    model = RobotMapping.load(res.mapping_path or res.robot).robot_model()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    colors = ["tab:blue", "tab:red", "tab:green", "tab:purple"]
    for j, frame in enumerate(res.wrist_frames):
        k = res.target_frames.index(frame)
        tgt = res.targets[:, k, :3, 3]
        rob = model.fk_frames(res.q, [frame])[:, 0, :3, 3]
        c = colors[j % len(colors)]
        for ax, (a, b, la) in zip(axes[:2], ((0, 1, "x-y (top)"), (0, 2, "x-z (side)"))):
            ax.plot(tgt[:, a], tgt[:, b], "--", color=c, lw=1, label=f"human (scaled) {frame}")
            ax.plot(rob[:, a], rob[:, b], "-", color=c, lw=1.5, label=f"robot {frame}")
            ax.set_title(f"tracked frame paths, {la}, robot base frame")
            ax.set_xlabel("xyz"[a] + " (m)")
            ax.set_ylabel("xyz"[b] + " (m)")
            ax.axis("equal")
        axes[2].plot(res.t, res.wrist_errors[:, j] * 100, color=c, label=f"{frame} command")
        axes[2].plot(res.t, res.wrist_ik_errors[:, j] * 100, ":", color=c, label=f"{frame} IK")
    axes[0].legend(fontsize=7)
    axes[2].set_title("position error (command solid, IK dotted)")
    axes[2].set_xlabel("t (s)")
    axes[2].set_ylabel("cm")
    axes[2].legend(fontsize=7)
    fig.suptitle(f"{Path(res.clip).name} -> {res.robot} ({res.source})")
    fig.tight_layout()
    Path(path).parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _missing_parent(folder: Path, flag: str) -> str:
    """'' when ``folder`` exists (or is the current directory), else the one-line error."""
    if str(folder) in ("", ".") or folder.is_dir():
        return ""
    return f"{flag}: folder {folder} does not exist (only the last folder of the path is created)"


def _run_bag(args, bag: Path, calibration) -> int:
    try:
        from robot_capture.offline.bag_retarget import retarget_bag
    except ImportError as exc:  # bag reader/writer missing in this checkout
        print(f"error: bag retargeting unavailable: {exc}", file=sys.stderr)
        return 2
    try:
        report = retarget_bag(bag, args.out, robot=args.robot, source=args.bag_source, calibration=calibration,
                              progress=_progress(args.quiet, f"retarget {bag.name} -> {args.robot}"),
                              limits=args.limits, filter=args.filter)
    except (ValueError, KeyError, FileExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{bag.name}: {report['inputs']} {report['source']} inputs -> {report['commands']} commands for "
          f"{args.robot}; wrote {args.out}")
    if report.get("dropped"):
        print(f"  dropped the source robot's topics ({report.get('source_robot') or 'unknown robot'}): "
              f"{', '.join(report['dropped'])}")
    return 0
