"""Disk full on a real small tmpfs, with and without the disk guard (needs root to mount).

Contract (DESIGN.md "Disk full"): metadata.yaml carries the episode labels and the stop
reason; the bag reads (or recovers); a start that cannot succeed is refused; the guard,
checking free space against the bytes written since its last check, stops before the
threshold is overrun even when ``tick`` is never called.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from robot_capture.bag import BagReader, WriterOptions, recover
from robot_capture.bag.errors import IncompleteBagFileError
from robot_capture.bag.metadata import read_metadata
from robot_capture.record.episode import EpisodeInfo, EpisodeState
from robot_capture.record.recorder import DiskLowError, Recorder

pytestmark = pytest.mark.timeout(120)
MiB = 1 << 20


@pytest.fixture
def tmpfs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(rec: Recorder, payload: bytes, limit_s: float = 60.0) -> int:
    """Write 2 kHz-ish bursts of ``payload`` until the recorder stops the episode; never calls tick()."""
    rec.add_topic("/camera/head/image_raw", "sensor_msgs/msg/Image")
    n = 0
    t_end = time.monotonic() + limit_s
    while rec.state == EpisodeState.RECORDING and time.monotonic() < t_end:
        rec.on_message("/camera/head/image_raw", "sensor_msgs/msg/Image", payload, time.time_ns())
        n += 1
    assert rec.state == EpisodeState.IDLE, "the episode never stopped"
    return n


@pytest.mark.parametrize("guard_mb", [0, 8])
def test_disk_full_keeps_labels_and_refuses_a_start_that_cannot_succeed(tmpfs, guard_mb):
    opts = WriterOptions(chunk_size=512 * 1024, flush_interval_s=0.2)
    rec = Recorder(tmpfs, opts, disk_min_free_bytes=guard_mb * MiB)
    info = EpisodeInfo(task="pick cup", operator="ana", scene="lab 2", notes="disk full run")
    bag = rec.start_episode(info)
    payload = np.random.default_rng(0).integers(0, 256, 64 * 1024, dtype=np.uint8).tobytes()
    n = _fill(rec, payload)
    free_after = shutil.disk_usage(tmpfs).free
    reason = "disk_low" if guard_mb else "disk_full"
    print(f"\nguard {guard_mb} MB: wrote {n} x 64 KiB, stop '{reason}', free after close {free_after / MiB:.2f} MiB")

    custom = read_metadata(bag).custom_data
    assert custom["episode.stop_reason"] == reason
    assert custom["episode.task"] == "pick cup" and custom["episode.operator"] == "ana"
    assert custom["episode.scene"] == "lab 2" and custom["episode.success"] == "unknown"
    assert "episode.stop_time_ns" in custom
    assert not (bag / ".disk_reserve").exists()
    try:
        r = BagReader(bag)
    except IncompleteBagFileError:
        recover(bag)
        r = BagReader(bag)
    got = sum(1 for _ in r.messages())
    assert got > 0 and not r.damaged_chunks
    if guard_mb:  # stopped before the threshold was overrun (between ticks, by bytes written)
        assert free_after >= guard_mb * MiB * 0.5, f"guard overran: {free_after / MiB:.2f} MiB left"
        assert r.metadata_records()["episode"]["stop_reason"] == "disk_low"

    with pytest.raises(DiskLowError):
        rec.start_episode(EpisodeInfo(task="again"))
    assert rec.state == EpisodeState.IDLE
    assert sorted(p.name for p in Path(tmpfs).iterdir()) == [bag.name], "a refused start left a directory"
