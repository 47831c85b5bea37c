"""``robot-capture batch`` on the local process pool, over real bags from the simulated floor.

The ledger, skip/redo on re-run, bad input (a non-bag file: skipped and counted; a truncated
bag: a failed job), a worker killed
by SIGKILL (retried; past --retries recorded as failed), and the runner itself killed mid-run
(the re-run finishes the rest and does no job twice). The stage is ``retarget`` (the same
function as ``robot-capture retarget BAG``); the qa and export stages are in test_batch_stages.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from _batch_bags import archive

pytestmark = [pytest.mark.ros, pytest.mark.xdist_group("sim_floor"), pytest.mark.timeout(240)]


def _ledger(out):
    from robot_capture.batch.ledger import Ledger

    return Ledger(out)


def _commands(bag) -> list[tuple]:
    """(log time, stamp, joint names, positions, velocities) of each /retarget/joint_command (decoded:
    the serializer leaves CDR padding bytes unset, so the raw bytes of equal messages can differ)."""
    from robot_capture.bag.reader import BagReader

    with BagReader(bag) as r:
        return [(m.log_time_ns, m.message.header.stamp.sec, m.message.header.stamp.nanosec, tuple(m.message.name),
                 tuple(m.message.position), tuple(m.message.velocity))
                for m in r.messages(topics=["/retarget/joint_command"], decode=True)]


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    bags, bad = archive(root, n=12)
    return root, bags, bad


def test_retarget_pool_matches_single_bag_and_records_bad_input(day, capsys):
    from robot_capture.cli import main
    from robot_capture.offline.bag_retarget import retarget_bag

    root, bags, bad = day
    out = root / "out_pool"
    rc = main(["batch", "retarget", str(bags[0].parent), "--out", str(out), "--robot", "h1", "--workers", "2",
               "--quiet"])
    text = capsys.readouterr().out
    assert rc == 1, text  # a truncated bag: non-zero exit
    assert "12 done" in text and "1 failed" in text
    assert "skipped 1 non-bag" in text and str(bad["not_bag"]) in text  # skipped, counted, not a failure
    assert f"FAILED {bad['not_bag']}" not in text
    assert f"FAILED {bad['truncated']}: IncompleteBagFileError" in text
    with _ledger(out) as led:
        rows = {Path(r.bag): r for r in led.rows("retarget")}
    assert len(rows) == 13  # the non-bag file is no job
    for b in bags:
        r = rows[b.resolve()]
        assert r.status == "done" and r.attempts == 1 and len(r.sha256) == 64 and r.duration_s > 0
        assert "h1" in r.pipeline and r.error == ""
    assert len({rows[b.resolve()].sha256 for b in bags}) == 12  # relabelled copies: distinct content
    assert rows[bad["truncated"].resolve()].status == "failed"
    assert "IncompleteBagFileError" in rows[bad["truncated"].resolve()].error
    # the same bytes as the single-bag function the `retarget BAG` command calls
    for b in (bags[0], bags[1]):
        single = root / f"single_{b.name}"
        retarget_bag(b, single, robot="h1")
        got = _commands(out / "bags" / b.name)
        assert got and got == _commands(single)


def test_rerun_skips_done_redoes_changed_and_failed(day, capsys):
    from robot_capture.batch.pool import PoolBackend
    from robot_capture.batch.runner import run_batch
    from robot_capture.episodes import relabel

    root, bags, bad = day
    out = root / "out_rerun"
    s1 = run_batch("retarget", [bags[0].parent], out, PoolBackend(2), params={"robot": "g1", "source": "auto"},
                   progress=False)
    assert s1.done == 12 and s1.failed == 1 and s1.ran == 13
    relabel(bags[3], notes="changed after the first run")  # content changed: redo
    os.utime(next(bags[5].glob("*.mcap")))  # touched, same bytes: rehashed, not redone
    s2 = run_batch("retarget", [bags[0].parent], out, PoolBackend(2), params={"robot": "g1", "source": "auto"},
                   progress=False)
    assert s2.skipped == 10 and s2.ran == 3 and s2.reused == 1 and s2.done == 12 and s2.failed == 1
    with _ledger(out) as led:
        done = [e["bag"] for e in led.events("retarget", "done")]
        reused = [e["bag"] for e in led.events("retarget", "reused")]
        row3 = led.get("retarget", str(bags[3].resolve()))
    assert done.count(str(bags[3].resolve())) == 2 and row3.attempts == 2
    assert reused == [str(bags[5].resolve())]
    assert len(done) == 13  # 12 once, the changed one twice
    # another pipeline (robot) is another job: all redone
    s3 = run_batch("retarget", bags[:2], out, PoolBackend(2), params={"robot": "h1", "source": "auto"},
                   progress=False)
    assert s3.skipped == 0 and s3.ran == 2 and s3.done == 2


class _KillingPool:
    """A PoolBackend whose first start(s) of chosen bags SIGKILL the worker that took the job."""

    def __init__(self, inner, victims: set, times: int):
        self.inner, self.victims, self.times, self.killed = inner, victims, times, []
        self.name = inner.name

    def describe(self):
        return self.inner.describe()

    def run(self, jobs, on_start, on_result, on_crash):
        def start(job, pid):
            on_start(job, pid)
            if job["bag"] in self.victims and self.killed.count(job["bag"]) < self.times:
                self.killed.append(job["bag"])
                os.kill(pid, signal.SIGKILL)

        self.inner.run(jobs, start, on_result, on_crash)


def test_killed_worker_is_retried_and_gives_up_after_retries(day):
    from robot_capture.batch.pool import PoolBackend
    from robot_capture.batch.runner import run_batch

    root, bags, _bad = day
    out = root / "out_kill"
    once, always = str(bags[2].resolve()), str(bags[5].resolve())
    backend = _KillingPool(PoolBackend(2, retries=1), {once, always}, times=1)
    s = run_batch("retarget", bags[:6], out, backend, params={"robot": "g1", "source": "auto"}, progress=False)
    assert s.done == 6 and s.failed == 0 and s.crashes == 2
    with _ledger(out) as led:
        assert led.get("retarget", once).attempts == 2 and led.get("retarget", once).status == "done"
        died = led.events("retarget", "worker_died")
    assert len(died) == 2 and all("SIGKILL" in e["detail"] and "retrying" in e["detail"] for e in died)
    assert (out / "bags" / bags[2].name / "metadata.yaml").is_file()
    # killed on every attempt: recorded as failed with the reason, the others finish
    out2 = root / "out_kill_always"
    backend = _KillingPool(PoolBackend(2, retries=1), {always}, times=99)
    s = run_batch("retarget", bags[:2] + [bags[5]], out2, backend, params={"robot": "g1", "source": "auto"},
                  progress=False)
    assert s.done == 2 and s.failed == 1 and backend.killed == [always, always]
    (path, reason), = s.failures
    assert path == always and "SIGKILL" in reason and "gave up after 2 attempt(s)" in reason


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
runner.run_batch("retarget", [sys.argv[2]], sys.argv[3], PoolBackend(2), params={"robot": "g1", "source": "auto"},
                 progress=False)
"""


def test_runner_killed_mid_run_then_rerun_finishes_the_rest_once(day):
    from robot_capture.batch.pool import PoolBackend
    from robot_capture.batch.runner import run_batch

    root, bags, _bad = day
    out = root / "out_runner_kill"
    proc = subprocess.run([sys.executable, "-c", _KILL_AFTER, "5", str(bags[0].parent), str(out)],
                          capture_output=True, text=True, timeout=300, cwd=root)  # not the checkout: import the installed package
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    with _ledger(out) as led:
        first = {r.bag: r.status for r in led.rows("retarget")}
    assert list(first.values()).count("done") == 5 and "running" in first.values()
    s = run_batch("retarget", [bags[0].parent], out, PoolBackend(2), params={"robot": "g1", "source": "auto"},
                  progress=False)
    assert s.done == 12 and s.skipped == 5 and s.failed == 1
    with _ledger(out) as led:
        finished = [e["bag"] for e in led.events("retarget") if e["event"] in ("done", "reused")]
        rows = led.rows("retarget")
    # no job done twice: one finish per good bag over both runs
    assert sorted(finished) == sorted(str(b.resolve()) for b in bags)
    assert all(r.status == "done" for r in rows if Path(r.bag) in {b.resolve() for b in bags})
    assert sorted(p.name for p in (out / "bags").iterdir()) == sorted(b.name for b in bags)


def test_cli_bad_arguments_are_one_line_errors(tmp_path, capsys):
    from robot_capture.cli import main

    assert main(["batch", "retarget", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    assert main(["batch", "retarget", str(tmp_path), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert "--workers >= 1" in capsys.readouterr().err
    assert main(["batch", "retarget", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no bags found in" in capsys.readouterr().err
    (tmp_path / "o2").mkdir()
    (tmp_path / "o2" / "batch.sqlite").write_text("not sqlite " * 100)
    (tmp_path / "bag").mkdir()  # a bag to find (the ledger is opened before any job runs)
    (tmp_path / "bag" / "metadata.yaml").write_text("rosbag2_bagfile_information: {}\n")
    assert main(["batch", "retarget", str(tmp_path), "--out", str(tmp_path / "o2")]) == 2
    assert "not a batch ledger" in capsys.readouterr().err
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if importlib.util.find_spec("ray") is not None:
        assert main(["batch", "retarget", str(tmp_path), "--out", str(tmp_path / "o3"), "--ray",
                     f"127.0.0.1:{port}"]) == 2
        assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in capsys.readouterr().err


def test_a_killed_attempts_temp_output_is_removed_by_the_next_attempt(tmp_path):
    """A runner or worker killed mid-job leaves ``.<out>.tmp.<pid>``; the next attempt at that
    output removes it (the ledger runs one attempt per bag at a time), other outputs' stay."""
    from robot_capture.batch.jobs import _tmp_dir

    final = tmp_path / "bags" / "ep_0001"
    stale = tmp_path / "bags" / ".ep_0001.tmp.999999"
    other = tmp_path / "bags" / ".ep_0002.tmp.999999"
    for d in (stale, other):
        (d / "x").mkdir(parents=True)
    tmp = _tmp_dir(final)
    assert not stale.exists() and other.exists() and tmp.parent == final.parent and not tmp.exists()
