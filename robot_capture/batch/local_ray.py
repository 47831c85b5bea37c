"""A one-machine Ray head on 127.0.0.1: for the tests, the benchmark, and trying ``--ray`` on a workstation.

``ray start --head --block`` in its own session (``start_new_session``): Ray gives each worker
its own process group but all stay in that session, so :meth:`LocalRayHead.stop` ends exactly
this cluster's processes (``ray stop`` would stop every Ray process of the machine). The head
is up when ``ray start`` has printed "Ray runtime started." and is still running; Ray gives a
starting node 30 s to register (hard-coded in ``ray._private.node``), which a loaded machine
can miss, so a failed start is tried again (``attempts``).

Ray advertises the machine's own IP unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which this
module sets for the cluster; the **driver** process must have it in its environment before it
imports ray (:data:`LOOPBACK_ENV`).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
STARTED = "Ray runtime started."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRayHead:
    """Start a ``cpus``-CPU head on 127.0.0.1; ``address`` is ``127.0.0.1:<port>``, ``sid`` its session.

    Raises:
        RuntimeError: Ray did not start in ``attempts`` tries of ``timeout_s`` (the message ends
            with the last lines of ``ray start``'s output).
    """

    def __init__(self, cpus: int = 2, attempts: int = 3, timeout_s: float = 120.0):
        exe = Path(sys.executable).parent / "ray"
        if not exe.exists():
            raise RuntimeError(f"the ray CLI is not next to {sys.executable}: pip install 'robot_capture[ray]'")
        self.tmp = tempfile.mkdtemp(prefix="rcray_")  # short: Ray's unix socket paths stay under 107 chars
        self.proc = None
        last = ""
        for attempt in range(attempts):
            self.port = _free_port()
            log_path = Path(self.tmp) / f"ray_start_{attempt}.log"
            with open(log_path, "w") as log:
                self.proc = subprocess.Popen(
                    [str(exe), "start", "--head", "--block", "--num-cpus", str(cpus), "--port", str(self.port),
                     "--node-ip-address", "127.0.0.1", "--temp-dir", self.tmp, "--include-dashboard=false",
                     "--disable-usage-stats"],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **LOOPBACK_ENV})
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and self.proc.poll() is None:
                if STARTED in log_path.read_text(errors="replace"):
                    self.address = f"127.0.0.1:{self.port}"
                    self.sid = self.proc.pid
                    return
                time.sleep(0.5)
            last = log_path.read_text(errors="replace")[-1500:]
            self.stop(remove=False)
        shutil.rmtree(self.tmp, ignore_errors=True)
        raise RuntimeError(f"Ray did not start in {attempts} attempt(s): {last}")

    def session(self, title: bytes = b"") -> list[int]:
        """pids of this cluster's live processes; with ``title``, those whose command line starts with it."""
        out = []
        if self.proc is None:
            return out
        for d in Path("/proc").iterdir():
            if not d.name.isdigit() or int(d.name) == os.getpid():
                continue
            try:
                if os.getsid(int(d.name)) != self.proc.pid:
                    continue
                if (d / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
                if not title or (d / "cmdline").read_bytes().startswith(title):
                    out.append(int(d.name))
            except (OSError, ProcessLookupError, IndexError):
                continue
        return out

    def stop(self, remove: bool = True) -> None:
        """SIGTERM to ``ray start`` (it stops its children), then SIGKILL to what is left of the session."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            for _ in range(50):
                left = self.session()
                if not left:
                    break
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.2)
            self.proc.poll()
        if remove:
            shutil.rmtree(self.tmp, ignore_errors=True)
