"""The flush bound under starvation (issue 23, "63 messages lost"): the writer seals aged chunks
on its own clock, on a thread that never waits for the disk, and a close hands the last chunk
to the I/O thread before it waits for anything.

A blocked ``fdatasync`` stands in for a disk that takes seconds to sync on a loaded machine
(the old timer thread did both: while it synced, no aged chunk was sealed, and ``close`` waited
for it before sealing the last chunk). The tests wait on state (the file grows) with a generous
bound; no timing is asserted.
"""
from __future__ import annotations

import os
import threading
import time

import pytest

from robot_capture.bag import BagReader, BagWriter, WriterOptions
from robot_capture.bag import writer as writer_mod

pytestmark = pytest.mark.timeout(60)
BOUND_S = 15.0  # a wait on state on a loaded machine, not a figure


def _wait(pred, timeout=BOUND_S):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


@pytest.fixture
def stuck_sync(monkeypatch):
    """The writer's background ``os.fdatasync`` blocks until the test ends (the final one at close,
    which a close must do, is real); yields the list of blocked calls."""
    release = threading.Event()
    calls = []
    real = os.fdatasync

    def fdatasync(fd):  # only the writer's background sync (bag-sync-*, formerly bag-timer-*) is slow
        if not threading.current_thread().name.startswith(("bag-sync", "bag-timer")):
            return real(fd)
        calls.append(fd)
        release.wait(60)

    monkeypatch.setattr(writer_mod.os, "fdatasync", fdatasync)
    yield calls
    release.set()


def _writer(tmp_path):
    w = BagWriter(tmp_path / "bag", WriterOptions(flush_interval_s=0.2, chunk_size=64 << 20, fsync=True,
                                                   metadata_interval_s=0.0))
    w.add_topic("/js", "sensor_msgs/msg/JointState")
    return w


def test_a_slow_sync_never_holds_back_sealing(tmp_path, stuck_sync):
    w = _writer(tmp_path)
    path = w.current_file
    w.write("/js", b"\0" * 64, 1)
    assert _wait(lambda: stuck_sync), "the first chunk was never synced"  # the sync is now stuck
    size = os.path.getsize(path)
    w.write("/js", b"\1" * 64, 2)  # no later write: only the writer's own clock can seal it
    assert _wait(lambda: os.path.getsize(path) > size), \
        "the aged chunk waited behind a slow fdatasync: the flush bound does not hold"
    stuck_sync.clear()


def test_close_hands_the_last_chunk_over_before_waiting(tmp_path, stuck_sync):
    w = _writer(tmp_path)
    path = w.current_file
    w.write("/js", b"\0" * 64, 1)
    assert _wait(lambda: stuck_sync)
    size = os.path.getsize(path)
    w.write("/js", b"\1" * 64, 2)
    closer = threading.Thread(target=w.close, daemon=True)
    closer.start()
    assert _wait(lambda: os.path.getsize(path) > size), \
        "close waited for the sync thread before writing the data it already had"
    stuck_sync.clear()


def test_a_closed_bag_still_reads_whole(tmp_path):
    """Sanity of the split threads: periodic metadata, sync, close order; every message back."""
    w = BagWriter(tmp_path / "bag", WriterOptions(flush_interval_s=0.1, metadata_interval_s=0.05))
    w.add_topic("/js", "sensor_msgs/msg/JointState")
    for i in range(50):
        w.write("/js", bytes([i % 256]) * 32, i + 1)
        time.sleep(0.004)
    assert _wait(lambda: (tmp_path / "bag" / "metadata.yaml").exists())
    w.close()
    r = BagReader(tmp_path / "bag")
    assert [m.log_time_ns for m in r.messages()] == list(range(1, 51))
    assert r.metadata.message_count == 50


def test_close_never_waits_for_a_sync_in_flight(tmp_path, stuck_sync):
    """The stop path runs on the recorder's executor thread: while it waits, nothing is taken
    from DDS. A close must not wait for the background fdatasync (seconds on a loaded disk)."""
    w = _writer(tmp_path)
    w.write("/js", b"\0" * 64, 1)
    assert _wait(lambda: stuck_sync)
    w.write("/js", b"\1" * 64, 2)
    closer = threading.Thread(target=w.close, daemon=True)
    closer.start()
    closer.join(BOUND_S)
    assert not closer.is_alive(), "close waited for a stuck fdatasync"
    r = BagReader(tmp_path / "bag")
    assert [m.log_time_ns for m in r.messages()] == [1, 2]
    stuck_sync.clear()
