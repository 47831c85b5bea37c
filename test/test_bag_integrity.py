"""Issue 23, "Data and the gate": no reader takes a crashed split bag for the whole recording.

A real recording (the recorder core, in a child process, splitting every 0.3 s, metadata.yaml
rewritten every 0.5 s) is SIGKILLed once its folder holds closed split files that its
metadata.yaml does not list yet, plus the open one. Then every reader (``info``, ``qa``,
``export``, ``batch``, ``report``, ``play``) says "incomplete: run `robot-capture recover`"
in one line naming the bag, exits non-zero, and neither judges nor exports it as whole. After
``recover`` the bag is whole (every file listed, no ``.disk_reserve`` left behind) and reads.
The kill waits on the folder's state, never on time.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from robot_capture.bag import BagReader, recover
from robot_capture.bag.completeness import COMPLETE, INCOMPLETE, check_bag, list_mcap_files
from robot_capture.bag.errors import IncompleteBagFileError
from robot_capture.cli import main as cli_main

pytestmark = pytest.mark.timeout(300)

CHILD = textwrap.dedent("""
    import os, struct, sys, time
    from robot_capture.bag import WriterOptions
    from robot_capture.record.episode import EpisodeInfo
    from robot_capture.record.recorder import Recorder
    rec = Recorder(sys.argv[1], WriterOptions(max_bag_duration_s=0.3, metadata_interval_s=0.5, chunk_size=1 << 16),
                   disk_min_free_bytes=0)
    rec.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    rec.add_topic("/camera/head/image_raw", "sensor_msgs/msg/Image")
    img = os.urandom(20_000)
    rec.start_episode(EpisodeInfo(task="killed", operator="alice"))
    print("STARTED", flush=True)
    i = 0
    while True:  # until killed: 500 Hz joints, 25 Hz images, paced on the clock
        now = time.time_ns()
        rec.on_message("/joint_states", "sensor_msgs/msg/JointState", struct.pack("<Q", i) + b"j" * 200, now)
        if i % 20 == 0:
            rec.on_message("/camera/head/image_raw", "sensor_msgs/msg/Image", img, now)
        i += 1
        time.sleep(0.002)
""")


def _listed(bag: Path) -> list[str] | None:
    try:
        doc = yaml.safe_load((bag / "metadata.yaml").read_text())
        return list(doc["rosbag2_bagfile_information"]["relative_file_paths"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


@pytest.fixture(scope="module")
def killed_split_bag(tmp_path_factory):
    """(bag dir, files listed by its metadata.yaml, files in its folder) of a SIGKILLed split recording."""
    out = tmp_path_factory.mktemp("killed")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "STARTED"
        (bag,) = [p for p in out.iterdir() if p.is_dir()]
        deadline = time.monotonic() + 120  # a bound for a starved machine, not a speed figure
        while time.monotonic() < deadline:
            listed = _listed(bag)
            present = [p.name for p in list_mcap_files(bag)]
            # >= 2 listed files, and >= 2 more in the folder: a closed unlisted split + the open one
            if listed and len(listed) >= 2 and len(present) >= len(listed) + 2:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
        else:
            pytest.fail("the recording never got ahead of its metadata.yaml")
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    listed = _listed(bag)
    present = [p.name for p in list_mcap_files(bag)]
    assert set(listed) < set(present), (listed, present)
    return bag, listed, present


def _cli(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(argv)
    return code, out.getvalue(), err.getvalue()


def _says_incomplete(text: str, bag: Path) -> bool:
    return any(f"{bag}: incomplete: run `robot-capture recover" in line for line in text.splitlines())


def test_check_bag_and_reader_call_it_incomplete(killed_split_bag):
    bag, listed, present = killed_split_bag
    got = check_bag(bag)
    assert got.status == INCOMPLETE and not got.ok
    unlisted = sorted(set(present) - set(listed))
    assert all(n in got.line() for n in unlisted[:4]), got.line()
    assert "no summary/footer" in got.line()  # the file open at the kill
    with pytest.raises(IncompleteBagFileError) as exc:
        BagReader(bag)
    assert _says_incomplete(str(exc.value), bag)


def test_info_says_incomplete_and_exits_nonzero(killed_split_bag):
    bag, _listed_files, _present = killed_split_bag
    code, out, err = _cli(["info", str(bag)])
    assert code != 0 and _says_incomplete(err, bag) and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and out == ""
    code, out, err = _cli(["info", str(bag.parent)])  # the folder table
    assert code != 0 and _says_incomplete(err, bag)
    assert "incomplete" in out.splitlines()[1] and "1 incomplete" in out


def test_qa_says_incomplete_fails_and_does_not_judge(killed_split_bag, tmp_path):
    bag, _l, _p = killed_split_bag
    code, out, err = _cli(["qa", "--no-write", "--json", str(bag)])
    assert code != 0, out
    (row,) = [json.loads(x) for x in out.splitlines()]
    assert row["verdict"] == "fail" and [f["check"] for f in row["findings"]] == ["bag"]
    assert _says_incomplete(row["findings"][0]["message"], bag)


def test_export_and_report_and_play_refuse(killed_split_bag, tmp_path):
    bag, _l, _p = killed_split_bag
    code, out, err = _cli(["export", str(bag), "--out", str(tmp_path / "ds"), "--include-failed",
                           "--no-progress", "--json"])
    assert code != 0, (out, err)
    (res,) = json.loads(out)["results"]
    assert res["status"] == "error" and res["reason"].startswith("incomplete: run `robot-capture recover")
    code, out, err = _cli(["export", str(bag), "--out", str(tmp_path / "ds"), "--no-progress"])
    assert code != 0 and _says_incomplete(out, bag), out
    assert not (tmp_path / "ds" / "meta" / "info.json").exists()

    code, out, err = _cli(["report", str(bag.parent), "--out", str(tmp_path / "r.html")])
    assert code != 0 and _says_incomplete(err, bag), err
    assert "1 fail" in out

    code, out, err = _cli(["play", str(bag)])  # refused before any DDS is started
    assert code != 0 and _says_incomplete(err, bag), err


def test_batch_fails_the_jobs(killed_split_bag, tmp_path):
    bag, _l, _p = killed_split_bag
    for stage in ("qa", "export"):
        code, out, err = _cli(["batch", stage, str(bag), "--out", str(tmp_path / stage), "--workers", "1"])
        assert code != 0, (stage, out, err)
        assert _says_incomplete(out + err, bag), (stage, out, err)


def test_recover_makes_it_whole_and_leaves_no_reserve(killed_split_bag, tmp_path):
    import shutil

    src, _l, present = killed_split_bag
    bag = tmp_path / src.name
    shutil.copytree(src, bag)
    assert (bag / ".disk_reserve").exists()  # the recorder's closing reserve, left by the kill
    code, _out, _err = _cli(["qa", str(bag)])  # judged incomplete: a fail verdict in qa.json
    assert code == 1 and (bag / "qa.json").exists()
    code, out, err = _cli(["recover", "-q", str(bag)])
    assert code == 0, err
    assert not (bag / ".disk_reserve").exists()
    assert sorted(_listed(bag)) == sorted(present)
    assert check_bag(bag, verify_chunks=True).status == COMPLETE
    n = sum(1 for _m in BagReader(bag).messages())
    assert n == BagReader(bag).metadata.message_count > 0 and f": {n} messages" in out
    # the verdict of the incomplete bag is set aside, not left to keep the episode out of an export
    assert not (bag / "qa.json").exists() and (bag / "qa.json.orig").exists() and "qa.json.orig" in out
    code, _out, err = _cli(["info", str(bag)])
    assert code == 0, err


# ---- a damaged chunk never passes the gate (item 2) -------------------------------------------
def _two_file_bag(d: Path, compression: str = "none") -> Path:
    """A bag of two split files, 2 topics, small chunks (every chunk has a CRC)."""
    import struct

    from robot_capture.bag import BagWriter, WriterOptions

    w = BagWriter(d, WriterOptions(compression=compression, chunk_size=4096, background_flush=False),
                  custom_data={"episode.task": "t", "episode.operator": "o", "episode.success": "true"})
    w.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    w.add_topic("/camera/head/image_raw", "sensor_msgs/msg/Image")
    t0 = 1_700_000_000_000_000_000
    for i in range(1000):
        w.write("/joint_states", struct.pack("<Q", i) + bytes(range(100)), t0 + i * 2_000_000)
        if i % 10 == 0:
            w.write("/camera/head/image_raw", struct.pack("<Q", i) + bytes(800), t0 + i * 2_000_000)
        if i == 499:
            w.split()
    w.close()
    return d


def _chunk_offsets(f: Path) -> list[tuple[int, int]]:
    from mcap.reader import make_reader

    with open(f, "rb") as h:
        return [(ci.chunk_start_offset, ci.chunk_length) for ci in make_reader(h).get_summary().chunk_indexes]


def _flip(f: Path, pos: int, bit: int = 0x04) -> None:
    raw = bytearray(f.read_bytes())
    raw[pos] ^= bit
    f.write_bytes(bytes(raw))


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_damaged_chunk_fails_qa_and_is_not_exported(tmp_path, compression):
    bag = _two_file_bag(tmp_path / "bag", compression)
    f = list_mcap_files(bag)[1]
    off, length = _chunk_offsets(f)[3]
    _flip(f, off + length - 50)  # a payload byte: only the chunk CRC can tell
    code, out, err = _cli(["qa", "--no-write", "--json", str(bag)])
    row = json.loads(out)
    assert code == 1 and row["verdict"] == "fail", out
    assert any(f["check"] == "bag" and "damaged: run `robot-capture recover" in f["message"]
               for f in row["findings"])
    assert not any("could not run" in f["message"] and f["severity"] != "fail" for f in row["findings"])

    code, out, err = _cli(["export", str(bag), "--out", str(tmp_path / "ds"), "--include-failed",
                           "--no-progress", "--json"])
    (res,) = json.loads(out)["results"]
    assert res["status"] == "skipped" and res["reason"].startswith("damaged: run `robot-capture recover"), res
    assert not (tmp_path / "ds" / "meta" / "info.json").exists()

    assert check_bag(bag).status == COMPLETE  # the files are whole ...
    got = check_bag(bag, verify_chunks=True)
    assert got.status == "damaged"  # ... one chunk is not
    assert ("CRC mismatch" if compression == "none" else "zstd decompression failed") in got.line()

    recover(bag)
    assert check_bag(bag, verify_chunks=True).status == COMPLETE


def test_a_check_that_cannot_run_on_damaged_data_fails(tmp_path):
    """A damaged message index (not covered by any CRC) makes the QA read other bytes than the
    index says: the check that needs them fails (not 'warn ... could not run')."""
    import struct

    from mcap.reader import make_reader

    from robot_capture.qa.run import qa_episode

    bag = _two_file_bag(tmp_path / "bag")
    f = list_mcap_files(bag)[0]
    with open(f, "rb") as h:
        ci = make_reader(h).get_summary().chunk_indexes[2]
    (cid, mi_off), *_ = sorted(ci.message_index_offsets.items())
    raw = bytearray(f.read_bytes())
    entry = mi_off + 15 + 16  # the second (log time, offset) entry of that MessageIndex record
    struct.pack_into("<Q", raw, entry + 8, struct.unpack_from("<Q", raw, entry + 8)[0] + 3)  # offset + 3
    f.write_bytes(bytes(raw))
    v = qa_episode(bag, write=False)
    assert v.verdict == "fail"
    bad = [x for x in v.findings if "damaged data" in x.message]
    assert bad and all(x.severity == "fail" for x in bad), [x.message for x in v.findings]
    assert check_bag(bag, verify_chunks=True).status == COMPLETE  # every chunk is fine: the index is not


# ---- channel definitions from the bag's other files (item 3) ----------------------------------
def _channel_records(f: Path) -> dict[str, tuple[int, int]]:
    """{topic: (offset, record length)} of the Channel records before the first chunk."""
    import struct

    raw = f.read_bytes()
    out, pos = {}, 8
    while pos + 9 <= len(raw):
        op, length = struct.unpack_from("<BQ", raw, pos)
        if op == 0x06:
            break
        if op == 0x04:
            n = struct.unpack_from("<I", raw, pos + 9 + 4)[0]
            out[raw[pos + 9 + 8:pos + 9 + 8 + n].decode()] = (pos, 9 + length)
        pos += 9 + length
    return out


def test_recover_takes_channel_definitions_from_the_other_files(tmp_path):
    import struct

    bag = _two_file_bag(tmp_path / "bag")
    want = [(m.topic, m.log_time_ns, m.data) for m in BagReader(bag).messages()]
    f = list_mcap_files(bag)[0]
    raw = bytearray(f.read_bytes())
    for off, n in _channel_records(f).values():  # every Channel record of the first file ...
        raw[off:off + n] = bytes(n)
    summary_start = struct.unpack_from("<Q", raw, len(raw) - 8 - 20)[0]
    raw[summary_start + 20] ^= 0x01  # ... and its summary (fails its CRC): no copy of a definition left
    f.write_bytes(bytes(raw))

    report = recover(bag)
    got = [(m.topic, m.log_time_ns, m.data) for m in BagReader(bag).messages()]
    assert got == want  # every message: all chunks were intact
    first = next(x for x in report.files if x.path == str(f))
    assert first.status == "rebuilt" and first.borrowed == ["/camera/head/image_raw", "/joint_states"]
    assert "definitions from the bag's other files" in report.format()
    assert BagReader(bag).topics["/joint_states"].type == "sensor_msgs/msg/JointState"


def test_recover_does_not_borrow_a_definition_the_other_files_disagree_on(tmp_path):
    """Three files; the other two give channel id 1 different topics: the damaged file's
    messages are not attributed to either (dropped, as before) rather than to a topic that
    may be wrong."""
    import shutil
    import struct

    from mcap.reader import make_reader

    from robot_capture.bag import BagWriter, WriterOptions

    bag = _two_file_bag(tmp_path / "bag")
    f0, f1 = list_mcap_files(bag)
    swapped = tmp_path / "swapped"  # a file whose channel 1 is the camera
    w = BagWriter(swapped, WriterOptions(chunk_size=4096, background_flush=False))
    w.add_topic("/camera/head/image_raw", "sensor_msgs/msg/Image")
    w.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    w.write("/camera/head/image_raw", bytes(16), 1_800_000_000_000_000_000)
    w.write("/joint_states", bytes(16), 1_800_000_000_000_000_001)
    w.close()
    shutil.copy(list_mcap_files(swapped)[0], bag / f"{bag.name}_2.mcap")
    (bag / "metadata.yaml").unlink()
    with open(bag / f"{bag.name}_2.mcap", "rb") as h:
        assert make_reader(h).get_summary().channels[1].topic == "/camera/head/image_raw"
    orig = {(m.topic, m.log_time_ns, m.data) for m in BagReader(bag).messages()}
    lost = {(m.topic, m.log_time_ns, m.data) for m in BagReader(f0).messages()}
    raw = bytearray(f0.read_bytes())
    for off, n in _channel_records(f0).values():
        raw[off:off + n] = bytes(n)
    summary_start = struct.unpack_from("<Q", raw, len(raw) - 8 - 20)[0]
    raw[summary_start + 20] ^= 0x01
    f0.write_bytes(bytes(raw))

    report = recover(bag)
    first = next(x for x in report.files if x.path == str(f0))
    assert first.status == "unreadable" and not first.borrowed  # the ids disagree: nothing borrowed
    got = {(m.topic, m.log_time_ns, m.data) for m in BagReader(bag).messages()}
    assert got == orig - lost  # the other files whole, nothing under a wrong topic


def test_a_bag_being_recorded_is_recording_not_incomplete(tmp_path):
    """The live lock wins: a bag whose writer is open (files without footer, split files that
    metadata.yaml does not list yet) is 'being recorded', and nothing calls it incomplete."""
    from robot_capture.bag import BagWriter, WriterOptions

    bag = tmp_path / "live"
    w = BagWriter(bag, WriterOptions(chunk_size=4096, background_flush=False))
    try:
        w.add_topic("/joint_states", "sensor_msgs/msg/JointState")
        w.write("/joint_states", bytes(64), 1_700_000_000_000_000_000)
        w.split()
        w.write("/joint_states", bytes(64), 1_700_000_001_000_000_000)
        assert check_bag(bag).status == "recording"
        with pytest.raises(IncompleteBagFileError) as exc:
            BagReader(bag)
        assert "being recorded right now" in str(exc.value) and "incomplete" not in str(exc.value)
        code, out, err = _cli(["info", str(bag)])
        assert code == 0 and "being recorded right now" in out, (out, err)
        code, out, err = _cli(["export", str(bag), "--out", str(tmp_path / "ds"), "--no-progress", "--json"])
        (res,) = json.loads(out)["results"]
        assert res["status"] == "skipped" and "being recorded" in res["reason"]
    finally:
        w.close()
    assert check_bag(bag, verify_chunks=True).status == COMPLETE
