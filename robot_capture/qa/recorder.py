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

* The worker runs ``QA_NICE`` niceness steps below the recorder (``os.nice``), so on a
  loaded PC it yields the CPU to the recorder and the 500 Hz publishers; it gets SIGTERM
  when the recorder dies (``PR_SET_PDEATHSIG``, Linux).
* A worker that dies (OOM, SIGKILL) fails only the bags it held: each gets an error text
  (the bag keeps no verdict; export and batch run the QA), and a fresh worker takes the
  next bag.
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

__all__ = ["QA_NICE", "StopResult", "StopVerdicts"]

log = logging.getLogger(__name__)

#: niceness steps the QA worker runs below the recorder (CFS weight 1024 -> 110 at +10: a
#: tenth of the recorder's share of a contended core; the QA of a 5-60 s bag is seconds of CPU)
QA_NICE = 10
PR_SET_PDEATHSIG = 1


@dataclasses.dataclass
class StopResult:
    """A finished QA at stop: ``verdict`` (robot_capture.episodes.Verdict, also in
    ``<bag>/qa.json``), or ``error`` (one line) when no verdict could be stored."""

    bag: Path
    verdict: object = None
    error: str = ""
    elapsed_s: float = 0.0


def _worker_init(nice: int, parent_pid: int = 0) -> None:
    """Pool initializer: lower priority, die with the recorder (``parent_pid``, its pid).

    ``PR_SET_PDEATHSIG`` only covers a parent that dies *after* the call; a recorder SIGKILLed
    while its worker was still starting (importing takes tens of seconds at load 30) left the
    worker orphaned for good, blocked on its task pipe (it holds that pipe's write end too, so
    it never reads EOF): 19 such ~85 MB orphans after two SIGKILL chains. So the worker checks
    that the recorder is still its parent once the signal is armed, and exits if not."""
    if nice:
        try:
            os.nice(int(nice))
        except OSError:
            pass
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pool's pipe closing ends it instead
        return
    if parent_pid and os.getppid() != parent_pid:
        os._exit(0)  # the recorder died before the signal was armed


def _warm() -> int:
    """Import the QA in the worker before the first bag (numpy, the MCAP readers)."""
    import robot_capture.qa.run  # noqa: F401

    return os.getpid()


def _qa_job(bag: str, config) -> object:
    from robot_capture.qa.run import qa_episode

    return qa_episode(bag, config=config, expected=None, folder_stats=None, write=True)


class StopVerdicts:
    """Run the QA of closed episode bags in a worker process, one bag at a time, in order.

    Args:
        config: QA config as :func:`robot_capture.qa.run.qa_episode` takes it (None: the shipped
            config/qa.yaml, as ``robot-capture qa`` without ``--config``).
        nice: niceness increment of the worker (:data:`QA_NICE`).
        processes: False runs the QA in a thread of this process (tests; the fallback).
        logger: ``info``/``warning``/``error`` (an rclpy logger works).

    Thread-safe: :meth:`submit` may be called from any thread (e.g. under the recorder's lock:
    it never blocks on the QA).
    """

    def __init__(self, config=None, nice: int = QA_NICE, processes: bool = True, logger=None):
        self.config = config
        self.nice = int(nice)
        self.log = logger or log
        self._processes = processes
        self._lock = threading.Lock()
        self._pool: cf.Executor | None = None
        self._warm: cf.Future | None = None   # -> the worker's pid
        self._pending: dict[cf.Future, tuple[Path, float]] = {}
        self._done: list[StopResult] = []

    # ------------------------------------------------------------------ pool
    def _make_pool(self) -> cf.Executor:
        if self._processes:
            try:
                import multiprocessing

                pool = cf.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                              initializer=_worker_init, initargs=(self.nice, os.getpid()))
                self._warm = pool.submit(_warm)
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
            for attempt in (0, 1):
                if self._pool is None:
                    self._pool = self._make_pool()
                try:
                    fut = self._pool.submit(_qa_job, str(bag), self.config)
                    self._pending[fut] = (bag, time.monotonic())
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
            return [b for b, _t in self._pending.values()]

    def poll(self) -> list[StopResult]:
        """The results finished since the last call (non-blocking)."""
        with self._lock:
            out, self._done = self._done, []
            for fut in [f for f in self._pending if f.done()]:
                out.append(self._result(fut))
            return out

    def _result(self, fut: cf.Future) -> StopResult:
        bag, t0 = self._pending.pop(fut)
        res = StopResult(bag, elapsed_s=time.monotonic() - t0)
        try:
            res.verdict = fut.result()
        except cf.BrokenExecutor:
            res.error = "the QA worker died; run `robot-capture qa` on the bag"
            self._pool = None  # replaced at the next submit
        except cf.CancelledError:
            res.error = "QA cancelled"
        except Exception as exc:  # noqa: BLE001 - e.g. the bag was discarded (moved) while QA read it
            res.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return res

    def wait(self, timeout_s: float, stop: threading.Event | None = None) -> list[StopResult]:
        """Wait until every pending QA is done, ``timeout_s`` passed or ``stop`` is set; return
        what finished (as :meth:`poll`). Used at shutdown."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        out = []
        while True:
            out += self.poll()
            with self._lock:
                futs = list(self._pending)
            left = deadline - time.monotonic()
            if not futs or left <= 0 or (stop is not None and stop.is_set()):
                return out
            cf.wait(futs, timeout=min(0.1, left), return_when=cf.FIRST_COMPLETED)

    def close(self, wait: bool = False) -> None:
        """Stop the worker; with ``wait=False`` unfinished QA is cancelled (the bag keeps no verdict)."""
        with self._lock:
            pool, self._pool = self._pool, None
            busy = bool(self._pending)
        if pool is None:
            return
        if not wait and busy and self._warm is not None and self._warm.done() and not self._warm.exception():
            import signal

            try:  # a running job is not cancellable: end the worker, or the exit would wait for it
                os.kill(self._warm.result(), signal.SIGTERM)
            except OSError:
                pass
        pool.shutdown(wait=wait, cancel_futures=not wait)
