"""The batch ledger is exactly once (issue 23 "The batch ledger"), on small synthetic bags.

``batch export`` on bags without ``qa.json`` runs the export's own QA, which writes
``qa.json``; that write (and a QA re-run writing the same verdict again) must not make the
next run redo the bag: one ``done`` per bag and stage across clean re-runs and a runner killed
mid-run, and the merged dataset is not rebuilt. A changed verdict is a changed input: that bag,
and only that one, is redone. A file that is not a bag is skipped and counted, not a failed job.
"""
from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from export_bags import write_episode

pytestmark = [pytest.mark.ros, pytest.mark.timeout(600)]

# every readable bag delivered (the synthetic bags' verdicts are not what is under test); QA runs
# on a bag without a verdict, as `robot-capture batch export` does by default
OPTIONS = {"mapping": None, "fps": None, "codec": None, "crf": None, "gop": None, "include_failed": True,
           "robot_type": None, "run_qa": True}


def _day(root: Path, n: int = 3) -> list[Path]:
    day = root / "archive" / "day1"
    bags = [write_episode(day / f"ep_{i}", seconds=1.0, cameras=("head",), camera_hz=15.0, joint_hz=100.0,
                          command_hz=50.0, start_offset_s=10.0 * i, seed=i) for i in range(n)]
    assert not any((b / "qa.json").exists() for b in bags)
    return bags


def _run(bags, out):
    from robot_capture.batch.pool import PoolBackend
    from robot_capture.batch.runner import run_batch

    return run_batch("export", [bags[0].parent], out, PoolBackend(2), params={"options": OPTIONS}, progress=False)


def _finished(out) -> Counter:
    """bag -> number of ``done`` + ``reused`` events of the export stage over every run."""
    from robot_capture.batch.ledger import Ledger

    with Ledger(out) as led:
        return Counter(e["bag"] for e in led.events("export") if e["event"] in ("done", "reused"))


def _dataset_stamp(out) -> tuple:
    info = out / "dataset" / "meta" / "info.json"
    return info.stat().st_ino, info.stat().st_mtime_ns


def test_export_reruns_are_exactly_once_and_a_changed_verdict_redoes_one_bag(tmp_path):
    from robot_capture.episodes.verdict import Finding, Verdict, write_verdict
    from robot_capture.qa.run import qa_episode

    bags = _day(tmp_path)
    out = tmp_path / "out"
    s = _run(bags, out)
    assert s.ok and s.done == 3 and s.ran == 3, s.lines()
    assert all((b / "qa.json").is_file() for b in bags)  # the export's own QA wrote them
    stamp = _dataset_stamp(out)
    for i in range(3):  # clean re-runs: nothing redone, the dataset left as it is
        s = _run(bags, out)
        assert s.ok and s.ran == 0 and s.skipped == 3 and s.done == 3, (i, s.lines())
        assert "unchanged" in s.extra["dataset"], s.extra
    assert _dataset_stamp(out) == stamp
    assert set(_finished(out).values()) == {1} and len(_finished(out)) == 3

    for b in bags:  # QA runs again and writes the same verdict (a new file, a new mtime)
        qa_episode(b, write=True)
    s = _run(bags, out)
    assert s.ran == 0 and s.skipped == 3, s.lines()
    assert _dataset_stamp(out) == stamp

    # another verdict (e.g. `batch qa` with another config) is another input of that bag's export
    write_verdict(bags[1], Verdict(findings=[Finding("gaps", "fail", "camera head: 9 frames missing")]))
    s = _run(bags, out)
    assert s.ok and s.ran == 1 and s.skipped == 2, s.lines()
    counts = _finished(out)
    assert counts[str(bags[1].resolve())] == 2 and counts[str(bags[0].resolve())] == 1
    s = _run(bags, out)
    assert s.ran == 0 and s.skipped == 3, s.lines()


_KILL_AFTER = """
import os, signal, sys
from robot_capture.batch import runner
from robot_capture.batch.pool import PoolBackend
from robot_capture.batch.ledger import Ledger
k = int(sys.argv[1])
real_start = Ledger.start
def start(self, *a, **kw):
    attempt = real_start(self, *a, **kw)
    if len(self.events(event="done")) >= k:
        os.kill(os.getpid(), signal.SIGKILL)  # the runner dies mid-run, a job just handed to a worker
    return attempt
Ledger.start = start
options = {"mapping": None, "fps": None, "codec": None, "crf": None, "gop": None, "include_failed": True,
           "robot_type": None, "run_qa": True}
runner.run_batch("export", [sys.argv[2]], sys.argv[3], PoolBackend(2), params={"options": options}, progress=False)
"""


def test_export_runner_killed_mid_run_then_rerun_is_exactly_once(tmp_path):
    bags = _day(tmp_path, n=4)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", _KILL_AFTER, "1", str(bags[0].parent), str(out)],
                          capture_output=True, text=True, timeout=500, cwd=tmp_path)  # the installed package
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert 1 <= sum(_finished(out).values()) < 4
    s = _run(bags, out)
    assert s.ok and s.done == 4 and s.skipped >= 1, s.lines()
    for _ in range(2):
        s = _run(bags, out)
        assert s.ok and s.ran == 0 and s.skipped == 4, s.lines()
    counts = _finished(out)
    assert sorted(counts) == sorted(str(b.resolve()) for b in bags) and set(counts.values()) == {1}, counts
    import json

    info = json.loads((out / "dataset" / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 4


def test_a_file_that_is_not_a_bag_is_skipped_and_counted(tmp_path, capsys):
    from robot_capture.cli import main

    bags = _day(tmp_path, n=1)
    notes = bags[0].parent / "notes.txt"
    notes.write_text("operator notes, not a bag\n")
    rc = main(["batch", "export", str(bags[0].parent), "--out", str(tmp_path / "out"), "--include-failed",
               "--quiet", "--workers", "1"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "1 done" in text and "0 failed" in text and "skipped 1 non-bag" in text and str(notes) in text, text
    assert "FAILED" not in text
    from robot_capture.batch.ledger import Ledger

    with Ledger(tmp_path / "out") as led:
        assert [Path(r.bag) for r in led.rows("export")] == [bags[0].resolve()]
