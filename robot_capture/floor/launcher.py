"""A small process supervisor for the floor graph: ``robot-capture up`` without ``launch``.

Each :class:`~robot_capture.floor.graph.NodeSpec` runs as a child process::

    python .../robot_capture/floor/_child.py <module> --ros-args -r __node:=<name>
        --params-file <workdir>/<name>.params.yaml [-r from:=to ...]

* Output: every line a child prints is echoed as ``[<name>] <line>``.
* Children run in their own session, so a terminal Ctrl-C reaches only the
  supervisor, which then shuts the graph down **in order** (issue 18): SIGINT to the
  recorder first, which stops the open episode at once (reason ``shutdown``) and then
  releases its output folder lock; when the lock is free (:func:`episode_closed`), SIGINT to
  every other node at once (the data sources stop only after the episode ended, so it
  never ends in their silence); then wait for the recorder, which finishes the QA of its
  episodes before it exits. A node that ignores SIGINT for its ``shutdown_timeout_s`` gets
  SIGTERM, then SIGKILL.
* A child that exits while the graph is up is reported at once; if it is a
  required node (all but cameras) the rest of the graph is then shut down in order,
  unless ``keep_going``. A camera that dies (e.g. no device) is only reported.
* Children get ``PR_SET_PDEATHSIG`` (Linux), so a SIGKILLed supervisor leaves no
  orphans (they get SIGTERM, which rclpy handles like SIGINT).

ROS-free: this module never imports rclpy.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Sequence, TextIO

from robot_capture.floor import _child, graph
from robot_capture.floor.graph import NodeSpec

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the recorder's exit is waited for instead
    fcntl = None

#: the recorder's output folder lock (robot_capture.console.owner.LOCK_NAME; not imported: console is not a floor dependency)
_OUTPUT_LOCK = ".recorder.lock"


def episode_closed(output_dir, alive: Callable[[], bool]) -> bool:
    """True once a recorder that got SIGINT has closed its episode: its output folder lock
    (``<output_dir>/.recorder.lock``, held by the recorder until the episode is closed) is free,
    or the process is gone (``alive()`` False). Without an ``output_dir`` only the exit counts."""
    if not alive():
        return True
    if not output_dir or fcntl is None:
        return False
    try:
        fd = os.open(Path(output_dir) / _OUTPUT_LOCK, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:  # no flock on this file system: wait for the exit
        return False
    finally:
        os.close(fd)


def wait_episode_closed(output_dir, alive: Callable[[], bool], timeout_s: float, poll_s: float = 0.02) -> bool:
    """Poll :func:`episode_closed` for at most ``timeout_s``; returns whether it closed."""
    deadline = time.monotonic() + timeout_s
    while not episode_closed(output_dir, alive):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True


#: terminal colour/style sequences (Fast DDS colours its log lines): kept out of `up`'s output and logs
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class _Child:
    def __init__(self, spec: NodeSpec, proc: subprocess.Popen, reader: threading.Thread):
        self.spec = spec
        self.proc = proc
        self.reader = reader
        self.reported = False
        self.stopping = False


class Supervisor:
    """Start, watch and stop the processes of a floor graph.

    Args:
        specs: the graph, in start order (:func:`robot_capture.floor.graph.build`).
        workdir: where params files go (default: a temp dir removed by :meth:`shutdown`).
        out: stream for prefixed child output and supervisor messages.
        python: interpreter for the children (default: this one).
        env: extra environment for the children.
        command: ``spec -> argv`` override (tests use it to run dummy children).
    """

    def __init__(self, specs: Sequence[NodeSpec], workdir: str | os.PathLike | None = None,
                 out: TextIO | None = None, python: str | None = None, env: dict | None = None,
                 command: Callable[[NodeSpec, Path], list[str]] | None = None):
        self.specs = list(specs)
        names = [s.name for s in self.specs]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate node names in graph: {sorted(dup)}")
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="robot_capture_up_"))
        self.out = out or sys.stdout
        self.python = python or sys.executable
        self.env = dict(env or {})
        self._command = command or self._default_command
        self.children: dict[str, _Child] = {}
        self._lock = threading.Lock()
        self.exit_codes: dict[str, int] = {}

    # ------------------------------------------------------------------ output
    def log(self, msg: str) -> None:
        """Print a supervisor message ``[up] msg``."""
        self._emit("up", msg)

    def _emit(self, name: str, line: str) -> None:
        with self._lock:
            try:
                self.out.write(f"[{name}] {line}\n")
                self.out.flush()
            except ValueError:  # stream closed during interpreter shutdown
                pass

    def _pump(self, name: str, stream) -> None:
        for raw in iter(stream.readline, b""):
            self._emit(name, _ANSI.sub("", raw.decode("utf-8", "replace").rstrip("\n")))
        stream.close()

    # ------------------------------------------------------------------ start
    def _default_command(self, spec: NodeSpec, params_file: Path) -> list[str]:
        # a script path, not `-m`: see robot_capture.floor._child (cwd must not shadow the install)
        return [self.python, str(Path(_child.__file__).resolve()), spec.module,
                *graph.ros_arguments(spec, params_file)]

    def start(self) -> None:
        """Write params files and spawn every node in start order.

        Raises:
            OSError: a process could not be spawned (already started ones are stopped).
        """
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "RCUTILS_COLORIZED_OUTPUT": "0", **self.env}
        env["ROBOT_CAPTURE_SUPERVISOR_PID"] = str(os.getpid())
        from robot_capture.dds_shm import startup_clean  # a crashed floor's DDS files (issue 23)

        startup_clean(self.log)
        try:
            for spec in self.specs:
                pfile = graph.write_params_file(spec, self.workdir)
                argv = self._command(spec, pfile)
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        env={**env, **spec.env, "ROBOT_CAPTURE_NICE": str(spec.nice)})
                t = threading.Thread(target=self._pump, args=(spec.name, proc.stdout),
                                     name=f"pump-{spec.name}", daemon=True)
                t.start()
                self.children[spec.name] = _Child(spec, proc, t)
                self.log(f"started {spec.name} (pid {proc.pid})")
        except OSError:
            self.shutdown()
            raise

    # ------------------------------------------------------------------ watch
    def check(self) -> list[tuple[str, int]]:
        """Report (once) every child that exited on its own; return the new ones."""
        died = []
        for name, ch in self.children.items():
            rc = ch.proc.poll()
            if rc is not None and not ch.reported and not ch.stopping:
                ch.reported = True
                self.exit_codes[name] = rc
                self.log(f"node {name} exited unexpectedly with code {rc}")
                died.append((name, rc))
        return died

    def alive(self) -> list[str]:
        return [n for n, ch in self.children.items() if ch.proc.poll() is None]

    def spin(self, stop: threading.Event, keep_going: bool = False, poll_s: float = 0.1, watch=None) -> int:
        """Watch the children until ``stop`` is set, or a required child dies (unless ``keep_going``).

        ``watch``: called with this supervisor on every poll (``floor.readiness.FloorWatch``: the
        ready line and status lines); its exceptions are reported once and it is dropped.
        Returns 0 when stopped by ``stop``, 1 when a required child died.
        """
        while not stop.wait(poll_s):
            if watch is not None:
                try:
                    watch(self)
                except Exception as exc:  # noqa: BLE001 - health lines must never stop the floor
                    self.log(f"status monitor failed ({exc}); continuing without it")
                    watch = None
            died = self.check()
            required = [n for n, _rc in died if self.children[n].spec.required]
            if required and not keep_going:
                self.log(f"required node(s) {', '.join(required)} gone: shutting the graph down")
                return 1
            if died and not required:
                self.log("optional node(s) gone, the rest keeps running: "
                         + ", ".join(n for n, _rc in died))
            if keep_going and not self.alive():
                self.log("every node has exited")
                return 1
        return 0

    # ------------------------------------------------------------------ stop
    def _stop_group(self, children: list[_Child], timeout: float, signalled: bool = False) -> None:
        """SIGINT (unless ``signalled``: sent already), wait ``timeout``, SIGTERM, wait, SIGKILL."""
        live = [c for c in children if c.proc.poll() is None]
        for c in live:
            c.stopping = True
        for sig, wait_s in ((signal.SIGINT, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            live = [c for c in live if c.proc.poll() is None]
            if not live:
                break
            if sig != signal.SIGINT:
                self.log(f"{', '.join(c.spec.name for c in live)} still running: sending {sig.name}")
            for c in live if not (sig == signal.SIGINT and signalled) else ():
                try:
                    c.proc.send_signal(sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait_s
            for c in live:
                try:
                    c.proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        for c in children:
            c.stopping = True
            rc = c.proc.poll()
            if rc is not None:
                self.exit_codes.setdefault(c.spec.name, rc)
            c.reader.join(timeout=2.0)

    def shutdown(self) -> dict[str, int]:
        """Stop the graph in order: the recorder's episode first, then the sources, then wait for the
        recorder (see the module docstring); return ``{name: exit code}``. Idempotent."""
        order = [self.children[s.name] for s in graph.shutdown_order(self.specs) if s.name in self.children]
        sources = [c for c in order if c.spec.role != "recorder"]
        recorders = [c for c in order if c.spec.role == "recorder" and c.proc.poll() is None]
        for c in recorders:
            self.log(f"stopping {c.spec.name} first: it stops the open episode, if there is one, before any "
                     "source stops")
            c.stopping = True
            try:
                c.proc.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
        for c in recorders:
            if not wait_episode_closed(c.spec.parameters.get("output_dir"), lambda c=c: c.proc.poll() is None,
                                       c.spec.shutdown_timeout_s):
                self.log(f"{c.spec.name} has not closed its episode after {c.spec.shutdown_timeout_s:g} s; "
                         "stopping the sources anyway")
        if sources:
            self._stop_group(sources, max(c.spec.shutdown_timeout_s for c in sources))
        for c in [c for c in order if c.spec.role == "recorder"]:
            self._stop_group([c], c.spec.shutdown_timeout_s, signalled=c in recorders)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return dict(self.exit_codes)

    def __enter__(self) -> "Supervisor":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


def run(specs: Sequence[NodeSpec], keep_going: bool = False, out: TextIO | None = None,
        env: dict | None = None, watch=None) -> int:
    """Run the graph in the foreground until SIGINT/SIGTERM or a child dies.

    Installs SIGINT and SIGTERM handlers (main thread only) that trigger the ordered
    shutdown (the recorder's episode first); a second signal is reported and the shutdown continues with its own
    timeouts. ``watch``: see :meth:`Supervisor.spin`. Returns 0 after a signal-triggered
    clean shutdown; 1 if a required node exited on its own (also with ``keep_going``, and
    whatever its exit code was) or a node needed SIGKILL.
    """
    stop = threading.Event()
    sup = Supervisor(specs, out=out, env=env)

    def on_signal(signum, _frame):
        if stop.is_set():
            sup.log(f"got {signal.Signals(signum).name} again; shutdown already under way")
        else:
            sup.log(f"got {signal.Signals(signum).name}: shutting down (the recorder's episode first)")
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        sup.start()
        rc = sup.spin(stop, keep_going=keep_going, watch=watch)
    finally:
        codes = sup.shutdown()
        for s, h in old.items():
            signal.signal(s, h)
    bad = {n: c for n, c in codes.items() if c not in (0, -signal.SIGINT, 130)}
    if bad:
        sup.log(f"exit codes: {codes}")
    else:
        sup.log("all nodes stopped cleanly")
    died = [n for n, ch in sup.children.items() if ch.reported and ch.spec.required]
    if died:
        sup.log(f"exiting 1: required node(s) {', '.join(died)} exited while the floor was up")
    return 1 if rc or died or any(c == -signal.SIGKILL for c in codes.values()) else 0
