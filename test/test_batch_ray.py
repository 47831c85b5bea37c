"""``robot-capture batch --ray ADDRESS`` on a real local Ray cluster, over real floor bags.

One cluster for the module (:class:`robot_capture.batch.local_ray.LocalRayHead`: ``ray start
--head --block --num-cpus 2`` on 127.0.0.1, a free port, its own ``--temp-dir``, no dashboard,
in its own session, which the fixture ends at the end, failing or not; ``ray stop`` is not
used: it stops every Ray process of the machine, not only this test's).

Shown, over 12 real floor bags plus a truncated bag and a non-bag file: ``batch qa`` and
``batch export`` on Ray give the same verdicts (qa.json bytes) and the same merged dataset as
the process pool and as the single-bag functions (``qa_paths``, ``export_episodes``); a Ray
worker killed (SIGKILL) mid-export still finishes every job; the runner killed mid-run and
run again finishes the rest with no job done twice (ledger) and the dataset complete.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _batch_bags import archive

from robot_capture.batch.local_ray import LOOPBACK_ENV, LocalRayHead  # noqa: E402

# Read by Ray when it is imported (ray_constants): set before the import, for the driver in this
# process and (inherited) for the runner subprocesses.
os.environ.update(LOOPBACK_ENV)
ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.ros, pytest.mark.xdist_group("sim_floor"), pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def cluster():
    """(``127.0.0.1:<port>`` of a 2-CPU head node, the head) ; ended at the end, failing or not."""
    try:
        head = LocalRayHead(cpus=2)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield head.address, head
    finally:
        if ray.is_initialized():
            ray.shutdown()
        head.stop()


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch_ray")
    bags, bad = archive(root, n=12)
    return root, bags, bad


class _KillRayWorker:
    """Wraps a RayBackend: once two tasks are in flight, SIGKILLs a worker running a task (once;
    if none is seen running within 5 s, tries again at the next start)."""

    def __init__(self, inner, head):
        self.inner, self.head, self.killed, self.starts = inner, head, [], 0
        self.name = inner.name

    def describe(self):
        return self.inner.describe()

    def run(self, jobs, on_start, on_result, on_crash):
        def start(job, pid):
            on_start(job, pid)
            self.starts += 1
            deadline = time.monotonic() + 5
            while self.starts >= 2 and not self.killed and time.monotonic() < deadline:
                pids = self.head.session(b"ray::run_job")  # workers running a job (process title)
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
                    self.killed.append(pids[0])
                    break
                time.sleep(0.01)

        self.inner.run(jobs, start, on_result, on_crash)


# what `robot-capture batch export --include-failed` passes: every readable bag is delivered, whatever
# the QA verdict of a floor recorded on a loaded machine (the selection rule is the exporter's, tested there)
EXPORT_OPTIONS = {"mapping": None, "fps": None, "codec": None, "crf": None, "gop": None, "include_failed": True,
                  "robot_type": None, "run_qa": True}


def _verdicts(bags) -> dict:
    return {b.name: (b / "qa.json").read_bytes() for b in bags}


def test_qa_on_ray_matches_pool_and_single_bag(cluster, day, capsys):
    from robot_capture.cli import main
    from robot_capture.episodes import read_verdict
    from robot_capture.qa.run import qa_paths

    address, _head = cluster
    root, bags, bad = day
    single = {Path(p).name: v.to_dict() for p, v in qa_paths([bags[0].parent], write=False) if not isinstance(v, str)}
    rc = main(["batch", "qa", str(bags[0].parent), "--out", str(root / "qa_ray"), "--ray", address, "--quiet"])
    text = capsys.readouterr().out
    assert rc == 1 and "12 done" in text and "1 failed" in text, text
    failed = [ln for ln in text.splitlines() if ln.strip().startswith(f"FAILED {bad['truncated'].resolve()}:")]
    assert len(failed) == 1 and "incomplete" in failed[0] and "recover" in failed[0], text
    assert "skipped 1 non-bag" in text and f"FAILED {bad['not_bag'].resolve()}" not in text  # not a job
    on_ray = _verdicts(bags)
    assert main(["batch", "qa", str(bags[0].parent), "--out", str(root / "qa_pool"), "--workers", "2",
                 "--quiet"]) == 1
    capsys.readouterr()
    assert _verdicts(bags) == on_ray  # same qa.json bytes from the pool
    for b in bags:  # and the same verdicts as the single-bag QA (robot-capture qa DIR)
        assert read_verdict(b).to_dict() == single[b.name]
    assert {read_verdict(b).verdict for b in bags} <= {"pass", "warn", "fail"}


@pytest.fixture(scope="module")
def single_export(day):
    from robot_capture.export.lerobot import ExportOptions, export_episodes

    root, bags, _bad = day
    s = export_episodes([bags[0].parent], root / "export_single", ExportOptions(**EXPORT_OPTIONS), progress=False)
    assert s.count("exported") == 12, s.lines()
    return root / "export_single"


def _dataset(root: Path):
    """(info, episodes table, frames table) of a LeRobot v3 dataset, checked against the format rules."""
    from lerobot_format import check_dataset

    got = check_dataset(root)
    return got["info"], got["episodes"], got["data"]


def _assert_same_dataset(a: Path, b: Path) -> None:
    import pandas as pd

    ia, ea, da = _dataset(a)
    ib, eb, db = _dataset(b)
    assert ia == ib
    pd.testing.assert_frame_equal(ea, eb)
    pd.testing.assert_frame_equal(da, db)
    for va in sorted((a / "videos").rglob("*.mp4")):
        vb = b / va.relative_to(a)
        assert vb.is_file() and va.stat().st_size > 0 and vb.stat().st_size > 0


def test_export_on_ray_with_a_killed_worker_matches_pool_and_single_export(cluster, day, single_export):
    from robot_capture.batch.pool import PoolBackend
    from robot_capture.batch.ray_backend import RayBackend
    from robot_capture.batch.runner import run_batch

    address, head = cluster
    root, bags, bad = day
    backend = _KillRayWorker(RayBackend(address, cpus_per_job=1, retries=3), head)
    try:
        s_ray = run_batch("export", [bags[0].parent], root / "export_ray", backend,
                          params={"options": EXPORT_OPTIONS}, progress=False)
    finally:
        backend.inner.shutdown()
    assert backend.killed, "no Ray worker was seen running a job"
    assert s_ray.done == 12 and s_ray.failed == 1, s_ray.lines()
    assert {p for p, _r in s_ray.failures} == {str(bad["truncated"].resolve())}
    assert "IncompleteBagFileError" in dict(s_ray.failures)[str(bad["truncated"].resolve())]
    _assert_same_dataset(root / "export_ray" / "dataset", single_export)
    s_pool = run_batch("export", [bags[0].parent], root / "export_pool", PoolBackend(2),
                       params={"options": EXPORT_OPTIONS}, progress=False)
    assert s_pool.done == 12
    _assert_same_dataset(root / "export_pool" / "dataset", single_export)


_KILL_AFTER = """
import os, signal, sys
from robot_capture.batch import runner
from robot_capture.batch.ray_backend import RayBackend
from robot_capture.batch.ledger import Ledger
k = int(sys.argv[1])
real_start = Ledger.start
def start(self, *a, **kw):
    attempt = real_start(self, *a, **kw)
    if len(self.events(event="done")) >= k:
        os.kill(os.getpid(), signal.SIGKILL)  # the runner (Ray driver) dies mid-run
    return attempt
Ledger.start = start
runner.run_batch("export", [sys.argv[2]], sys.argv[3], RayBackend(sys.argv[4]),
                 params={"options": %r}, progress=False)
""" % (EXPORT_OPTIONS,)


def test_ray_runner_killed_then_rerun_finishes_the_rest_once(cluster, day, single_export):
    from robot_capture.batch.ledger import Ledger
    from robot_capture.batch.ray_backend import RayBackend
    from robot_capture.batch.runner import run_batch

    address, _head = cluster
    root, bags, _bad = day
    out = root / "export_killed"
    proc = subprocess.run([sys.executable, "-c", _KILL_AFTER, "4", str(bags[0].parent), str(out), address],
                          capture_output=True, text=True, timeout=300, env={**os.environ},
                          cwd=root)  # not the checkout: `python -c` would import its unbuilt package
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    with Ledger(out) as led:
        first = [r.status for r in led.rows("export")]
    assert first.count("done") == 4 and "running" in first
    assert not (out / "dataset").exists()  # killed before the merge
    backend = RayBackend(address)
    try:
        s = run_batch("export", [bags[0].parent], out, backend, params={"options": EXPORT_OPTIONS}, progress=False)
    finally:
        backend.shutdown()
    assert s.done == 12 and s.skipped == 4 and s.failed == 1, s.lines()
    with Ledger(out) as led:
        finished = [e["bag"] for e in led.events("export") if e["event"] in ("done", "reused")]
    assert sorted(finished) == sorted(str(b.resolve()) for b in bags)  # each good bag finished once
    _assert_same_dataset(out / "dataset", single_export)  # complete: every episode, once
