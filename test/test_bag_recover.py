"""Crash safety: SIGKILL mid-write, truncated and corrupted files, disk full."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mcap.reader import make_reader

from robot_capture.bag import BagReader, BagWriter, WriterOptions, recover
from robot_capture.bag.errors import BagClosedError, BagDiskFullError, IncompleteBagFileError
from robot_capture.bag.metadata import read_metadata

REPO = Path(__file__).resolve().parents[1]
JS = "sensor_msgs/msg/JointState"

CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {test_dir!r})
    from pathlib import Path
    from bag_msgs import g1_joint_names, image, joint_state, ser
    from robot_capture.bag import BagWriter, WriterOptions
    names = g1_joint_names(Path({data_dir!r}))
    # chunks far larger than the data rate: only the flush interval puts data on disk
    w = BagWriter({bag!r}, WriterOptions(flush_interval_s={flush}, compression={comp!r}, chunk_size=256 << 20))
    w.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    w.add_topic("/camera/head/image_raw", "sensor_msgs/msg/Image")
    img = ser(image(0, 0))
    t_start = time.monotonic()
    i = 0
    while True:  # 1 kHz joint states + 30 Hz images, paced on the wall clock
        target = t_start + i * 0.001
        while time.monotonic() < target:
            time.sleep(0.0002)
        now = time.time_ns()
        w.write("/joint_states", ser(joint_state(names, i, now)), now)
        if i % 33 == 0:
            w.write("/camera/head/image_raw", img, now)
        i += 1
        if i % 50 == 0:
            print(i, now, flush=True)
""")


@pytest.mark.parametrize("comp,flush", [("none", 0.5), ("zstd", 1.0)])  # 1.0 s: the default
def test_sigkill_mid_write_then_recover_loses_at_most_flush_interval(tmp_path, data_dir, comp, flush):
    bag = tmp_path / "killed"
    code = CHILD.format(test_dir=str(Path(__file__).parent), data_dir=str(data_dir), bag=str(bag), flush=flush,
                        comp=comp)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        last = 0
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            last = int(line.split()[0])
            if last >= 2500 or time.monotonic() > deadline:
                break
        kill_ns = time.time_ns()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert last >= 2500, "child writer did not run"
    with pytest.raises(IncompleteBagFileError):
        BagReader(bag)
    report = recover(bag)
    assert report.files[0].status == "rebuilt" and report.files[0].backup
    r = BagReader(bag)
    js = list(r.messages(topics=["/joint_states"], decode=True))
    k = len(js)
    assert report.topics["/joint_states"] == k == r.topics["/joint_states"].count
    # a contiguous prefix, bytes intact: message i carries position sin(0.01 i + j)
    import math

    for i in (0, k // 2, k - 1):
        assert js[i].message.position[1] == pytest.approx(math.sin(0.01 * i + 1.0), abs=1e-12)
    lost_s = (kill_ns - js[-1].log_time_ns) / 1e9
    print(f"reported {last} written, recovered {k}, newest recovered message {lost_s:.3f} s before SIGKILL")
    # at most the flush interval, plus scheduling slack on a loaded 2-core machine
    assert lost_s <= flush + 0.3
    assert k >= last - 1000 * (flush + 0.3)
    assert r.topics["/camera/head/image_raw"].count >= 1


def _chunk_layout(path: Path):
    """[(chunk end offset, messages in chunk)] from the chunk and message indexes."""
    out = []
    with open(path, "rb") as f:
        s = make_reader(f).get_summary()
        for ci in s.chunk_indexes:
            n = 0
            for off in ci.message_index_offsets.values():
                f.seek(off + 9 + 2)
                n += struct.unpack("<I", f.read(4))[0] // 16
            out.append((ci.chunk_start_offset + ci.chunk_length, n))
    return out


@pytest.fixture(scope="module")
def small_chunk_bag(tmp_path_factory, data_dir):
    from bag_msgs import g1_joint_names, joint_state, ser

    d = tmp_path_factory.mktemp("trunc") / "orig"
    names = g1_joint_names(data_dir)
    w = BagWriter(d, WriterOptions(compression="zstd", chunk_size=16 * 1024, background_flush=False),
                  custom_data={"task": "truncate me"})
    w.add_topic("/joint_states", JS)
    w.add_metadata("episode", {"task": "truncate me"})
    sent = []
    for i in range(1500):
        data = ser(joint_state(names, i, 1_000_000_000 + i))
        w.write("/joint_states", data, 1_000_000_000 + i * 1_000_000)
        sent.append(data)
    w.close()
    return d, sent


@pytest.mark.parametrize("frac", [0.05, 0.33, 0.5, 0.77, 0.97, 0.999])
def test_truncated_file_recovers_every_complete_chunk(tmp_path, small_chunk_bag, frac):
    src, sent = small_chunk_bag
    d = tmp_path / "orig"
    shutil.copytree(src, d)
    f = d / "orig_0.mcap"
    layout = _chunk_layout(f)
    cut = int(f.stat().st_size * frac)
    os.truncate(f, cut)
    truncated = f.read_bytes()
    (d / "metadata.yaml").unlink()
    expected = sum(n for end, n in layout if end <= cut)
    report = recover(d)
    assert report.message_count == expected
    assert (d / "orig_0.mcap.orig").read_bytes() == truncated  # original kept, unchanged
    got = [m.data for m in BagReader(d).messages()]
    assert got == sent[:expected]
    m = read_metadata(d)
    # no metadata.yaml to take custom_data from: only the recovered-episode marker (bag/recover.py step 3)
    assert m.message_count == expected and {k for k in m.custom_data if not k.startswith("episode.")} == set()
    assert m.custom_data["episode.recovered"] == "true" and m.custom_data["episode.stop_reason"] == "crash"
    assert m.topics[0].type == JS
    if expected:
        assert BagReader(d).metadata_records()["episode"] == {"task": "truncate me"}


def test_recover_is_idempotent_and_keeps_custom_data(tmp_path, small_chunk_bag):
    src, sent = small_chunk_bag
    d = tmp_path / "orig"
    shutil.copytree(src, d)
    f = d / "orig_0.mcap"
    os.truncate(f, f.stat().st_size // 2)
    first = recover(d)
    custom = read_metadata(d).custom_data
    second = recover(d)
    assert second.files[0].status == "intact" and second.topics == first.topics
    assert read_metadata(d).custom_data == custom  # idempotent, the recovered marker included
    assert custom["task"] == "truncate me" and custom["episode.recovered"] == "true"
    assert sorted(p.name for p in d.iterdir()) == ["metadata.yaml", "metadata.yaml.orig", "metadata.yaml.orig.1",
                                                   "orig_0.mcap", "orig_0.mcap.orig"]


def test_corrupted_chunk_is_skipped_and_every_other_chunk_recovered(tmp_path, small_chunk_bag):
    src, sent = small_chunk_bag
    d = tmp_path / "orig"
    shutil.copytree(src, d)
    f = d / "orig_0.mcap"
    layout = _chunk_layout(f)
    data = bytearray(f.read_bytes())
    mid = (layout[4][0] + layout[5][0]) // 2  # garble the middle of chunk 5's payload
    data[mid:mid + 64] = os.urandom(64)
    data = data[: len(data) - 100]  # and drop the footer
    f.write_bytes(bytes(data))
    report = recover(d)
    n_first5 = sum(n for _, n in layout[:5])
    n5 = layout[5][1]
    assert report.message_count == len(sent) - n5
    assert len(report.files[0].damaged_chunks) == 1 and "damaged chunk" in report.format()
    assert [m.data for m in BagReader(d).messages()] == sent[:n_first5] + sent[n_first5 + n5:]


def test_damaged_chunk_with_intact_footer_is_skipped_by_reader_and_recover(tmp_path, small_chunk_bag):
    """Footer intact, one chunk's bytes flipped: BagReader skips it (CRC), recover rebuilds without it."""
    src, sent = small_chunk_bag
    d = tmp_path / "orig"
    shutil.copytree(src, d)
    f = d / "orig_0.mcap"
    layout = _chunk_layout(f)
    data = bytearray(f.read_bytes())
    at = layout[7][0] - 200  # inside chunk 7's compressed records
    data[at] ^= 0x10
    f.write_bytes(bytes(data))
    n_first7, n7 = sum(n for _, n in layout[:7]), layout[7][1]
    want = sent[:n_first7] + sent[n_first7 + n7:]
    r = BagReader(d)
    assert [m.data for m in r.messages()] == want
    assert len(r.damaged_chunks) == 1 and r.damaged_chunks[0].messages == n7
    report = recover(d)
    assert report.files[0].status == "rebuilt" and len(report.files[0].damaged_chunks) == 1
    assert report.message_count == len(want)
    r2 = BagReader(d)
    assert [m.data for m in r2.messages()] == want and not r2.damaged_chunks


def test_unreadable_file_is_moved_aside_not_deleted(tmp_path, small_chunk_bag):
    src, _ = small_chunk_bag
    d = tmp_path / "orig"
    shutil.copytree(src, d)
    (d / "orig_1.mcap").write_bytes(b"not an mcap file at all")
    report = recover(d)
    assert [f.status for f in report.files] == ["intact", "unreadable"]
    assert (d / "orig_1.mcap.orig").read_bytes() == b"not an mcap file at all"
    assert BagReader(d).metadata.relative_file_paths == ["orig_0.mcap"]


DISK_FULL_CHILD = textwrap.dedent("""
    import hashlib, json, resource, signal, sys
    sys.path.insert(0, {test_dir!r})
    from bag_msgs import image, ser
    from robot_capture.bag import BagWriter, WriterOptions
    from robot_capture.bag.errors import BagClosedError, BagDiskFullError
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # get EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
    w = BagWriter({bag!r}, WriterOptions(chunk_size=1024 * 1024, compression={comp!r}, background_flush=False,
                                         async_io={async_io}))
    w.add_topic("/camera/head/image_raw", "sensor_msgs/msg/Image")
    out = {{"accepted": 0, "sha": []}}
    for i in range(100):
        data = ser(image(i, i))   # (Fast-CDR padding bytes are not deterministic: keep hashes)
        out["sha"].append(hashlib.sha256(data).hexdigest())
        try:
            w.write("/camera/head/image_raw", data, 1_000_000_000 + i * 33_000_000)
            out["accepted"] += 1
        except BagDiskFullError as exc:
            out.update(error=type(exc).__name__, errno=exc.errno, lost=exc.lost_messages, msg=str(exc))
            break
    try:
        w.write("/camera/head/image_raw", b"x", 2_000_000_000)
    except BagClosedError as exc:
        out["after"] = type(exc).__name__
    w.close()   # must not raise, must not corrupt
    out["closed"] = True
    out["lost_total"] = w.lost_messages
    print(json.dumps(out))
""")


@pytest.mark.parametrize("comp,async_io", [("none", True), ("lz4", True), ("none", False)])
def test_disk_full_file_size_limit(tmp_path, comp, async_io):
    """RLIMIT_FSIZE makes writes past 3.5 MB fail with EFBIG, like a full disk."""
    bag = tmp_path / "full"
    code = DISK_FULL_CHILD.format(test_dir=str(Path(__file__).parent), bag=str(bag), limit=3_500_000, comp=comp,
                                  async_io=async_io)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["error"] == "BagDiskFullError" and out["errno"] == 27  # EFBIG
    assert out["after"] == "BagClosedError" and out["closed"]
    kept = out["accepted"] + 1 - out["lost_total"]  # the failing write's message was in the lost chunk
    assert kept >= 1
    r = BagReader(bag)  # readable without recover: close() finished the file in the freed room
    got = [hashlib.sha256(m.data).hexdigest() for m in r.messages()]
    assert got == out["sha"][:kept]
    assert read_metadata(bag).message_count == kept
    assert all(p.stat().st_size <= 3_500_000 for p in bag.iterdir())


@pytest.fixture
def tiny_tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_real_enospc_on_tiny_tmpfs(tiny_tmpfs):
    from bag_msgs import image, ser

    w = BagWriter(tiny_tmpfs / "bag", WriterOptions(chunk_size=1024 * 1024))
    w.add_topic("/cam", "sensor_msgs/msg/Image")
    accepted = 0
    sent = []
    with pytest.raises(BagDiskFullError) as err:
        for i in range(100):
            sent.append(ser(image(i, i)))
            w.write("/cam", sent[-1], 1_000_000_000 + i)
            accepted += 1
    assert err.value.errno == 28  # ENOSPC
    with pytest.raises(BagClosedError):
        w.write("/cam", b"x", 5)
    w.close()
    kept = accepted + 1 - w.lost_messages
    r = BagReader(tiny_tmpfs / "bag")
    assert [m.data for m in r.messages()] == sent[:kept]
    assert read_metadata(tiny_tmpfs / "bag").message_count == kept


def test_other_io_error_stops_cleanly(tmp_path, monkeypatch):
    """EIO in the I/O thread: the next write raises BagWriteError, close() keeps what was written."""
    import errno

    import robot_capture.bag.mcap_file as mf
    from robot_capture.bag.errors import BagWriteError

    w = BagWriter(tmp_path / "eio", WriterOptions(chunk_size=4096, background_flush=False))
    w.add_topic("/a", "std_msgs/msg/String")
    payload = b"\x00\x01\x00\x00" + bytes(1000)
    for i in range(20):
        w.write("/a", payload, T := 1_000_000_000 + i)
    w._drain()
    on_disk = w.metadata().message_count
    assert on_disk >= 12
    real = os.writev

    def broken(fd, bufs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(mf.os, "writev", broken)
    with pytest.raises(BagWriteError) as err:
        for i in range(100):
            w.write("/a", payload, T + 1 + i)
    assert not isinstance(err.value, BagDiskFullError) and err.value.errno == errno.EIO
    monkeypatch.setattr(mf.os, "writev", real)
    w.close()
    assert [m.log_time_ns for m in BagReader(tmp_path / "eio").messages()] == \
        [1_000_000_000 + i for i in range(on_disk)]
