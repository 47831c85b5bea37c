#!/usr/bin/env python3
"""Where a SIGKILL's lost messages waited on a starved machine: in DDS or in the writer (issue 23).

A recorder node (the installed package, through a small wrapper that appends one trace line per
/js message the recorder takes, ``T <index> <take wall ns> <DDS receive ns>``, and one per chunk
the I/O thread hands to the kernel, ``W <messages> <wall ns>``, with unbuffered ``os.write``, so
the trace survives the SIGKILL) records a 200 Hz JointState from this process. ``--load`` busy
processes starve the machine; then a stop is requested (or not: ``--no-stop``) and the recorder
is SIGKILLed ``--kill-after`` s later. After ``recover``:

* every message published more than ``flush_interval_s`` (1.0 s) before the kill (and before the
  stop request) that is not in the bag is **lost**; it waited
  - **in DDS** if the recorder never took it (the executor thread did not run),
  - **in the writer** if it was taken but its chunk never reached the kernel;
* per trial: lost in DDS / in the writer, the executor's longest pause between takes, and the
  longest take -> kernel time of a written message.

    python benchmarks/recorder_starvation.py                     # 6 trials, 12 busy processes
    python benchmarks/recorder_starvation.py --load 24 --kill-after 0,0.5,1,2
    python benchmarks/recorder_starvation.py --load 8 --disk-load 2     # and a disk that syncs slowly

Figures go to stdout; nothing is asserted (a loaded machine's timing is a figure, not a test).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _installed import require_installed

WRAPPER = r"""
import os, struct, sys, time
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]
trace = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
from robot_capture.record import recorder as R
from robot_capture.bag import mcap_file as M
_on = R.Recorder.on_message
def on_message(self, topic, type_name, data, recv_ns, *a, **k):
    ok = _on(self, topic, type_name, data, recv_ns, *a, **k)
    if ok and topic == "/js":
        sec, nsec = struct.unpack_from("<iI", data, 4)
        os.write(trace, b"T %d %d %d\n" % ((sec - 1000) * 1000 + nsec // 1000000, time.time_ns(), recv_ns))
    return ok
R.Recorder.on_message = on_message
_wc = M.McapFileWriter.write_chunk
def write_chunk(self, sealed):
    out = _wc(self, sealed)
    os.write(trace, b"W %d %d\n" % (sealed.count, time.time_ns()))
    return out
M.McapFileWriter.write_chunk = write_chunk
sys.argv = ["recorder_node", *sys.argv[2:]]
from robot_capture.nodes import recorder_node
sys.exit(recorder_node.main())
"""
FLUSH_S = 1.0
#: a disk hog: 4 MiB writes with an fsync every 16 MiB, on the bag's file system
DISK_HOG = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
block, n = os.urandom(4 << 20), 0
while True:
    os.write(fd, block)
    n += 1
    if n % 4 == 0:
        os.fsync(fd)
    if n % 64 == 0:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, 0)
"""


def _client():
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState
    from std_srvs.srv import Trigger

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("starvation_bench", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    return node, ex, JointState, Trigger


def _call(node, ex, Trigger, name, timeout):
    cli = node.create_client(Trigger, f"/recorder/{name}")
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cli.service_is_ready():
            fut = cli.call_async(Trigger.Request())
            ex.spin_until_future_complete(fut, timeout_sec=2.0)
            if fut.done() and fut.result() is not None:
                node.destroy_client(cli)
                return fut.result().message
            cli.remove_pending_request(fut)
        else:
            ex.spin_once(timeout_sec=0.05)
    node.destroy_client(cli)
    return None


def _trial(work: Path, k: int, load: int, kill_after: float, stop: bool, client, disk_load: int = 0) -> dict:
    import threading

    node, ex, JointState, Trigger = client
    trace = work / f"trace_{k}.txt"
    out = work / f"out_{k}"
    params = work / f"params_{k}.yaml"
    params.write_text(json.dumps({"/**": {"ros__parameters": {
        "output_dir": str(out), "topics": ["/js"], "auto_start": True, "flush_interval_s": FLUSH_S,
        "disk_min_free_mb": 0.0, "discovery_interval_s": 0.3, "expected_streams": ["/js=200"]}}}))
    log = open(work / f"rec_{k}.log", "wb")
    rec = subprocess.Popen([sys.executable, "-c", WRAPPER, str(trace), "--ros-args", "--params-file", str(params)],
                           stdout=log, stderr=subprocess.STDOUT, cwd=str(work))
    pub = node.create_publisher(JointState, "/js", 1000)
    sent: list[int] = []
    halt = threading.Event()

    def publish():
        t0, i = time.monotonic(), 0
        while not halt.is_set():
            m = JointState()
            m.header.stamp.sec, m.header.stamp.nanosec = 1000 + i // 1000, (i % 1000) * 1_000_000
            m.name, m.position = ["j0", "j1"], [float(i), 0.0]
            pub.publish(m)
            sent.append(time.time_ns())
            i += 1
            d = t0 + i / 200.0 - time.monotonic()
            if d > 0:
                time.sleep(d)

    th = threading.Thread(target=publish, daemon=True)
    busy = []
    try:
        if _call(node, ex, Trigger, "status", 60) is None:
            return {"trial": k, "error": "recorder never answered"}
        th.start()
        end = time.monotonic() + 60
        while not trace.exists() or trace.stat().st_size == 0:
            if time.monotonic() > end:
                return {"trial": k, "error": "no data reached the recorder"}
            ex.spin_once(timeout_sec=0.05)
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
        busy += [subprocess.Popen([sys.executable, "-c", DISK_HOG, str(work / f"hog_{k}_{j}")]) for j in range(disk_load)]
        time.sleep(3.0)
        t_stop = None
        if stop:
            cli = node.create_client(Trigger, "/recorder/stop_episode")
            t_stop = time.time_ns()
            cli.call_async(Trigger.Request())
            ex.spin_once(timeout_sec=0.0)
        time.sleep(kill_after)
        t_kill = time.time_ns()
        rec.send_signal(signal.SIGKILL)
        rec.wait(30)
    finally:
        halt.set()
        for b in busy:
            b.kill()
        for b in busy:
            b.wait()
        for hog in work.glob(f"hog_{k}_*"):
            hog.unlink()
        if rec.poll() is None:
            rec.kill()
            rec.wait()
        log.close()
        node.destroy_publisher(pub)
    return _analyse(k, out, trace, sent, t_kill, t_stop, load)


def _analyse(k, out, trace, sent, t_kill, t_stop, load) -> dict:
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import JointState

    from robot_capture.bag import BagReader, recover
    from robot_capture.bag.errors import IncompleteBagFileError

    (bag,) = [p for p in out.iterdir() if p.is_dir()]
    try:
        BagReader(bag)
    except IncompleteBagFileError:
        recover(bag)
    got = set()
    for m in BagReader(bag).messages(topics=["/js"]):
        st = deserialize_message(bytes(m.data), JointState).header.stamp
        got.add((st.sec - 1000) * 1000 + st.nanosec // 1_000_000)
    taken, written = {}, []
    for line in trace.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "T":
            taken[int(parts[1])] = (int(parts[2]), int(parts[3]))
        elif len(parts) == 3 and parts[0] == "W":
            written.append((int(parts[1]), int(parts[2])))
    on_disk = sum(n for n, _t in written)
    order = list(taken)  # take order = write order (one topic)
    rank = {i: r for r, i in enumerate(order)}
    horizon = min(t_kill, t_stop or t_kill) - int(FLUSH_S * 1e9)
    first = min(taken) if taken else 0
    due = [i for i, t in enumerate(sent) if i >= first and t < horizon]
    lost = [i for i in due if i not in got]
    in_dds = [i for i in lost if i not in taken]
    in_writer = [i for i in lost if i in taken and rank[i] >= on_disk]
    takes = sorted(t for t, _r in taken.values())
    pause = max((b - a for a, b in zip(takes, takes[1:])), default=0) / 1e9
    dds_wait = max((t - sent[i] for i, (t, _r) in taken.items() if i < len(sent)), default=0) / 1e9
    cum, w_i, take_to_disk = 0, 0, 0.0
    for r, i in enumerate(order):  # the write that covered each taken message
        while w_i < len(written) and cum + written[w_i][0] <= r:
            cum += written[w_i][0]
            w_i += 1
        if w_i < len(written):
            take_to_disk = max(take_to_disk, (written[w_i][1] - taken[i][0]) / 1e9)
    return {"trial": k, "load": load, "stop": t_stop is not None, "kill_after_stop_s": (t_kill - (t_stop or t_kill)) / 1e9,
            "due": len(due), "lost": len(lost), "lost_in_dds": len(in_dds), "lost_in_writer": len(in_writer),
            "oldest_lost_s": (t_kill - sent[min(lost)]) / 1e9 if lost else 0.0, "max_take_pause_s": pause,
            "max_publish_to_take_s": dds_wait, "max_take_to_kernel_s": take_to_disk,
            "loadavg": os.getloadavg()[0]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--load", type=int, default=12, help="busy processes during each trial (default 12)")
    p.add_argument("--kill-after", default="0,0.2,0.5,1,2,3", help="s after the stop request (comma list)")
    p.add_argument("--disk-load", type=int, default=0,
                   help="processes writing 4 MiB blocks with fsync on the bags' file system (default 0)")
    p.add_argument("--no-stop", action="store_true", help="kill while recording, no stop request")
    args = p.parse_args(argv)
    require_installed()
    from robot_capture.floor.graph import apply_dds_environment
    from robot_capture.ros_env import ensure_ament_prefix

    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    ensure_ament_prefix()
    apply_dds_environment("")
    client = _client()
    rows = []
    with tempfile.TemporaryDirectory(prefix="rc_starve_") as tmp:
        for k, after in enumerate(float(x) for x in args.kill_after.split(",")):
            r = _trial(Path(tmp), k, args.load, after, not args.no_stop, client, args.disk_load)
            rows.append(r)
            print(json.dumps(r), flush=True)
    print(f"\nSIGKILL under starvation ({args.load} busy processes, {args.disk_load} disk hogs, "
          f"flush interval {FLUSH_S} s):")
    print(" trial  kill   due  lost  in DDS  in writer  oldest lost  take pause  publish->take  take->kernel")
    for r in rows:
        if "error" in r:
            print(f" {r['trial']:5d}  {r['error']}")
            continue
        print(f" {r['trial']:5d} {r['kill_after_stop_s']:5.2f} {r['due']:5d} {r['lost']:5d} {r['lost_in_dds']:7d} "
              f"{r['lost_in_writer']:10d} {r['oldest_lost_s']:10.2f}s {r['max_take_pause_s']:10.2f}s "
              f"{r['max_publish_to_take_s']:13.2f}s {r['max_take_to_kernel_s']:12.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
