"""Cleaning dead processes' Fast DDS shared-memory files (robot_capture.dds_shm, issue 23).

A folder laid out as /dev/shm is after a SIGKILL: the dead participant's segment and port
sets (unlocked lock files), next to a live process's sets (lock files flocked by a child
process, as Fast DDS holds them). Only the dead ones go; a live process's files, files
without a lock file and other programs' files stay; the live holder's lock is never probed.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time

import pytest

from robot_capture.dds_shm import clean_stale, held_inodes, startup_clean

DEAD = ["fastdds_port7411", "fastdds_port7411_el", "sem.fastdds_port7411_mutex",
        "fastdds_0123456789abcdef", "fastdds_0123456789abcdef_el",
        "fastrtps_port7413", "fastrtps_port7413_sl", "sem.fastrtps_port7413_mutex"]  # Fast DDS 2 names
LIVE = ["fastdds_port7415", "fastdds_port7415_el", "sem.fastdds_port7415_mutex",
        "fastdds_fedcba9876543210", "fastdds_fedcba9876543210_el"]
OTHER = ["fastdds_port7000", "sem.fastdds_port7000_mutex",  # a port without lock file: not judged
         "lttng-ust-wait-6", "sem.other_program", "fastdds_notasegment_el"]

HOLD = """
import fcntl, sys, time
fds = [open(p, "rb") for p in sys.argv[1:]]
for f in fds:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
def shm(tmp_path):
    d = tmp_path / "shm"
    d.mkdir()
    for n in DEAD + LIVE + OTHER:
        (d / n).write_bytes(b"x")
    old = time.time() - 10
    for n in DEAD + LIVE + OTHER:
        os.utime(d / n, (old, old))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(d / "fastdds_port7415_el"),
                               str(d / "fastdds_fedcba9876543210_el")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    yield d
    holder.kill()
    holder.wait(10)


def test_dead_sets_go_live_sets_stay(shm):
    rep = clean_stale(shm, min_age_s=0.0)
    left = sorted(os.listdir(shm))
    assert sorted(rep.removed) == sorted(DEAD)
    assert left == sorted(LIVE + OTHER)
    assert rep.in_use == 2 and not rep.failed
    assert rep.line().startswith(f"cleaned {len(DEAD)} stale Fast DDS shared-memory files of dead processes")
    for n in ("fastdds_port7415_el", "fastdds_fedcba9876543210_el"):  # the live holder still holds its locks
        with open(shm / n, "rb") as f, pytest.raises(BlockingIOError):
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert clean_stale(shm, min_age_s=0.0).removed == []  # nothing more: idempotent


def test_never_probes_a_lock(shm, monkeypatch):
    """Taking a lock to test it would, for that instant, make a live participant that opens the
    port fail (`open_and_lock_file failed`): the held locks are read from /proc/locks."""
    def no_flock(*_a, **_k):
        raise AssertionError("clean_stale must not take locks")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    monkeypatch.setattr(fcntl, "lockf", no_flock)
    assert sorted(clean_stale(shm, min_age_s=0.0).removed) == sorted(DEAD)


def test_a_young_lock_file_gets_time_to_be_locked(tmp_path):
    d = tmp_path / "shm"
    d.mkdir()
    for n in ("fastdds_port7421", "fastdds_port7421_el"):
        (d / n).write_bytes(b"")
    waited = []
    locked_meanwhile = []

    def sleep(s):  # the owner locks its new file while we wait: then it is in use, kept
        waited.append(s)
        f = open(d / "fastdds_port7421_el", "rb")
        fcntl.flock(f, fcntl.LOCK_EX)
        locked_meanwhile.append(f)

    rep = clean_stale(d, min_age_s=1.0, sleep=sleep)
    assert waited and 0 < waited[0] <= 1.0
    assert rep.removed == [] and rep.in_use == 1
    assert sorted(os.listdir(d)) == ["fastdds_port7421", "fastdds_port7421_el"]
    locked_meanwhile[0].close()


def test_a_live_process_young_files_cost_no_wait(tmp_path):
    """A shared machine always has some participant starting: its new (locked) files must not
    delay a recorder's start."""
    d = tmp_path / "shm"
    d.mkdir()
    for n in ("fastdds_port7431", "fastdds_port7431_el"):
        (d / n).write_bytes(b"")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(d / "fastdds_port7431_el")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"

        def no_sleep(s):
            raise AssertionError(f"waited {s} s for a live process's files")

        rep = clean_stale(d, min_age_s=1.0, sleep=no_sleep)
        assert rep.removed == [] and rep.in_use == 1
    finally:
        holder.kill()
        holder.wait(10)


def test_proc_locks_parsing():
    text = ("1: POSIX  ADVISORY  WRITE 21478 fe:00:2152138 0 EOF\n"
            "2: FLOCK  ADVISORY  WRITE 21471 00:1b:5094 0 EOF\n"
            "2: -> FLOCK  ADVISORY  WRITE 21480 00:1b:5095 0 EOF\n"
            "3: OFDLCK ADVISORY  READ  -1 103:02:77 0 EOF\n")
    assert held_inodes(text) == {(0xfe, 0, 2152138), (0, 0x1b, 5094), (0, 0x1b, 5095), (0x103, 2, 77)}


def test_startup_clean_says_it_in_one_line_and_never_raises(shm, tmp_path):
    lines = []
    startup_clean(lines.append, shm_dir=shm)
    assert len(lines) == 1 and "stale Fast DDS shared-memory files of dead processes" in lines[0]
    lines.clear()
    startup_clean(lines.append, shm_dir=shm)  # nothing left: silent
    startup_clean(lines.append, shm_dir=tmp_path / "missing")
    assert lines == []
