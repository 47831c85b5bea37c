"""Recorder node failures over real DDS: SIGKILL mid-episode then `recover` (at most the
flush interval lost), disk full (tmpfs as root, else RLIMIT_FSIZE), disk guard."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest

from _recorder_harness import NodeProc, TestRos, check_bag_readers, image_msg, js_msg

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]

IS_ROOT = os.geteuid() == 0


@pytest.fixture
def ros():
    t = TestRos()
    yield t
    t.close()


def _only_bag(out: Path) -> Path:
    bags = [p for p in out.iterdir() if p.is_dir()]
    assert len(bags) == 1, bags
    return bags[0]


def _indices(bag: Path, topic="/js") -> list[int]:
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import JointState

    from robot_capture.bag import BagReader

    out = []
    for m in BagReader(bag).messages(topics=[topic]):
        st = deserialize_message(bytes(m.data), JointState).header.stamp
        out.append((st.sec - 1000) * 1000 + st.nanosec // 1_000_000)
    return out


def test_sigkill_then_recover_loses_at_most_flush_interval(tmp_path, ros):
    from sensor_msgs.msg import JointState

    from robot_capture.bag import IncompleteBagFileError, BagReader, recover

    flush_s, rate_hz = 0.5, 200.0
    out = tmp_path / "out"
    rec = NodeProc(tmp_path, output_dir=str(out), topics=["/js"], auto_start=True, flush_interval_s=flush_s,
                   compression="zstd", disk_min_free_mb=0.0, discovery_interval_s=0.3)
    try:
        pub = ros.publisher(JointState, "/js")
        assert ros.wait_subscribed(pub), rec.output()
        ros.spin_for(0.5)
        sent_t = []
        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < 3.0:  # absolute-deadline loop at rate_hz
            pub.publish(js_msg(i))
            sent_t.append(time.monotonic())
            i += 1
            time.sleep(max(0.0, t0 + i / rate_hz - time.monotonic()))
        t_kill = time.monotonic()
        rec.proc.send_signal(signal.SIGKILL)
        rec.proc.wait(10)
    finally:
        rec.close()
    bag = _only_bag(out)
    with pytest.raises(IncompleteBagFileError):
        BagReader(bag)
    report = recover(bag)
    got = _indices(bag)
    assert check_bag_readers(bag)["/js"] == len(got)
    assert report.message_count >= len(got) > 0
    assert got == list(range(len(got))), "recovered messages must be a gap-free prefix"
    must_have = sum(1 for t in sent_t if t < t_kill - flush_s - 0.25)  # flush interval + delivery/I/O slack
    lost = len(sent_t) - len(got)
    print(f"published {len(sent_t)}, recovered {len(got)}, lost {lost} "
          f"({lost / rate_hz:.2f} s of data; flush interval {flush_s} s)")
    assert len(got) >= must_have, f"lost {lost} messages = {lost / rate_hz:.2f} s > flush interval {flush_s} s"


@pytest.fixture
def small_fs(tmp_path):
    """A 6 MB tmpfs (needs root); None when it cannot be mounted."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if not IS_ROOT:
        yield None
        return
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        yield None
        return
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (3_000_000, 3_000_000))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing


@pytest.mark.parametrize("method", ["tmpfs", "rlimit_fsize"])
def test_disk_full_stops_episode_cleanly(tmp_path, ros, small_fs, method):
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from robot_capture.bag import BagReader, IncompleteBagFileError, recover

    if method == "tmpfs":
        if small_fs is None:
            pytest.skip("tmpfs needs root; the rlimit_fsize variant covers disk-full without it")
        out = small_fs / "out"
    else:
        out = tmp_path / "out"
    rec = NodeProc(tmp_path, output_dir=str(out), topics=["/cam"], auto_start=True, compression="none",
                   chunk_size=256 * 1024, flush_interval_s=0.2, disk_min_free_mb=0.0, discovery_interval_s=0.3)
    if method == "rlimit_fsize":  # restart with a file-size limit (EFBIG, counted as disk full)
        rec.close()
        rec.proc = subprocess.Popen(rec.proc.args, stdout=open(rec.log, "wb"), stderr=subprocess.STDOUT,
                                    preexec_fn=_limit_file_size)
        rec._fh = open(os.devnull, "wb")
    try:
        ros.listen_diagnostics()
        pub = ros.publisher(Image, "/cam", depth=100)
        assert ros.wait_subscribed(pub), rec.output()
        sent = []
        for i in range(40):  # 40 x 230 kB = 9 MB > the room
            m = image_msg(i, 320, 240)
            pub.publish(m)
            sent.append(m)
            ros.spin_for(0.05)
        assert ros.spin_until(lambda: "disk_full" in ros.diag_values("recorder").get("_message", ""), 20), \
            ros.diag_values("recorder")
        top = ros.diag_values("recorder")
        assert top["_level"] in (2, b"\x02") and top["state"] == "idle"
        assert rec.alive()
        assert not ros.call("/recorder/stop_episode").success  # already stopped; the node still answers
    finally:
        assert rec.stop() == 0, rec.output()
    bag = _only_bag(out)
    try:
        r = BagReader(bag)
    except IncompleteBagFileError:  # no room left for the footer: recover rebuilds it
        if method == "tmpfs":
            subprocess.run(["mount", "-o", "remount,size=32m", str(small_fs)], check=True)
        recover(bag)
        r = BagReader(bag)
    got = [deserialize_message(bytes(m.data), Image) for m in r.messages()]
    assert 0 < len(got) < len(sent)
    assert check_bag_readers(bag)["/cam"] == len(got)
    assert got == sent[:len(got)], "what was written is intact and in order"
    assert r.metadata_records().get("episode", {}).get("stop_reason", "disk_full") == "disk_full"


def test_disk_guard_threshold(tmp_path, ros, small_fs):
    from sensor_msgs.msg import Image

    from robot_capture.bag import BagReader

    if small_fs is None:
        pytest.skip("needs a small filesystem (tmpfs as root); Recorder's guard is unit-tested with a fake")
    out = small_fs / "out"
    rec = NodeProc(tmp_path, output_dir=str(out), topics=["/cam"], auto_start=True, compression="none",
                   chunk_size=256 * 1024, flush_interval_s=0.2, disk_min_free_mb=3.0, discovery_interval_s=0.3,
                   diagnostics_rate_hz=5.0)
    try:
        ros.listen_diagnostics()
        pub = ros.publisher(Image, "/cam", depth=100)
        assert ros.wait_subscribed(pub), rec.output()
        for i in range(40):
            pub.publish(image_msg(i, 320, 240))
            ros.spin_for(0.1)
            if "disk guard" in ros.diag_values("recorder").get("_message", ""):
                break
        assert ros.spin_until(lambda: "disk guard" in ros.diag_values("recorder").get("_message", ""), 10)
        assert rec.alive()
        assert not ros.call("/recorder/start_episode").success  # refused while space is low
    finally:
        assert rec.stop() == 0, rec.output()
    bag = _only_bag(out)
    r = BagReader(bag)  # closed cleanly: no recover needed
    assert (bag / "metadata.yaml").is_file()
    assert r.metadata_records()["episode"]["stop_reason"] == "disk_low"
    assert r.topics["/cam"].count > 0
    assert check_bag_readers(bag)["/cam"] == r.topics["/cam"].count
