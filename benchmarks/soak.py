#!/usr/bin/env python3
"""Recorder soak through real DDS: RSS growth, CPU, loss and file completeness over a long run.

Load (a separate publisher process): ``--cameras`` 640x480 rgb8 Image streams at 30 Hz
(noise frames from a pool of 8 per camera) and a 30-joint JointState at ``--joint-hz``
(default 500 Hz), reliable, KEEP_LAST 1 s of messages. The recorder node runs as its own
process with the shipped defaults (``auto_start``, ``max_bag_duration_s`` = ``--split-s``,
default 60 s splits). Every ``--sample-s`` the recorder's RSS (/proc VmRSS) and CPU time
are sampled.

Prints: RSS per minute; RSS growth after the first minute (RSS at the end minus RSS at
60 s) and its slope (least squares over minutes 1..end, MB/min); the peak; the recorder's
CPU % of one core; per topic published / recorded / lost; and, per split file, whether it
is complete (footer, summary CRC, every chunk passes ``BagReader(validate_crc=True)``).

    nice -n 19 python benchmarks/soak.py                  # 20 min, 2 cameras + 500 Hz joints
    python benchmarks/soak.py --duration 120 --split-s 30 # a short check

Targets (issue 14): RSS growth <= 10 MB after the first minute, 0 loss, every file complete.
Exit status 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _installed import node_command, require_installed

require_installed()

CAM_W, CAM_H, CAM_HZ, POOL = 640, 480, 30.0, 8


def run_publisher(duration: float, cameras: int, joint_hz: float, ready_timeout: float = 60.0) -> dict:
    """Publish for ``duration`` s once every topic has a subscriber (absolute schedule); returns counts."""
    import numpy as np
    import rclpy
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image, JointState

    rclpy.init()
    node = rclpy.create_node("soak_publisher")
    rng = np.random.default_rng(0)
    topics, pools = {}, {}
    for k in range(cameras):
        img = Image()
        img.header.frame_id = f"cam{k}_optical_frame"
        img.height, img.width, img.encoding, img.step = CAM_H, CAM_W, "rgb8", CAM_W * 3
        t = f"/camera/cam{k}/image_raw"
        topics[t] = (Image, CAM_HZ, img)
        pools[t] = [rng.integers(0, 256, CAM_W * CAM_H * 3, dtype=np.uint8).tobytes() for _ in range(POOL)]
    js = JointState()
    js.name = [f"joint_{i}" for i in range(30)]
    topics["/joint_states"] = (JointState, joint_hz, js)
    pubs = {t: node.create_publisher(cls, t, QoSProfile(depth=max(10, round(hz)))) for t, (cls, hz, _m) in topics.items()}
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline and not all(p.get_subscription_count() > 0 for p in pubs.values()):
        time.sleep(0.05)
    time.sleep(0.5)
    counts = {t: 0 for t in topics}
    print("START", flush=True)
    t0 = time.monotonic()
    end = t0 + duration
    heap = [(t0, t) for t in topics]
    anchor = {t: (t0, 0) for t in topics}
    late = 0
    while heap:
        due, topic = heapq.heappop(heap)
        if due >= end:
            continue
        now = time.monotonic()
        cls, hz, msg = topics[topic]
        n = counts[topic]
        if due > now:
            time.sleep(due - now)
        elif now - due > 0.1:  # a stall (CPU contention): resync rather than burst the backlog
            late += 1
            anchor[topic] = (now, n)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
        if cls is JointState:
            msg.position = [0.001 * n + i for i in range(30)]
            msg.velocity = [0.0] * 30
        else:
            msg.data = pools[topic][n % POOL]
        pubs[topic].publish(msg)
        counts[topic] = n + 1
        a_t, a_n = anchor[topic]
        heapq.heappush(heap, (a_t + (n + 1 - a_n) / hz, topic))
    wall = time.monotonic() - t0
    time.sleep(2.0)  # reliable delivery of the tail
    node.destroy_node()
    rclpy.shutdown()
    return {"counts": counts, "wall_s": wall, "late": late}


def _proc(pid: int) -> tuple[float, float]:
    """(RSS MB, CPU s) of a process from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return _rss_kinds(pid).get("VmRSS", 0.0), cpu


def _rss_kinds(pid: int) -> dict[str, float]:
    """VmRSS (all), RssAnon (heap: Python, malloc, DDS histories), RssFile (mapped files:
    libraries) and RssShmem (touched pages of shared memory: the publishers' Fast DDS
    segments), MB."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "RssAnon:", "RssFile:", "RssShmem:")):
                    k, v = line.split()[:2]
                    out[k.rstrip(":")] = int(v) / 1024.0
    except OSError:
        pass
    return out


def _check_finished(out: Path, checked: dict, keep: bool, last_too: bool) -> None:
    """Check every finished split file once (footer, summary CRC, all chunk CRCs; the newest
    file is still being written unless ``last_too``), record its counts, then delete it
    (unless ``keep``) so a long soak needs only a few splits of disk."""
    from robot_capture.bag import BagReader
    from robot_capture.bag.errors import BagError, IncompleteBagFileError
    from robot_capture.bag.reader import list_mcap_files

    for bag in (p for p in out.iterdir() if p.is_dir()):
        files = list_mcap_files(bag)
        for f in files if last_too else files[:-1]:
            if f.name in checked:
                continue
            try:
                r = BagReader(f)
                checked[f.name] = (not r.check(), {t: i.count for t, i in r.topics.items()})
            except IncompleteBagFileError as exc:
                if not last_too:  # the writer's I/O thread finishes a split after the next one opens
                    continue
                print(f"  {f.name}: INCOMPLETE ({exc})", flush=True)
                checked[f.name] = (False, {})
            except BagError as exc:
                print(f"  {f.name}: INCOMPLETE ({exc})", flush=True)
                checked[f.name] = (False, {})
            if not keep:
                f.unlink()


def _slope(xs, ys) -> float:
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--duration", type=float, default=1200.0, help="seconds of publishing")
    ap.add_argument("--cameras", type=int, default=2, help="640x480 rgb8 camera streams at 30 Hz")
    ap.add_argument("--joint-hz", type=float, default=500.0, help="JointState rate")
    ap.add_argument("--split-s", type=float, default=60.0, help="recorder max_bag_duration_s")
    ap.add_argument("--sample-s", type=float, default=5.0, help="RSS/CPU sampling period")
    ap.add_argument("--rss-target-mb", type=float, default=10.0, help="allowed RSS growth after the first minute")
    ap.add_argument("--out", default=None, help="output folder (default: a temp folder, removed)")
    ap.add_argument("--keep-files", action="store_true",
                    help="keep the split files (default: each is checked, counted and deleted once finished)")
    ap.add_argument("--qos-depth-large", type=int, default=None,
                    help="recorder qos_depth_large (default: the node's, 100): the DDS reader history of each "
                         "camera topic, which bounds what a stall can buffer (and the RSS it leaves allocated)")
    ap.add_argument("--publisher", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    from robot_capture.ros_env import ensure_ament_prefix

    ensure_ament_prefix()
    if a.publisher:
        print(json.dumps(run_publisher(a.duration, a.cameras, a.joint_hz)), flush=True)
        return 0
    tmp = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="rc_soak_"))
    out = tmp / "out"
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    from robot_capture.floor.graph import DDS_ENV_VARS, dds_environment

    env = {k: v for k, v in env.items() if k not in DDS_ENV_VARS}
    env.update(dds_environment(None))  # the floor's shipped DDS settings
    env["ROS_DOMAIN_ID"] = str(random.randint(150, 230))
    env.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="rc_soak_log_"))
    params = ["-p", f"output_dir:={out}", "-p", "regex:=^/(camera|joint_states)", "-p", "auto_start:=true",
              "-p", f"max_bag_duration_s:={a.split_s}", "-p", "task:=soak", "-p", "discovery_interval_s:=0.5",
              "-p", "disk_min_free_mb:=500.0"]
    if a.qos_depth_large is not None:
        params += ["-p", f"qos_depth_large:={a.qos_depth_large}"]
    depth = a.qos_depth_large if a.qos_depth_large is not None else 100
    frame_mb = CAM_W * CAM_H * 3 / 1e6
    print(f"soak: {a.duration:.0f} s, {a.cameras} cameras 640x480 @30 Hz + JointState 30 joints @{a.joint_hz:g} Hz, "
          f"{a.split_s:g} s splits; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    rec_log = open(tmp / "recorder.log", "wb")
    rec = subprocess.Popen([*node_command("robot_capture.nodes.recorder_node"), "--ros-args", *params],
                           stdout=rec_log, stderr=subprocess.STDOUT, env=env)
    samples = []  # (t since START, rss MB, cpu s)
    checked: dict = {}  # split file name -> (complete, {topic: count})
    try:
        time.sleep(1.0)
        pub = subprocess.Popen([sys.executable, __file__, "--publisher", "--duration", str(a.duration),
                                "--cameras", str(a.cameras), "--joint-hz", str(a.joint_hz)],
                               stdout=subprocess.PIPE, env=env, text=True)
        if pub.stdout.readline().strip() != "START":
            raise RuntimeError("publisher did not start")
        t0 = time.monotonic()
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(pub.stdout.read().splitlines()), daemon=True)
        reader.start()
        next_minute = 60.0
        while pub.poll() is None:
            _check_finished(out, checked, a.keep_files, last_too=False)
            rss, cpu = _proc(rec.pid)
            t = time.monotonic() - t0
            samples.append((t, rss, cpu))
            if t >= next_minute:
                kinds = _rss_kinds(rec.pid)
                print(f"  t={t / 60:5.1f} min  RSS {rss:7.1f} MB (anon {kinds.get('RssAnon', 0):.1f}, file "
                      f"{kinds.get('RssFile', 0):.1f}, shmem {kinds.get('RssShmem', 0):.1f})  "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
                next_minute += 60.0
            time.sleep(a.sample_s)
        reader.join(30)
        buf = "\n".join(lines)
        result = json.loads(buf.strip().splitlines()[-1])
        time.sleep(1.0)
        rec.send_signal(signal.SIGINT)
        rec.wait(120)
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait(10)
        rec_log.close()

    _check_finished(out, checked, a.keep_files, last_too=True)
    complete = sum(1 for ok, _c in checked.values() if ok)
    recorded: dict[str, int] = {}
    for _ok, counts in checked.values():
        for t, n in counts.items():
            recorded[t] = recorded.get(t, 0) + n
    files = list(checked)
    window = samples[-1][0] - samples[0][0] if len(samples) > 1 else 1.0
    cpu_pct = 100.0 * (samples[-1][2] - samples[0][2]) / window
    after = [(t / 60.0, rss) for t, rss, _c in samples if t >= 60.0]
    rss_60 = after[0][1] if after else samples[-1][1]
    growth = samples[-1][1] - rss_60
    slope = _slope([x for x, _ in after], [y for _, y in after])
    peak = max(s[1] for s in samples)
    print(f"\nRSS: start {samples[0][1]:.1f} MB, at 1 min {rss_60:.1f} MB, end {samples[-1][1]:.1f} MB, "
          f"peak {peak:.1f} MB; growth after the first minute {growth:+.1f} MB (slope {slope:+.3f} MB/min)")
    print(f"bound from the DDS reader histories: {a.cameras} cameras x depth {depth} x {frame_mb:.2f} MB = "
          f"{a.cameras * depth * frame_mb:.0f} MB (filled by the first stall, kept allocated by Fast DDS)")
    print(f"recorder CPU {cpu_pct:.1f} % of one core; publisher late events {result['late']}; "
          f"load average {os.getloadavg()[0]:.2f}")
    lost_total = 0
    print(f"{'topic':28s} {'published':>10s} {'recorded':>10s} {'lost':>6s}")
    for t, n in result["counts"].items():
        got = recorded.get(t, 0)
        lost_total += n - got
        print(f"{t:28s} {n:10d} {got:10d} {n - got:6d}")
    print(f"files: {len(files)} split files, {complete} complete")
    ok = growth <= a.rss_target_mb and lost_total == 0 and complete == len(files) and files
    print(f"targets (RSS growth <= {a.rss_target_mb:g} MB, 0 loss, every file complete): "
          f"{'MET' if ok else 'NOT MET'}")
    (tmp / "soak.json").write_text(json.dumps({"samples": samples, "result": result, "recorded": recorded,
                                                "files": len(files), "complete": complete}))
    if not a.out:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
