"""QA seconds per recorded second, on a synthesized 60 s episode with 3 cameras (640x480 rgb8).

The episode is written with the project's BagWriter (no compression, as the recorder's
default): 3 x /camera/<c>/image_raw (sensor_msgs/Image, 921,600-byte frames) + camera_info
at 30 Hz, /joint_states (29 joints) at 500 Hz, /retarget/joint_command (17 joints) and
/retarget/targets at 100 Hz, /exo/joint_states and 3 VR poses at 60 Hz, /diagnostics at
1 Hz (about 5.3 GB). Then ``robot_capture.qa.run.qa_episode`` runs on it; its CPU time
(one thread, ``time.process_time``) divided by the episode length is the figure.
Target: <= 0.05 s per recorded second on one core (reads indexes and stamps, decodes only
what a check needs). Baseline in the same run: reading every message of the bag once
(``BagReader.messages()``, what a QA that iterates the bag must at least do).

    python benchmarks/qa_bench.py [--seconds 60] [--cameras 3] [--keep DIR]

Uses the installed package (``pip install .``), never the source tree.
"""
from __future__ import annotations

import argparse
import math
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from robot_capture.bag.writer import BagWriter, WriterOptions

T0 = 1_800_000_000_000_000_000


def _pad(b: bytearray, n: int) -> None:
    b.extend(b"\x00" * ((-(len(b) - 4)) % n))


def _str(b: bytearray, s: str) -> None:
    _pad(b, 4)
    e = s.encode() + b"\x00"
    b.extend(struct.pack("<I", len(e)) + e)


def _header(t: int, frame: str) -> bytearray:
    b = bytearray(b"\x00\x01\x00\x00" + struct.pack("<iI", t // 10**9, t % 10**9))
    _str(b, frame)
    return b


def joint_state(t: int, names: list[str], q: np.ndarray) -> bytes:
    b = _header(t, "")
    _pad(b, 4)
    b.extend(struct.pack("<I", len(names)))
    for n in names:
        _str(b, n)
    for arr in (q, np.zeros(0), np.zeros(0)):
        _pad(b, 4)
        b.extend(struct.pack("<I", len(arr)))
        if len(arr):
            _pad(b, 8)
            b.extend(np.asarray(arr, "<f8").tobytes())
    return bytes(b)


def image(t: int, frame: str, w: int, h: int, pixels: bytes) -> bytes:
    b = _header(t, frame)
    _pad(b, 4)
    b.extend(struct.pack("<II", h, w))
    _str(b, "rgb8")
    b.extend(b"\x00")
    _pad(b, 4)
    b.extend(struct.pack("<II", w * 3, len(pixels)))
    return bytes(b) + pixels


def pose(t: int, frame: str) -> bytes:
    b = _header(t, frame)
    _pad(b, 8)
    return bytes(b) + np.array([0.1, 0.2, 1.5, 0, 0, 0, 1.0], "<f8").tobytes()


def pose_array(t: int, n: int) -> bytes:
    b = _header(t, "pelvis")
    _pad(b, 4)
    b.extend(struct.pack("<I", n))
    _pad(b, 8)
    return bytes(b) + np.tile(np.array([0.3, 0.2, 0.1, 0, 0, 0, 1.0], "<f8"), n).tobytes()


def camera_info(t: int, frame: str, w: int, h: int) -> bytes:
    b = _header(t, frame)
    _pad(b, 4)
    b.extend(struct.pack("<II", h, w))
    _str(b, "plumb_bob")
    _pad(b, 4)
    b.extend(struct.pack("<I", 5))
    _pad(b, 8)
    b.extend(np.zeros(5, "<f8").tobytes())
    b.extend(np.zeros(9 + 9 + 12, "<f8").tobytes())
    b.extend(struct.pack("<II", 0, 0))
    b.extend(struct.pack("<IIIIB", 0, 0, 0, 0, 0))
    return bytes(b)


def synthesize(bag: Path, seconds: float, cameras: int, w: int = 640, h: int = 480) -> dict:
    """Write the episode; returns the expected rates {topic: Hz}."""
    rng = np.random.default_rng(0)
    state_names = [f"joint_{i}" for i in range(29)]
    cmd_names = state_names[12:]
    cams = ["head", "left_wrist", "right_wrist", "front", "back", "top"][:cameras]
    frames = [bytes(rng.integers(0, 255, w * h * 3, dtype=np.uint8)) for _ in range(4)]
    custom = {"episode.task": "bench", "episode.operator": "bench", "episode.success": "true",
              "episode.start_time_ns": str(T0), "episode.stop_time_ns": str(T0 + int(seconds * 1e9)),
              "episode.duration_s": f"{seconds:.3f}"}
    streams = {"/joint_states": (500.0, "sensor_msgs/msg/JointState"),
               "/retarget/joint_command": (100.0, "sensor_msgs/msg/JointState"),
               "/retarget/targets": (100.0, "geometry_msgs/msg/PoseArray"),
               "/exo/joint_states": (60.0, "sensor_msgs/msg/JointState"),
               "/vr/head": (60.0, "geometry_msgs/msg/PoseStamped"),
               "/vr/left_wrist": (60.0, "geometry_msgs/msg/PoseStamped"),
               "/vr/right_wrist": (60.0, "geometry_msgs/msg/PoseStamped")}
    for c in cams:
        streams[f"/camera/{c}/image_raw"] = (30.0, "sensor_msgs/msg/Image")
        streams[f"/camera/{c}/camera_info"] = (30.0, "sensor_msgs/msg/CameraInfo")
    for t, (hz, _typ) in streams.items():
        custom[f"expected_hz/{t}"] = f"{hz:g}"
    w_ = BagWriter(bag, WriterOptions(compression="none"), custom_data=custom)
    for t, (_hz, typ) in streams.items():
        w_.add_topic(t, typ)
    events = []
    for t, (hz, _typ) in streams.items():
        n = int(seconds * hz)
        events.extend((T0 + int(i * 1e9 / hz), t, i) for i in range(n))
    events.sort()
    for ts, topic, i in events:
        ph = 2 * math.pi * ts / 1e9
        if topic == "/joint_states":
            data = joint_state(ts, state_names, np.sin(ph * 0.3 + np.arange(29)) * 0.5)
        elif topic == "/retarget/joint_command":
            data = joint_state(ts, cmd_names, np.sin(ph * 0.3 + np.arange(12, 29)) * 0.5)
        elif topic == "/exo/joint_states":
            data = joint_state(ts, [f"exo_{k}" for k in range(14)], np.sin(ph * 0.3 + np.arange(14)))
        elif topic == "/retarget/targets":
            data = pose_array(ts, 5)
        elif topic.startswith("/vr/"):
            data = pose(ts, "vr_world")
        elif topic.endswith("/image_raw"):
            data = image(ts, topic.split("/")[2] + "_optical_frame", w, h, frames[i % 4])
        else:
            data = camera_info(ts, topic.split("/")[2] + "_optical_frame", w, h)
        w_.write(topic, data, ts + 2_000_000, ts + 2_000_000)
    w_.close()
    return {t: hz for t, (hz, _typ) in streams.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="episode length, s")
    ap.add_argument("--cameras", type=int, default=3, help="raw 640x480 rgb8 cameras at 30 Hz")
    ap.add_argument("--keep", default=None, help="write the bag here and keep it (default: a temp dir, deleted)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the read-every-message baseline")
    args = ap.parse_args(argv)
    from robot_capture.bag.reader import BagReader
    from robot_capture.qa.run import qa_episode

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="qa_bench_"))
    bag = root / "bench_episode"
    try:
        if bag.exists():
            shutil.rmtree(bag)
        t = time.perf_counter()
        synthesize(bag, args.seconds, args.cameras)
        size = sum(f.stat().st_size for f in bag.glob("*.mcap"))
        print(f"episode: {args.seconds:.0f} s, {args.cameras} x 640x480 rgb8 cameras, {size / 1e9:.2f} GB, "
              f"written in {time.perf_counter() - t:.1f} s")
        qa_episode(bag, write=False)  # warm-up: imports, config, page cache of the indexes
        runs = []
        for _ in range(3):
            c0, w0 = time.process_time(), time.perf_counter()
            v = qa_episode(bag)
            runs.append((time.process_time() - c0, time.perf_counter() - w0))
        cpu, wall = min(r[0] for r in runs), min(r[1] for r in runs)
        print(f"verdict: {v.summary()}")
        print(f"qa_episode: {cpu:.3f} s CPU, {wall:.3f} s wall (best of 3) -> "
              f"{cpu / args.seconds:.4f} s CPU per recorded second (target <= 0.05)")
        if not args.no_baseline:
            c0, w0 = time.process_time(), time.perf_counter()
            n = 0
            with BagReader(bag) as r:
                for _m in r.messages():
                    n += 1
            bc, bw = time.process_time() - c0, time.perf_counter() - w0
            print(f"baseline, read every message once ({n} messages): {bc:.3f} s CPU, {bw:.3f} s wall -> "
                  f"{bc / args.seconds:.4f} s per recorded second; QA is {bc / max(cpu, 1e-9):.1f}x cheaper")
        return 0 if cpu / args.seconds <= 0.05 else 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
