"""Run one stage over every bag of some folders, on a backend, with the ledger.

:func:`run_batch`:

1. finds the bags (:func:`robot_capture.episodes.find_bags`); a file that is not a bag (a
   ``notes.txt`` beside the bags, or named on the command line) is skipped and counted, as
   ``qa`` and ``info`` do, not a job; no bag at all is an error;
2. for each bag, reads its ledger row: a ``done`` row with the same pipeline, the same
   file fingerprint and the same stage input (the export's stored verdict,
   :mod:`robot_capture.batch.fingerprint`) is **skipped**; everything else (new, failed,
   changed, left ``running`` by a killed runner, other pipeline) is run;
3. lets the stage prepare (``qa``: the folder statistics over every bag given);
4. runs the jobs on the backend (:class:`~robot_capture.batch.pool.PoolBackend` or
   :class:`~robot_capture.batch.ray_backend.RayBackend`), recording each start, result and
   worker death in the ledger as it happens, with a tqdm bar on stderr (done, failed and
   running counts, ETA);
5. lets the stage finish (``export``: merge the shards of every done bag into the
   dataset);
6. returns a :class:`BatchSummary` (failures with their reasons).
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from robot_capture.batch import jobs as jobs_mod
from robot_capture.batch import stages
from robot_capture.batch.fingerprint import bag_fingerprint, stage_input
from robot_capture.batch.ledger import Ledger
from robot_capture.episodes import find_bags


@dataclasses.dataclass
class BatchSummary:
    """What a run did. Times in s (``job_cpu_s``: CPU time of the jobs run, summed over workers;
    ``job_wall_s``: their wall time); ``failures``: (path, reason), bags first, then the stage's own;
    ``non_bags``: the files skipped because they are not bags (not jobs, not failures)."""

    stage: str
    backend: str
    out: Path
    total: int = 0
    ran: int = 0
    done: int = 0
    skipped: int = 0
    reused: int = 0
    failed: int = 0
    crashes: int = 0
    wall_s: float = 0.0
    job_cpu_s: float = 0.0
    job_wall_s: float = 0.0
    failures: list = dataclasses.field(default_factory=list)
    non_bags: list = dataclasses.field(default_factory=list)
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def bags_per_minute(self) -> float:
        return 60.0 * self.ran / self.wall_s if self.wall_s > 0 and self.ran else 0.0

    def lines(self) -> list[str]:
        """The human summary: one headline, the stage's figures, then one line per failure."""
        head = (f"batch {self.stage} on {self.backend}: {self.total} bag(s): {self.done} done "
                f"({self.skipped} unchanged, skipped; {self.reused} already finished), {self.failed} failed; "
                f"ran {self.ran} in {self.wall_s:.1f} s ({self.bags_per_minute():.1f} bags/min)")
        if self.crashes:
            head += f"; {self.crashes} worker death(s) retried or recorded"
        if self.non_bags:
            n = len(self.non_bags)
            head += f"; skipped {n} non-bag{'s' if n > 1 else ''}"
        out = [head]
        if self.non_bags:
            shown = ", ".join(str(p) for p in self.non_bags[:5])
            out.append(f"  not bags (skipped): {shown}{' ...' if len(self.non_bags) > 5 else ''}")
        out += [f"  {k}: {v}" for k, v in self.extra.items()]
        out += [f"  FAILED {p}: {reason}" for p, reason in self.failures]
        out.append(f"  ledger: {self.out / 'batch.sqlite'}")
        return out


class _Bar:
    """tqdm on stderr with done/failed/running counts (a no-op when disabled)."""

    def __init__(self, total: int, stage: str, enabled: bool):
        self.done = self.failed = self.running = 0
        self._bar = None
        if enabled and total:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=f"batch {stage}", unit="bag", file=sys.stderr, dynamic_ncols=True)
            self._post()

    def _post(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"done {self.done}, failed {self.failed}, running {self.running}", refresh=True)

    def started(self) -> None:
        self.running += 1
        self._post()

    def finished(self, ok: bool) -> None:
        self.running = max(0, self.running - 1)
        if ok:
            self.done += 1
        else:
            self.failed += 1
        if self._bar is not None:
            self._bar.set_postfix_str(f"done {self.done}, failed {self.failed}, running {self.running}",
                                      refresh=False)
            self._bar.update(1)

    def crashed(self) -> None:
        self.running = max(0, self.running - 1)
        self._post()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def run_batch(stage: str, paths, out, backend, params: dict | None = None, progress: bool = True,
              force: bool = False) -> BatchSummary:
    """Run ``stage`` over the bags in ``paths``; outputs and ledger in ``out``.

    Args:
        stage: ``qa``, ``export`` or ``retarget`` (:data:`robot_capture.batch.jobs.STAGES`).
        params: the stage's options (part of the pipeline id: changing one redoes the jobs).
        force: redo every job, done or not.
    Raises:
        FileNotFoundError: a path does not exist. ValueError: unknown stage, no bag found
        in ``paths``, or bad params (e.g. two bags with the same name for retarget).
    """
    if stage not in jobs_mod.STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(sorted(jobs_mod.STAGES))}")
    missing = jobs_mod.available_stages()[stage]
    if missing:
        raise ValueError(f"batch {stage} is not available in this build: {missing}")
    t0 = time.perf_counter()
    out = Path(out).resolve()
    params = dict(params or {})
    paths = [Path(p) for p in paths]
    not_bags: list = []
    bags = find_bags(paths, not_bags=not_bags)
    # OUT may lie inside a DIR: its own files and bags (retarget's outputs) are never inputs
    bags = [b for b in bags if not _inside(b, out)]
    not_bags = [Path(p) for p, _why in not_bags if not _inside(Path(p).resolve(), out)]
    if not bags:
        raise ValueError(f"no bags found in {', '.join(str(p) for p in paths)}"
                         + (f" ({len(not_bags)} file(s) that are not bags)" if not_bags else ""))
    stages.check(stage, bags, params)
    summary = BatchSummary(stage=stage, backend=backend.describe(), out=out, total=len(bags), non_bags=not_bags)
    fail_reason: dict[str, str] = {}
    with Ledger(out) as ledger:
        prep = stages.prepare(stage, bags, params)
        to_run, fps = [], {}
        for bag in bags:
            job = jobs_mod.make_job(stage, bag, out, stages.job_params(stage, bag, params, prep), force)
            try:
                fps[job["bag"]] = fp = bag_fingerprint(bag)
            except OSError as exc:
                ledger.finish(stage, job["bag"], "failed", error=f"unreadable: {exc}")
                fail_reason[job["bag"]] = f"unreadable: {exc}"
                continue
            row = ledger.get(stage, job["bag"])
            if (not force and row is not None and row.status == "done" and row.pipeline == job["pipeline"]
                    and row.fingerprint == fp and jobs_mod.same_input(stage_input(stage, bag), row.result)):
                summary.skipped += 1
                continue
            to_run.append(job)
        summary.ran = len(to_run)
        bar = _Bar(len(to_run), stage, progress)

        def on_start(job, pid):
            ledger.start(stage, job["bag"], job["pipeline"], fps[job["bag"]], pid=pid)
            bar.started()

        def on_result(job, res):
            ok = res["status"] == "done"
            ledger.finish(stage, job["bag"], res["status"], sha256=res.get("sha256", ""),
                          duration_s=res.get("duration_s", 0.0), error=res.get("error", ""),
                          result=res.get("result"), host=res.get("host", ""), pid=res.get("pid", 0),
                          event=("reused" if res.get("reused") else None), fingerprint=fps[job["bag"]],
                          pipeline=job["pipeline"])
            summary.job_cpu_s += res.get("cpu_s", 0.0)
            summary.job_wall_s += res.get("duration_s", 0.0)
            summary.reused += bool(res.get("reused"))
            if not ok:
                fail_reason[job["bag"]] = res.get("error", "failed")
            bar.finished(ok)

        def on_crash(job, detail, retrying):
            summary.crashes += 1
            ledger.note(stage, job["bag"], "worker_died", detail + ("; retrying" if retrying else ""))
            bar.crashed()

        try:
            backend.run(to_run, on_start, on_result, on_crash)
        finally:
            bar.close()
        done_rows = {r.bag: r for r in ledger.rows(stage) if r.status == "done"}
        done_bags = [b for b in bags if str(b) in done_rows]
        extra_fail = stages.finish(stage, done_bags, done_rows, out, params, ledger, summary.extra)
    summary.done = len(done_bags)
    summary.failed = len(fail_reason)
    summary.failures = sorted(fail_reason.items()) + list(extra_fail)
    summary.wall_s = time.perf_counter() - t0
    return summary


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(path).resolve().relative_to(folder)
        return True
    except ValueError:
        return False
