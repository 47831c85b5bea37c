"""Export speed: seconds of export per recorded second, for a 60 s, 3-camera episode.

    python benchmarks/export_bench.py [--seconds 60] [--cameras 3] [--width 320 --height 240]
                                      [--lerobot-python .venv-lerobot/bin/python]

1. Writes one episode bag as the floor records it (BagWriter, rclpy-serialized messages):
   /joint_states 500 Hz (29 joints), /retarget/joint_command + /retarget/targets 100 Hz,
   /exo/joint_states and /vr/head 60 Hz, N cameras rgb8 at 30 Hz (a moving picture).
2. Runs ``robot_capture.export.lerobot.export_episodes`` on it (AV1: libsvtav1, yuv420p,
   g=2, crf 30, preset 12) and prints wall seconds per recorded second, split into
   decode (bag reading and CDR/image parsing), align (grid and sampling) and encode
   (video encoding), the rest being parquet/meta writing.
3. Baseline in the same run: lerobot's own writer (``LeRobotDataset.create`` +
   ``add_frame`` per frame + ``save_episode``, same codec settings: its defaults) on the
   same frames, held in memory, run by a Python that has lerobot (``--lerobot-python``,
   default ``.venv-lerobot/bin/python`` when it exists, see ``make test-lerobot``), in
   its default mode (PNG frames, then encoding) and with ``streaming_encoding=True``.
   lerobot is handed ready frames, so the fair comparison is its time against our
   encode + write part; our total (with bag decoding and alignment) is printed too.

Uses the installed robot_capture (never the source tree). The lerobot part of this file
(``--lerobot-writer``) needs only numpy and lerobot.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FPS = 30
N_JOINTS = 29


def base_pictures(cams: int, w: int, h: int) -> list[np.ndarray]:
    """One smooth (h, 2w, 3) picture per camera; frame t is a w-wide window sliding over it."""
    y, x = np.mgrid[0:h, 0:2 * w].astype(np.float64)
    out = []
    for c in range(cams):
        img = np.empty((h, 2 * w, 3))
        img[..., 0] = 100 + 60 * np.sin(2 * np.pi * (x / w + 0.1 * c)) * np.cos(2 * np.pi * y / h)
        img[..., 1] = 120 + 50 * np.cos(2 * np.pi * (x + 2 * y) / (1.5 * w))
        img[..., 2] = 90 + 40 * np.sin(2 * np.pi * (y / h + c / 3))
        for k in range(6):   # a few soft blobs (objects)
            cx, cy = (k * 0.37 * 2 * w) % (2 * w), (k * 0.23 * h + 20) % h
            img += 70 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (8 + 3 * k) ** 2))[..., None]
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def frame(bases, cam: int, i: int, w: int) -> np.ndarray:
    s = int(i * 3) % w      # 90 px/s pan
    return np.ascontiguousarray(bases[cam][:, s:s + w])


def joints(t: float) -> np.ndarray:
    return np.sin(2 * np.pi * (0.2 + 0.03 * np.arange(N_JOINTS)) * t)


# ---- lerobot's writer (run by a Python with lerobot) ------------------------------------
def lerobot_writer(args) -> dict:
    import shutil

    import lerobot  # noqa: F401
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    n = int(args.seconds * FPS)
    bases = base_pictures(args.cameras, args.width, args.height)
    frames = [[frame(bases, c, i, args.width) for i in range(n)] for c in range(args.cameras)]
    feats = {"observation.state": {"dtype": "float32", "shape": (N_JOINTS,), "names": None},
             "action": {"dtype": "float32", "shape": (N_JOINTS,), "names": None},
             "observation.ik_targets": {"dtype": "float32", "shape": (14,), "names": None},
             "observation.teleop.exo": {"dtype": "float32", "shape": (14,), "names": None}}
    for c in range(args.cameras):
        feats[f"observation.images.cam{c}"] = {"dtype": "video", "shape": (args.height, args.width, 3),
                                              "names": ["height", "width", "channels"]}
    out = {}
    for mode in ("default", "streaming"):
        root = Path(tempfile.mkdtemp(prefix="lerobot_bench_")) / "ds"
        import resource

        def cpu_now():
            a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

        t0, c0 = time.perf_counter(), cpu_now()
        ds = LeRobotDataset.create("bench/lerobot", fps=FPS, features=feats, root=root, robot_type="g1",
                                   vcodec="libsvtav1", streaming_encoding=(mode == "streaming"))
        for i in range(n):
            q = joints(i / FPS).astype(np.float32)
            fr = {"observation.state": q, "action": q + 0.01, "observation.ik_targets": np.zeros(14, np.float32),
                  "observation.teleop.exo": np.zeros(14, np.float32), "task": "bench"}
            for c in range(args.cameras):
                fr[f"observation.images.cam{c}"] = frames[c][i]
            ds.add_frame(fr)
        t1 = time.perf_counter()
        ds.save_episode()
        ds.finalize()
        t2 = time.perf_counter()
        out[mode] = {"add_frame_s": t1 - t0, "save_episode_s": t2 - t1, "total_s": t2 - t0, "cpu_s": cpu_now() - c0}
        shutil.rmtree(root.parent, ignore_errors=True)
    return out


# ---- ours ---------------------------------------------------------------------------------
def write_bag(bag: Path, args) -> None:
    from geometry_msgs.msg import Pose, PoseArray, PoseStamped
    from rclpy.serialization import serialize_message as ser
    from sensor_msgs.msg import Image, JointState

    from robot_capture.bag.writer import BagWriter, WriterOptions

    t0 = 1_767_225_600_000_000_000
    names = [f"joint_{i}" for i in range(N_JOINTS)]
    w = BagWriter(bag, WriterOptions(compression="none"),
                  custom_data={"episode.task": "bench", "episode.operator": "bench", "episode.success": "true"})
    topics = {"/joint_states": "sensor_msgs/msg/JointState", "/retarget/joint_command": "sensor_msgs/msg/JointState",
              "/retarget/targets": "geometry_msgs/msg/PoseArray", "/exo/joint_states": "sensor_msgs/msg/JointState",
              "/vr/head": "geometry_msgs/msg/PoseStamped"}
    cams = [f"/camera/cam{c}/image_raw" for c in range(args.cameras)]
    for t in list(topics) + cams:
        w.add_topic(t, topics.get(t, "sensor_msgs/msg/Image"))
    bases = base_pictures(args.cameras, args.width, args.height)

    def stamp(m, ns):
        m.header.stamp.sec, m.header.stamp.nanosec = divmod(ns, 1_000_000_000)
        return m

    events = []
    for i in range(int(args.seconds * 500) + 1):
        events.append((t0 + i * 2_000_000, "js", i))
    for i in range(int(args.seconds * 100) + 1):
        events.append((t0 + i * 10_000_000, "cmd", i))
    for i in range(int(args.seconds * 60) + 1):
        events.append((t0 + round(i * 1e9 / 60), "exo", i))
    for i in range(int(args.seconds * FPS) + 1):
        events.append((t0 + round(i * 1e9 / FPS), "cam", i))
    events.sort()
    for ns, kind, i in events:
        if kind == "js":
            w.write("/joint_states", ser(stamp(JointState(name=names, position=list(joints(i / 500))), ns)), ns, ns)
        elif kind == "cmd":
            q = list(joints(i / 100) + 0.01)
            w.write("/retarget/joint_command", ser(stamp(JointState(name=names, position=q), ns)), ns, ns)
            w.write("/retarget/targets", ser(stamp(PoseArray(poses=[Pose(), Pose()]), ns)), ns, ns)
        elif kind == "exo":
            w.write("/exo/joint_states", ser(stamp(JointState(name=[f"exo_{k}" for k in range(14)],
                                                              position=[0.0] * 14), ns)), ns, ns)
            w.write("/vr/head", ser(stamp(PoseStamped(), ns)), ns, ns)
        else:
            for c, topic in enumerate(cams):
                img = frame(bases, c, i, args.width)
                m = stamp(Image(height=args.height, width=args.width, encoding="rgb8", step=3 * args.width), ns)
                m.data = img.tobytes()
                w.write(topic, ser(m), ns, ns)
    w.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--cameras", type=int, default=3)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--codec", default="libsvtav1")
    default_lr = Path(".venv-lerobot/bin/python")
    ap.add_argument("--lerobot-python", default=str(default_lr) if default_lr.exists() else "",
                    help="a Python with lerobot installed, for the baseline ('' = skip it)")
    ap.add_argument("--lerobot-writer", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", default=None, help="where the bag and dataset go (default: a temp dir)")
    args = ap.parse_args()
    if args.lerobot_writer:
        print(json.dumps(lerobot_writer(args)))
        return 0

    import robot_capture
    from robot_capture.export.lerobot import ExportOptions, export_episodes

    print(f"export_bench: {args.seconds:.0f} s episode, {args.cameras} cameras {args.width}x{args.height} rgb8 "
          f"@ {FPS} Hz, codec {args.codec}; {platform.node()} {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.1f}; robot_capture from {Path(robot_capture.__file__).parent}")
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="export_bench_"))
    bag = work / "bag"
    if not bag.exists():
        t = time.perf_counter()
        write_bag(bag, args)
        print(f"bag written: {sum(f.stat().st_size for f in bag.glob('*.mcap')) / 1e6:.0f} MB "
              f"({time.perf_counter() - t:.0f} s)")
    out = work / "dataset"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    t, cpu, main_cpu = time.perf_counter(), time.process_time(), time.thread_time()
    summary = export_episodes([bag], out, ExportOptions(codec=args.codec, run_qa=False), progress=False)
    wall = time.perf_counter() - t
    cpu, main_cpu = time.process_time() - cpu, time.thread_time() - main_cpu
    r = summary.results[0]
    if r.status != "exported":
        print(f"export failed: {r.status} {r.reason}")
        return 1
    rec = r.recorded_s
    tm = r.timings
    write = wall - tm["decode_s"] - tm["align_s"] - tm["encode_s"]
    print(f"ours: {wall:.1f} s for {rec:.1f} s recorded = {wall / rec:.3f} s per recorded s "
          f"(decode {tm['decode_s'] / rec:.3f}, align {tm['align_s'] / rec:.4f}, encode {tm['encode_s'] / rec:.3f}, "
          f"parquet+meta+remux {write / rec:.3f}); {r.frames} frames x {args.cameras} cameras")
    print(f"ours CPU: {cpu:.1f} s = {cpu / rec:.3f} CPU-s per recorded s (main thread {main_cpu:.1f} s, of which "
          f"decode {tm['decode_cpu_s']:.1f} s; encoder threads incl. FFmpeg's {cpu - main_cpu:.1f} s)")
    ours_write = tm["encode_s"] + write
    if args.lerobot_python:
        cmd = [args.lerobot_python, str(Path(__file__).resolve()), "--lerobot-writer", "--seconds", str(args.seconds),
               "--cameras", str(args.cameras), "--width", str(args.width), "--height", str(args.height)]
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if res.returncode != 0:
            print("lerobot baseline failed:\n" + res.stderr[-3000:])
            return 1
        lr = json.loads(res.stdout.strip().splitlines()[-1])
        for mode, d in lr.items():
            print(f"lerobot writer ({mode}): {d['total_s']:.1f} s = {d['total_s'] / rec:.3f} s per recorded s "
                  f"(add_frame {d['add_frame_s']:.1f} s, save_episode {d['save_episode_s']:.1f} s); "
                  f"ours encode+write {ours_write:.1f} s: {d['total_s'] / ours_write:.2f}x faster, "
                  f"ours total {wall:.1f} s: {d['total_s'] / wall:.2f}x; CPU {d['cpu_s']:.1f} s = "
                  f"{d['cpu_s'] / rec:.3f} CPU-s per recorded s, ours total {cpu:.1f} s: {d['cpu_s'] / cpu:.2f}x less")
    else:
        print("lerobot baseline: skipped (no --lerobot-python; `make test-lerobot` builds .venv-lerobot)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
