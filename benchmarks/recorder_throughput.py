#!/usr/bin/env python3
"""Recorder throughput through real DDS (issue 2).

Load, published from a separate process: ``3 x camera-scale`` 640x480 rgb8 Image at
30 Hz (``/camera/cam<k>/image_raw``), a 30-joint JointState at 1 kHz (``/joint_states``)
and a 14-joint exoskeleton JointState at 200 Hz (``/exo/joint_states``), all reliable
with KEEP_LAST depth = 1 s of messages (``--pub-depth-s``), on one absolute-deadline schedule
that resyncs after a >100 ms stall (counted as "late events": a sign of CPU contention). Camera
frames are uniform noise from a pool of 8 per camera (incompressible: a worst case for
zstd/lz4 CPU; real images compress ~7 %, ENVIRONMENT.md). The
recorder node runs as its own process (``python -m robot_capture.nodes.recorder_node``,
auto_start, default settings unless flags say otherwise).

Prints, per topic: published, recorded, lost (= published - recorded) and the recorder's
own drop counter (sequence gaps / DDS message-lost events); then the recorder's CPU %
(process user+sys time over wall time of the recording window, from /proc), MB/s
written (bag bytes on disk / window), and the writer-only comparison (BagWriter vs a
plain ``mcap`` Writer at the same chunk size and compression, same process, same load;
``robot_capture.bag.bench.compare_writers``). Also the machine's load average, since
the machine is shared.

    python benchmarks/recorder_throughput.py                       # 60 s, 3 and 6 cameras
    python benchmarks/recorder_throughput.py --duration 10 --camera-scale 2
    python benchmarks/recorder_throughput.py --transport shipped,large_data

DDS settings (``--transport``, a comma-separated list; default shipped,interop,default):
``shipped`` gives both processes the floor's default, the Fast DDS XML profile
``config/fastdds.xml`` (``robot_capture.floor.graph.dds_environment``); ``interop`` gives it
only to the recorder, the publisher standing for a process outside the floor (the robot's
driver) on Fast DDS's defaults; ``default`` is Fast DDS's defaults for both, the baseline
(640x480 frames travel as 64 kB fragments through a 512 KiB shared-memory segment, and some
are lost before any subscriber sees them). ``large_data`` sets
``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` for both; with it on the recorder only
(``recorder_large_data``) discovery matches but no data arrives at all.
Exit status 1 when a ``shipped`` run loses a message or the recorder needs a core or more.
"""
from __future__ import annotations

import argparse
import heapq
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _installed import node_command, require_installed

require_installed()

CAM_W, CAM_H, CAM_HZ, JS_HZ, EXO_HZ = 640, 480, 30.0, 1000.0, 200.0
POOL = 8  # distinct random frames per camera


# ------------------------------------------------------------------ publisher process
def run_publisher(duration: float, cameras: int, depth_s: float = 1.0, ready_timeout: float = 30.0) -> dict:
    """Publish the load for ``duration`` s once every topic has a subscriber; returns counts."""
    import numpy as np
    import rclpy
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image, JointState

    rclpy.init()
    node = rclpy.create_node("bench_publisher")
    topics, pools = {}, {}
    rng = np.random.default_rng(0)
    for k in range(cameras):
        img = Image()
        img.header.frame_id = f"cam{k}_optical_frame"
        img.height, img.width, img.encoding, img.step = CAM_H, CAM_W, "rgb8", CAM_W * 3
        topics[f"/camera/cam{k}/image_raw"] = (Image, 10, CAM_HZ, img)
        pools[f"/camera/cam{k}/image_raw"] = [rng.integers(0, 256, CAM_W * CAM_H * 3, dtype=np.uint8).tobytes()
                                              for _ in range(POOL)]
    js = JointState()
    js.name = [f"joint_{i}" for i in range(30)]
    exo = JointState()
    exo.name = [f"exo_{i}" for i in range(14)]
    topics["/joint_states"] = (JointState, 100, JS_HZ, js)
    topics["/exo/joint_states"] = (JointState, 100, EXO_HZ, exo)
    pubs = {t: node.create_publisher(cls, t, QoSProfile(depth=max(10, round(hz * depth_s))))
            for t, (cls, _d, hz, _m) in topics.items()}
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline and not all(p.get_subscription_count() > 0 for p in pubs.values()):
        time.sleep(0.05)
    time.sleep(0.5)
    counts = {t: 0 for t in topics}
    print("START", flush=True)
    t0 = time.monotonic()
    heap = [(t0, t) for t in topics]
    heapq.heapify(heap)
    anchor = {t: (t0, 0) for t in topics}  # (time, count) the schedule of a topic counts from
    end = t0 + duration
    late = 0
    while heap:
        due, topic = heapq.heappop(heap)
        if due >= end:
            continue
        now = time.monotonic()
        cls, _d, hz, msg = topics[topic]
        n = counts[topic]
        if due > now:
            time.sleep(due - now)
        elif now - due > 0.1:  # stalled > 100 ms (CPU contention): resync, do not burst the backlog
            late += 1
            anchor[topic] = (now, n)
        stamp = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        if cls is JointState:
            nj = len(msg.name)
            msg.position = [0.001 * n + i for i in range(nj)]
            msg.velocity = [0.0] * nj
            msg.effort = [0.0] * nj
            pubs[topic].publish(msg)
        else:  # distinct noise frames (a pool, cycled), so chunk compression cannot dedupe them
            msg.data = pools[topic][n % POOL]
            pubs[topic].publish(msg)
        counts[topic] = n + 1
        a_t, a_n = anchor[topic]
        heapq.heappush(heap, (a_t + (n + 1 - a_n) / hz, topic))
    wall = time.monotonic() - t0
    time.sleep(1.0)  # let reliable delivery finish
    node.destroy_node()
    rclpy.shutdown()
    return {"counts": counts, "wall_s": wall, "late": late}


# ------------------------------------------------------------------ orchestration
def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


TRANSPORTS = {
    # name: (recorder's DDS settings, publisher's DDS settings); "profile" = the shipped Fast DDS
    # XML profile (robot_capture.floor.graph.dds_environment), "builtin" = FASTDDS_BUILTIN_TRANSPORTS
    "shipped": ("profile", "profile"),        # what every floor process gets by default
    "interop": ("profile", "plain"),          # a publisher outside the floor's settings (robot driver)
    "default": ("plain", "plain"),            # Fast DDS defaults everywhere: the baseline
    "large_data": ("large_data", "large_data"),
    "recorder_large_data": ("large_data", "plain"),
}


def _dds_env(base: dict, kind: str) -> dict:
    from robot_capture.floor.graph import DDS_ENV_VARS, dds_environment

    env = {k: v for k, v in base.items() if k not in DDS_ENV_VARS}
    if kind == "profile":
        env.update(dds_environment(None))
    elif kind == "large_data":
        env.update(dds_environment("LARGE_DATA"))
    return env


def run_once(duration: float, cameras: int, compression: str, level, chunk_size: int, out_dir: Path,
             transport: str = "shipped", pub_depth_s: float = 1.0, extra_params=()) -> dict:
    rec_kind, pub_kind = TRANSPORTS[transport]
    env = _dds_env(dict(os.environ), pub_kind)
    rec_env = _dds_env(dict(os.environ), rec_kind)
    env["ROS_DOMAIN_ID"] = str(random.randint(150, 230))
    env.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="rc_bench_log_"))
    rec_env.update(ROS_DOMAIN_ID=env["ROS_DOMAIN_ID"], ROS_LOG_DIR=env["ROS_LOG_DIR"])
    params = ["-p", f"output_dir:={out_dir}", "-p", "regex:=^/(camera|joint_states|exo)", "-p", "auto_start:=true",
              "-p", f"compression:={compression}", "-p", f"chunk_size:={chunk_size}", "-p", "task:=throughput",
              "-p", "disk_min_free_mb:=500.0", "-p", "discovery_interval_s:=0.5"]
    if level is not None:
        params += ["-p", f"compression_level:={level}"]
    for kv in extra_params:
        params += ["-p", kv]
    rec_log = open(out_dir.parent / f"recorder_{cameras}cam.log", "wb")
    rec = subprocess.Popen([*node_command("robot_capture.nodes.recorder_node"), "--ros-args", *params],
                           stdout=rec_log, stderr=subprocess.STDOUT, env=rec_env)
    try:
        time.sleep(1.0)
        pub = subprocess.Popen([sys.executable, __file__, "--publisher", "--duration", str(duration),
                                "--cameras", str(cameras), "--pub-depth-s", str(pub_depth_s)],
                               stdout=subprocess.PIPE, env=env, text=True)
        # CPU window: from the publisher's first message to its report (1 s after its last message,
        # so the recorder's catching up is included)
        line = pub.stdout.readline()
        if line.strip() != "START":
            raise RuntimeError(f"publisher did not start: {line!r}")
        c0, w0 = _cpu_s(rec.pid), time.monotonic()
        line = pub.stdout.readline()
        c1, w1 = _cpu_s(rec.pid), time.monotonic()
        pub.wait(60)
        if pub.returncode != 0 or not line.strip():
            raise RuntimeError(f"publisher failed ({pub.returncode})")
        result = json.loads(line)
        time.sleep(0.5)
        rec.send_signal(signal.SIGINT)
        rec.wait(60)
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait(10)
        rec_log.close()
    from robot_capture.bag import BagReader

    (bag,) = [p for p in out_dir.iterdir() if p.is_dir()]
    r = BagReader(bag)
    drops = r.metadata_records().get("recorder_drops", {})
    per_topic = {}
    for t, n in result["counts"].items():
        got = r.topics[t].count if t in r.topics else 0
        per_topic[t] = {"published": n, "recorded": got, "lost": n - got,
                        "recorder_drops": int(drops.get(f"drops/{t}", 0))}
    size = _dir_bytes(bag)
    window = w1 - w0
    return {"topics": per_topic, "recorder_cpu_pct": 100.0 * (c1 - c0) / window, "window_s": window,
            "bag_mb": size / 1e6, "mb_per_s": size / 1e6 / result["wall_s"], "publish_wall_s": result["wall_s"],
            "publisher_late": result["late"], "bag": str(bag)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of publishing (default %(default)s)")
    ap.add_argument("--camera-scale", type=int, default=None,
                    help="run only this multiple of the 3-camera load (default: 1 and 2)")
    ap.add_argument("--compression", choices=("none", "lz4", "zstd"), default="none",
                    help="recorder chunk compression (default none: the recorder's default)")
    ap.add_argument("--level", type=int, default=None, help="compression level (default: library default)")
    ap.add_argument("--chunk-size", type=int, default=4 * 1024 * 1024)
    ap.add_argument("--transport", default="shipped,interop,default", metavar="LIST",
                    help="comma-separated DDS settings to run (default: %(default)s): shipped (the floor's "
                         "Fast DDS XML profile for both processes, the default of every floor process), "
                         "interop (recorder with the profile, publisher with Fast DDS defaults: a robot "
                         "driver outside the floor), default (Fast DDS defaults for both: the baseline), "
                         "large_data (FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA for both), recorder_large_data")
    ap.add_argument("--pub-depth-s", type=float, default=1.0,
                    help="publishers' KEEP_LAST depth in seconds of messages (default 1 s: 30 frames, "
                         "1000 joint states); the recorder cannot deepen a publisher's history")
    ap.add_argument("--writer-seconds", type=float, default=10.0, help="seconds of load for writer-only figures (default %(default)s; 0 = skip them)")
    ap.add_argument("--keep", action="store_true", help="keep the bags (printed paths)")
    ap.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                    help="a recorder node parameter, repeatable (default: none, the shipped defaults)")
    ap.add_argument("--publisher", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--cameras", type=int, default=3, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    from robot_capture.ros_env import ensure_ament_prefix

    ensure_ament_prefix()
    if a.publisher:
        print(json.dumps(run_publisher(a.duration, a.cameras, a.pub_depth_s)), flush=True)
        return 0
    scales = [a.camera_scale] if a.camera_scale else [1, 2]
    tmp = Path(tempfile.mkdtemp(prefix="rc_recbench_"))
    ok = True
    results = []
    try:
        print(f"recorder throughput: {a.duration:.0f} s per run, compression {a.compression}"
              f"{'' if a.level is None else f' level {a.level}'}, chunk {a.chunk_size >> 10} KiB; "
              f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
        transports = [t.strip() for t in a.transport.split(",") if t.strip()]
        bad = [t for t in transports if t not in TRANSPORTS]
        if bad:
            print(f"error: unknown --transport {', '.join(bad)} (known: {', '.join(TRANSPORTS)})", file=sys.stderr)
            return 2
        for scale, transport in itertools.product(scales, transports):
            cams = 3 * scale
            out = tmp / f"x{scale}_{transport}" / "out"
            out.mkdir(parents=True)
            res = run_once(a.duration, cams, a.compression, a.level, a.chunk_size, out, transport, a.pub_depth_s,
                           a.param)
            print(f"\n== {cams} cameras 640x480 rgb8 @30 Hz + JointState 30 joints @1 kHz + exo 14 joints @200 Hz, "
                  f"transport {transport} (load avg {os.getloadavg()[0]:.2f})")
            results.append((cams, transport, res))
            print(f"{'topic':34s} {'published':>10s} {'recorded':>10s} {'lost':>6s} {'rec.drops':>9s}")
            for t, v in res["topics"].items():
                print(f"{t:34s} {v['published']:10d} {v['recorded']:10d} {v['lost']:6d} {v['recorder_drops']:9d}")
            print(f"recorder CPU {res['recorder_cpu_pct']:.1f} % of one core over {res['window_s']:.1f} s; "
                  f"written {res['bag_mb']:.0f} MB = {res['mb_per_s']:.1f} MB/s; publisher late events "
                  f"{res['publisher_late']}; publish window {res['publish_wall_s']:.1f} s")
            if a.keep:
                print(f"bag: {res['bag']}")
            else:
                shutil.rmtree(Path(res["bag"]), ignore_errors=True)
            if transport != transports[-1] or a.writer_seconds <= 0:
                continue
            from robot_capture.bag.bench import compare_writers

            wr = compare_writers(seconds=min(a.writer_seconds, a.duration), cameras=cams, compression=a.compression,
                                 level=a.level, chunk_size=a.chunk_size, out_dir=tmp / f"w{scale}")
            bw, pm = wr["bag_writer"], wr["plain_mcap"]
            print(f"writer only ({wr['load']['mbytes']:.0f} MB, same settings): BagWriter "
                  f"{bw['mb_per_s_wall']:.0f} MB/s wall, {bw['mb_per_s_cpu']:.0f} MB/s per CPU-s; plain mcap Writer "
                  f"{pm['mb_per_s_wall']:.0f} MB/s wall, {pm['mb_per_s_cpu']:.0f} MB/s per CPU-s", flush=True)
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")
        print("summary (target: zero loss, recorder < 1 core):")
        for cams, transport, res in results:
            lost = sum(v["lost"] for v in res["topics"].values())
            met = lost == 0 and res["recorder_cpu_pct"] < 100.0
            if transport == "shipped":  # the target is on the floor's defaults; the others are figures
                ok &= met
            print(f"  {cams} cameras, {transport:10s}: lost {lost:5d}, recorder CPU {res['recorder_cpu_pct']:5.1f} %, "
                  f"{res['mb_per_s']:6.1f} MB/s -> {'MET' if met else 'NOT MET'}")
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
