"""SIGKILL matrix: the recorder core killed at 15 points, with the other core busy.

Kill points: right after the episode start, mid-episode at several times, right after a
split, and during the stop. Every trial: ``recover`` rebuilds the bag, and the data lost
(the last message the child wrote before the kill minus the last one recovered) is at
most the flush interval (``WriterOptions.flush_interval_s``, the shipped 1.0 s), because a
chunk is sealed on the write path once half the interval old (DESIGN.md "SIGKILL").
Prints each trial's loss.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from robot_capture.bag import BagReader, recover
from robot_capture.bag.errors import IncompleteBagFileError

pytestmark = pytest.mark.timeout(240)
FLUSH_S = 1.0

CHILD = textwrap.dedent("""
    import os, struct, sys, time
    from robot_capture.bag import WriterOptions
    from robot_capture.record.episode import EpisodeInfo
    from robot_capture.record.recorder import Recorder
    out, split_s, stop_after = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    rec = Recorder(out, WriterOptions(max_bag_duration_s=split_s, chunk_size=64 << 20), disk_min_free_bytes=0)
    rec.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    rec.add_topic("/camera/head/image_raw", "sensor_msgs/msg/Image")
    img = os.urandom(200_000)
    bag = rec.start_episode(EpisodeInfo(task="sigkill"))
    print("STARTED", time.time_ns(), flush=True)
    t0 = time.monotonic()
    i = 0
    splits = 0
    while True:  # 1 kHz joints + 30 Hz images, paced on the wall clock
        target = t0 + i * 0.001
        while time.monotonic() < target:
            time.sleep(0.0002)
        now = time.time_ns()
        rec.on_message("/joint_states", "sensor_msgs/msg/JointState", struct.pack("<Q", i) + b"j" * 300, now)
        if i % 33 == 0:
            rec.on_message("/camera/head/image_raw", "sensor_msgs/msg/Image", img, now)
        i += 1
        if i % 20 == 0:
            print("AT", now, flush=True)
        n = len([p for p in os.listdir(bag) if p.endswith(".mcap")])
        if n - 1 > splits:
            splits = n - 1
            print("SPLIT", now, flush=True)
        if stop_after and time.monotonic() - t0 >= stop_after:
            print("STOPPING", now, flush=True)
            rec.stop_episode(True)
            print("STOPPED", time.time_ns(), flush=True)
            time.sleep(5)
""")

# (name, kill when this line is read, after this many seconds past it)
MATRIX = [("after_start", "STARTED", 0.0), ("after_start_0.2", "STARTED", 0.2), ("early_0.6", "STARTED", 0.6),
          ("mid_1.0", "STARTED", 1.0), ("mid_1.3", "STARTED", 1.3), ("mid_1.7", "STARTED", 1.7),
          ("mid_2.2", "STARTED", 2.2), ("mid_2.9", "STARTED", 2.9),
          ("at_split", "SPLIT", 0.0), ("after_split_0.1", "SPLIT", 0.1), ("after_split_0.4", "SPLIT", 0.4),
          ("second_split", "SPLIT#2", 0.0),
          ("during_stop", "STOPPING", 0.0), ("during_stop_0.01", "STOPPING", 0.01), ("after_stop", "STOPPED", 0.0)]


@pytest.fixture(scope="module")
def busy_core():
    """A spinning process at normal priority (the machine's other core busy)."""
    p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield
    p.kill()
    p.wait(5)


def _trial(tmp_path, name, event, delay):
    out = tmp_path / name
    split_s = 1.2 if "split" in name else 0.0
    stop_after = 1.5 if "stop" in name else 0.0
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(out), str(split_s), str(stop_after)],
                            stdout=subprocess.PIPE, text=True, cwd=str(tmp_path))
    want, nth = (event.split("#") + ["1"])[:2]
    seen = 0
    last_at = 0
    started_ns = None
    kill_ns = None
    deadline = time.monotonic() + 60
    try:
        for line in proc.stdout:
            kind, ns = line.split()
            if kind in ("AT", "SPLIT", "STOPPING"):
                last_at = int(ns)
            if kind == "STARTED":
                started_ns = int(ns)
            if kind == want:
                seen += 1
                if seen >= int(nth):
                    t_end = time.monotonic() + delay
                    while time.monotonic() < t_end:  # keep reading the child's progress meanwhile
                        time.sleep(0.001)
                    kill_ns = time.time_ns()
                    proc.send_signal(signal.SIGKILL)
                    break
            if time.monotonic() > deadline:
                break
        rest = proc.stdout.read()
        for line in rest.splitlines():
            kind, ns = line.split()
            if kind in ("AT", "SPLIT", "STOPPING"):
                last_at = max(last_at, int(ns))
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert kill_ns is not None, f"{name}: the child never printed {event}"
    (bag,) = [p for p in out.iterdir() if p.is_dir()]
    try:
        BagReader(bag)
    except IncompleteBagFileError:
        pass
    report = recover(bag)
    r = BagReader(bag)
    times = [m.log_time_ns for m in r.messages(topics=["/joint_states"])]
    written_until = min(kill_ns, last_at) if "stop" in name else kill_ns
    # nothing recovered: everything since the start was lost
    lost_s = (written_until - (times[-1] if times else started_ns)) / 1e9
    return lost_s, report, len(times), written_until


def test_sigkill_matrix_loss_within_flush_interval(tmp_path, busy_core):
    assert len(MATRIX) >= 15
    results = []
    for name, event, delay in MATRIX:
        lost_s, report, n, _w = _trial(tmp_path, name, event, delay)
        results.append((name, lost_s, n, [f.status for f in report.files]))
    print(f"\nSIGKILL matrix (flush interval {FLUSH_S} s, other core busy, load {os.getloadavg()[0]:.1f}):")
    for name, lost_s, n, st in results:
        print(f"  {name:18s} lost {lost_s:6.3f} s  recovered {n:5d} joint states  files {st}")
    bad = [(nm, s) for nm, s, _n, _ in results if not s <= FLUSH_S]
    assert not bad, f"loss above the flush interval: {bad}"
