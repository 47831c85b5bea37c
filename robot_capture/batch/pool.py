"""The local backend: a pool of worker processes, one job at a time each, with worker-death retry.

``concurrent.futures.ProcessPoolExecutor`` is not used because a worker killed by the OS (OOM
killer, SIGKILL) breaks the whole executor and fails every job in flight, with no way to tell
which job the dead worker held. Here each worker (``multiprocessing`` "spawn" context, so it
starts from a clean interpreter, as a Ray worker does) has its own pipe; the parent waits on
the pipes and the process sentinels together, so it knows which job a dead worker held,
retries that job (up to ``retries`` more times) on a fresh worker, and leaves the other jobs
running. Workers ask the kernel to kill them when the runner dies (``PR_SET_PDEATHSIG``), so a
killed runner leaves no orphan finishing jobs nobody records.

Callbacks (the runner's, shared with the Ray backend):
``on_start(job, pid)``, ``on_result(job, res)``, ``on_crash(job, detail, retrying)``.
"""
from __future__ import annotations

import collections
import ctypes
import multiprocessing as mp
import os
import signal
import time
from multiprocessing.connection import wait

from robot_capture.batch.jobs import run_job


def _die_with_parent(parent_pid: int) -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the worker notices the closed pipe instead
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl
        os._exit(1)


def _worker_main(conn, parent_pid: int) -> None:
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            conn.send(run_job(job))
        except (BrokenPipeError, OSError):
            return


class _Worker:
    def __init__(self, ctx):
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, os.getpid()), daemon=True)
        self.proc.start()
        child.close()
        self.job = None
        self.t_start = 0.0

    def stop(self, kill: bool = False) -> None:
        try:
            if kill:
                self.proc.kill()
            else:
                self.conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self.proc.join(timeout=5 if not kill else 2)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=2)
        self.conn.close()


def _exit_text(code) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class PoolBackend:
    """Run jobs on ``workers`` local processes.

    Args:
        workers: processes (>= 1). retries: extra attempts for a job whose worker died.
        timeout_s: a job running longer is killed with its worker and counts as a crash
            (None: no limit).
    """

    name = "pool"

    def __init__(self, workers: int, retries: int = 2, timeout_s: float | None = None):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.workers, self.retries, self.timeout_s = workers, retries, timeout_s

    def describe(self) -> str:
        return f"local pool, {self.workers} worker process(es)"

    def run(self, jobs: list[dict], on_start, on_result, on_crash) -> None:
        if not jobs:
            return
        ctx = mp.get_context("spawn")
        queue = collections.deque((job, 0) for job in jobs)  # (job, crashes so far)
        crashes: dict[int, int] = {}
        pool = [_Worker(ctx) for _ in range(min(self.workers, len(jobs)))]
        try:
            while queue or any(w.job is not None for w in pool):
                for w in pool:
                    if w.job is None and queue:
                        job, n = queue.popleft()
                        try:
                            w.conn.send(job)
                        except (OSError, BrokenPipeError):
                            queue.appendleft((job, n))
                            continue  # the worker is dead: replaced below
                        w.job, w.t_start = job, time.monotonic()
                        crashes[id(job)] = n
                        on_start(job, w.proc.pid)
                busy = [w for w in pool if w.job is not None]
                dead = [w for w in pool if w.job is None and not w.proc.is_alive()]
                timeout = 1.0
                if self.timeout_s is not None and busy:
                    timeout = max(0.05, min(timeout, min(w.t_start + self.timeout_s for w in busy) - time.monotonic()))
                ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=timeout) if busy else []
                for w in busy:
                    res = None
                    if w.conn in ready:
                        try:
                            res = w.conn.recv()
                        except (EOFError, OSError):
                            res = None
                    if res is not None:
                        job, w.job = w.job, None
                        on_result(job, res)
                        continue
                    timed_out = (self.timeout_s is not None and time.monotonic() - w.t_start > self.timeout_s)
                    if w.conn in ready or w.proc.sentinel in ready or timed_out:
                        if timed_out and w.proc.is_alive():
                            w.proc.kill()
                        w.proc.join(timeout=5)
                        detail = (f"job timed out after {self.timeout_s:g} s (worker killed)" if timed_out
                                  else f"worker process {w.proc.pid} {_exit_text(w.proc.exitcode)}")
                        job, w.job = w.job, None
                        n = crashes.pop(id(job), 0) + 1
                        retrying = n <= self.retries
                        on_crash(job, detail, retrying)
                        if retrying:
                            queue.appendleft((job, n))
                        else:
                            on_result(job, {"status": "failed", "sha256": "", "duration_s": 0.0,
                                            "error": f"{detail}; gave up after {n} attempt(s)", "result": {},
                                            "host": "", "pid": w.proc.pid, "reused": False})
                        dead.append(w)
                for w in dead:
                    w.stop(kill=True)
                    if len(queue) > sum(1 for x in pool if x.job is None and x is not w and x.proc.is_alive()):
                        pool[pool.index(w)] = _Worker(ctx)
                    else:
                        pool.remove(w)
        finally:
            for w in pool:
                w.stop(kill=w.job is not None)
