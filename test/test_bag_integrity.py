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
    report = recover(bag)
    assert check_bag(bag, verify_chunks=True).status == COMPLETE
    assert sorted(_listed(bag)) == sorted(present)
    assert not (bag / ".disk_reserve").exists()
    n = sum(1 for _m in BagReader(bag).messages())
    assert n == report.message_count > 0
    code, _out, err = _cli(["info", str(bag)])
    assert code == 0, err
