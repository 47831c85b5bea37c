"""The verdict at stop: the full QA of each closed episode, off the recorder's hot path.

There is one verdict per episode (issue 18). The recorder used to store a quick verdict
from its own counters at stop; it disagreed with ``robot-capture qa`` on the same bag (a
receive-time rate is not a stamp rate, a DDS counter is not a hole in the stamps). Now the
recorder hands every closed bag to :class:`StopVerdicts`, which runs the very function
``robot-capture qa BAG`` runs (:func:`robot_capture.qa.run.qa_episode` with the shipped
config, the expected rates stored in the bag, no folder statistics) in **one worker
process**, so a new episode can start and record while it runs, and the worker never
holds the recorder's GIL. ``qa_episode`` writes ``<bag>/qa.json`` through
:func:`robot_capture.episodes.write_verdict` (deterministic bytes: a later
``robot-capture qa BAG`` leaves the file unchanged). The node polls :meth:`StopVerdicts.poll`
for finished verdicts and puts them into the console's last-episode state.

* The worker runs at the recorder's own priority (``QA_NICE`` = 0 niceness steps below it). It
  ran at +10 once, "to yield to the recorder": on a loaded 2-core PC that starved it (with
  the kernel's autogroups each floor node is its own session, so the niced worker competed
  with the recorder's own busy threads and got a tenth of their share; the verdict of a 4 s
  bag, 0.3 s of CPU, took 42 s at load 27, and never came within 180 s in a loaded
  ``make test``). The QA of a bag is a short burst (0.1 s CPU for 4 s at 250 Hz); the
  recorder's hot path does not depend on winning it.
* It is started once, with the node (:meth:`StopVerdicts.start`: it imports numpy and the
  QA then, not at the first stop), gets SIGTERM when the recorder dies
  (``PR_SET_PDEATHSIG``, Linux) and exits by itself when the recorder died before that.
* **A stalled worker never loses a verdict**: when the worker has had no CPU for
  ``QA_STALL_S`` while a bag waits (stopped, hung, starved, its start-up stuck), the waiting
  bags' QA runs in a thread of the recorder instead (logged); the first verdict wins.
  A bag without a verdict after ``QA_GIVE_UP_S`` gets an error result ("not finished ...;
  run robot-capture qa"), and a verdict that still comes later is reported then.
* A worker that dies (OOM, SIGKILL) fails only the bag it held (error text; the bag keeps no
  verdict; export and batch run the QA), and a fresh worker is started at once.
* Where a process pool cannot be made (no ``/dev/shm`` semaphores), a thread runs the QA
  instead; the degradation is logged once.

A bag without ``qa.json`` (the worker had not finished when the recorder was killed) has no
verdict, never a quick one: ``info`` says "run robot-capture qa", and export and batch run
the QA before they select. ROS-free.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import os
import threading
import time
from pathlib import Path

__all__ = ["QA_GIVE_UP_S", "QA_NICE", "QA_STALL_S", "StopResult", "StopVerdicts"]

log = logging.getLogger(__name__)

#: niceness steps the QA worker runs below the recorder: 0, its own priority (the module
#: docstring says why +10 starved it on a loaded PC)
QA_NICE = 0
#: seconds a waiting bag's worker may go without CPU before its QA runs in a thread of the
#: recorder (a running QA uses CPU all the time; a scheduled process gets some every second)
QA_STALL_S = 10.0
#: seconds after the stop when a bag still without a verdict gets an error result (it is
#: still watched: a verdict that comes later is reported then)
QA_GIVE_UP_S = 120.0
PR_SET_PDEATHSIG = 1


@dataclasses.dataclass
class StopResult:
    """A finished QA at stop: ``verdict`` (robot_capture.episodes.Verdict, also in
    ``<bag>/qa.json``), or ``error`` (one line) when no verdict could be stored (yet)."""

    bag: Path
    verdict: object = None
    error: str = ""
    elapsed_s: float = 0.0


@dataclasses.dataclass
class _Job:
    bag: Path
    t0: float
    fut: cf.Future | None = None          # in the worker (or the thread pool without processes)
    thread: cf.Future | None = None       # the fallback in a thread of the recorder
    pool: object = None                   # the executor ``fut`` belongs to
    gave_up: bool = False                 # an error result was reported; still watched


def _worker_init(nice: int, parent: int = 0) -> None:
    """Pool initializer: set the priority, die with the recorder (``parent``, its pid).

    ``PR_SET_PDEATHSIG`` only covers a parent that dies *after* the call; a recorder SIGKILLed
    while its worker was still starting (importing takes tens of seconds at load 30) left the
    worker orphaned for good, blocked on its task pipe (it holds that pipe's write end too, so
    it never reads EOF): 19 such ~85 MB orphans after two SIGKILL chains. So the worker checks
    that the recorder is still its parent once the signal is armed, and exits if not.

    A terminal's Ctrl-C goes to the whole foreground process group: the worker ignores SIGINT
    (it died with a KeyboardInterrupt traceback and the episode got no verdict); the recorder
    decides when it ends."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    except (AttributeError, OSError, ValueError):
        pass
    if nice:
        try:
            os.nice(int(nice))
        except OSError:
            pass
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pool's pipe closing ends it instead
        pass
    if parent and os.getppid() != parent:  # the recorder died before prctl: no signal will come
        os._exit(0)


def _submit_sigint_blocked(pool, fn):
    """``pool.submit(fn)`` with SIGINT blocked in this thread, so the worker it spawns starts with
    SIGINT blocked (the mask survives fork and exec) until ``_worker_init`` ignores it: a Ctrl-C
    while the worker was still importing killed it with a KeyboardInterrupt traceback."""
    import signal

    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    except (AttributeError, OSError, ValueError):
        return pool.submit(fn)
    try:
        return pool.submit(fn)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _warm() -> int:
    """Import the QA in the worker before the first bag (numpy, the MCAP readers)."""
    import robot_capture.qa.run  # noqa: F401

    return os.getpid()


def _qa_job(bag: str, config) -> object:
    from robot_capture.qa.run import qa_episode

    return qa_episode(bag, config=config, expected=None, folder_stats=None, write=True)


_HAVE_PROC = os.path.exists("/proc/self/stat")


def _pids(pool) -> list[int]:
    """The worker processes of a ProcessPoolExecutor (its ``_processes`` {pid: Process}); [] else."""
    return sorted(getattr(pool, "_processes", None) or {})


def _cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used; None where unknown (not Linux)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class StopVerdicts:
    """Run the QA of closed episode bags in a worker process, one bag at a time, in order.

    Args:
        config: QA config as :func:`robot_capture.qa.run.qa_episode` takes it (None: the shipped
            config/qa.yaml, as ``robot-capture qa`` without ``--config``).
        nice: niceness increment of the worker (:data:`QA_NICE`).
        processes: False runs the QA in a thread of this process (tests; the fallback).
        logger: ``info``/``warning``/``error`` (an rclpy logger works).
        stall_s: :data:`QA_STALL_S`; give_up_s: :data:`QA_GIVE_UP_S`.

    Thread-safe: :meth:`submit` may be called from any thread (e.g. under the recorder's lock:
    it never blocks on the QA). :meth:`poll` (the node calls it 4x/s) also watches the worker.
    """

    def __init__(self, config=None, nice: int = QA_NICE, processes: bool = True, logger=None,
                 stall_s: float = QA_STALL_S, give_up_s: float = QA_GIVE_UP_S):
        self.config = config
        self.nice = int(nice)
        self.log = logger or log
        self.stall_s, self.give_up_s = float(stall_s), float(give_up_s)
        self._processes = processes
        self._lock = threading.Lock()
        self._pool: cf.Executor | None = None
        self._warm: cf.Future | None = None   # -> the worker's pid
        self._jobs: list[_Job] = []
        self._done: list[StopResult] = []
        self._cpu: tuple[int, float, float] | None = None  # (worker pid, its CPU s, when it last grew)

    # ------------------------------------------------------------------ pool
    def _make_pool(self) -> cf.Executor:
        self._cpu = None
        if self._processes:
            try:
                import multiprocessing

                pool = cf.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                              initializer=_worker_init, initargs=(self.nice, os.getpid()))
                self._warm = _submit_sigint_blocked(pool, _warm)
                return pool
            except (OSError, ImportError, NotImplementedError) as exc:
                self._processes = False
                self.log.warning(f"QA at stop: no worker process ({exc}); running it in a thread of the recorder")
        return cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="qa-at-stop")

    def start(self) -> None:
        """Start the worker now (it imports the QA), so the first verdict is not late. Optional."""
        with self._lock:
            if self._pool is None:
                self._pool = self._make_pool()

    # ------------------------------------------------------------------ work
    def submit(self, bag) -> None:
        """Queue the QA of the closed bag ``bag`` (never raises; a failure becomes its result)."""
        bag = Path(bag)
        with self._lock:
            job = _Job(bag, time.monotonic())
            for attempt in (0, 1):
                if self._pool is None:
                    self._pool = self._make_pool()
                try:
                    job.fut, job.pool = self._pool.submit(_qa_job, str(bag), self.config), self._pool
                    self._jobs.append(job)
                    return
                except (cf.BrokenExecutor, RuntimeError) as exc:  # the worker died earlier: a fresh one
                    self._pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = None
                    if attempt:
                        self._done.append(StopResult(bag, None, f"QA worker unavailable: {exc}"))

    @property
    def pending(self) -> list[Path]:
        """Bags whose QA has not finished, in submission order."""
        with self._lock:
            return [j.bag for j in self._jobs]

    def poll(self) -> list[StopResult]:
        """The results finished since the last call (non-blocking); runs the QA of bags a stalled
        worker holds in a thread, reports bags without a verdict after ``give_up_s``."""
        with self._lock:
            out, self._done = self._done, []
            now = time.monotonic()
            for job in list(self._jobs):
                res = self._outcome(job)
                if res is not None:
                    self._jobs.remove(job)
                    out.append(res)
                elif not job.gave_up and now - job.t0 > self.give_up_s:
                    job.gave_up = True
                    out.append(StopResult(job.bag, None, f"QA not finished {now - job.t0:.0f} s after the stop "
                                          f"(overloaded machine?); run `robot-capture qa {job.bag}`",
                                          now - job.t0))
            self._watch_worker(now)
            if self._pool is None and self._processes:
                self._pool = self._make_pool()  # a dead worker's successor starts now, not at the next stop
            return out

    def _outcome(self, job: _Job) -> StopResult | None:
        """The job's result once it has one: the first verdict, else the worker's error when no
        thread runs it too. None while running."""
        futs = [f for f in (job.fut, job.thread) if f is not None]
        results = [self._result(job, f) for f in futs if f.done()]
        for r in results:
            if r.verdict is not None:
                return r
        if results and (job.thread is None or job.thread.done()):
            return results[-1]
        return None

    def _result(self, job: _Job, fut: cf.Future) -> StopResult:
        res = StopResult(job.bag, elapsed_s=time.monotonic() - job.t0)
        try:
            res.verdict = fut.result()
        except cf.BrokenExecutor:
            res.error = "the QA worker died; run `robot-capture qa` on the bag"
            if fut is job.fut and job.pool is self._pool is not None:  # a successor starts at once (poll)
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
        except cf.CancelledError:
            res.error = "QA cancelled"
        except Exception as exc:  # noqa: BLE001 - e.g. the bag was discarded (moved) while QA read it
            res.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return res

    def _watch_worker(self, now: float) -> None:
        """While bags wait for the worker: has it had CPU in the last ``stall_s``? If not (stopped,
        hung, starved, gone without the pool noticing), their QA runs in a thread of the recorder.
        Needs /proc (Linux); elsewhere only ``give_up_s`` applies."""
        waiting = [j for j in self._jobs if j.thread is None and j.fut is not None and not j.fut.done()]
        if not waiting or not self._processes or not _HAVE_PROC:
            self._cpu = None
            return
        pids = _pids(self._pool)
        pid = pids[0] if pids else 0
        cpu = (_cpu_s(pid) if pid else None) or 0.0
        if self._cpu is None or self._cpu[0] != pid or cpu > self._cpu[1]:
            self._cpu = (pid, cpu, now)  # it ran since the last look
            return
        stalled = now - max(self._cpu[2], waiting[0].t0)
        if stalled <= self.stall_s:
            return
        names = ", ".join(j.bag.name for j in waiting)
        self.log.warning(f"QA at stop: the worker (pid {pid or '-'}) has had no CPU for {stalled:.0f} s; "
                         f"running the QA of {names} in a thread of the recorder")
        for j in waiting:
            j.thread = self._in_thread(j.bag)

    def _in_thread(self, bag: Path) -> cf.Future:
        """Run the QA of ``bag`` in a daemon thread of this process (the exit never waits for it;
        qa.json is written atomically)."""
        fut: cf.Future = cf.Future()

        def run():
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(_qa_job(str(bag), self.config))
            except BaseException as exc:  # noqa: BLE001 - handed to poll() as the bag's error
                fut.set_exception(exc)

        threading.Thread(target=run, name=f"qa-at-stop-{bag.name}", daemon=True).start()
        return fut

    def wait(self, timeout_s: float, stop: threading.Event | None = None) -> list[StopResult]:
        """Wait until every pending QA is done, ``timeout_s`` passed or ``stop`` is set; return
        what finished (as :meth:`poll`). Used at shutdown."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        out = []
        while True:
            out += self.poll()
            with self._lock:
                futs = [f for j in self._jobs for f in (j.fut, j.thread) if f is not None]
            left = deadline - time.monotonic()
            if not futs or left <= 0 or (stop is not None and stop.is_set()):
                return out
            cf.wait(futs, timeout=min(0.25, left), return_when=cf.FIRST_COMPLETED)

    def close(self, wait: bool = False) -> None:
        """Stop the worker; with ``wait=False`` unfinished QA is cancelled (the bag keeps no verdict)."""
        with self._lock:
            pool, self._pool = self._pool, None
            busy = bool(self._jobs)
            self._processes = False  # no successor
        if pool is None:
            return
        if not wait and busy:
            import signal

            for pid in _pids(pool):
                try:  # a running job is not cancellable: end the worker, or the exit would wait for it
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass
        pool.shutdown(wait=wait, cancel_futures=not wait)
