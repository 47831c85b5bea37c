"""``robot-capture batch --ray ADDRESS`` on a real local Ray cluster, over real floor bags.

One cluster for the module: ``ray start --head --block --num-cpus 2`` on 127.0.0.1 (a free
port, its own ``--temp-dir``, no dashboard), in its own session (Ray gives each worker its own
process group, but all stay in the session of ``ray start``), which the fixture ends at the
end, failing or not: SIGTERM to ``ray start``, then SIGKILL to whatever of the session is
left. ``ray stop`` is not used: it stops every Ray process of the machine, not only this
test's. ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps
every Ray address on the loopback interface (Ray otherwise advertises the machine's own IP).

Shown: the same outputs as the process pool and as the single-bag functions; a Ray worker
killed (SIGKILL) mid-run still finishes every job; the runner killed mid-run and run again
finishes the rest with no job done twice (ledger).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from _batch_bags import archive

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
# Read by Ray when it is imported (ray_constants): set before the import, for the driver in this
# process and (inherited) for the cluster and the runner subprocesses.
os.environ.update(LOOPBACK_ENV)
ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.ros, pytest.mark.xdist_group("sim_floor"), pytest.mark.timeout(300)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_exe() -> str:
    exe = Path(sys.executable).parent / "ray"
    if not exe.exists():
        pytest.fail(f"the ray CLI is not next to {sys.executable}")
    return str(exe)


@pytest.fixture(scope="module")
def cluster():
    """(``127.0.0.1:<port>`` of a 2-CPU head node, its session id)."""
    tmp = tempfile.mkdtemp(prefix="rcray_")  # short: Ray's unix socket paths must stay under 107 chars
    port = _free_port()
    log = open(Path(tmp) / "ray_start.log", "w")
    proc = subprocess.Popen([_ray_exe(), "start", "--head", "--block", "--num-cpus", "2", "--port", str(port),
                             "--node-ip-address", "127.0.0.1", "--temp-dir", tmp, "--include-dashboard=false",
                             "--disable-usage-stats"], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ})
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"ray start exited {proc.returncode}: {(Path(tmp) / 'ray_start.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the Ray head did not listen within 90 s")
                time.sleep(0.5)
        yield f"127.0.0.1:{port}", proc.pid
    finally:
        if ray.is_initialized():
            ray.shutdown()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            left = _session(proc.pid)
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        proc.poll()
        log.close()


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch_ray")
    bags, bad = archive(root, n=12)
    return root, bags, bad


def _session(sid: int, title: bytes = b"") -> list[int]:
    """pids in session ``sid`` (the test's Ray cluster), other than zombies; with ``title``, only
    processes whose command line starts with it."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if os.getsid(int(d.name)) != sid or " Z " in (d / "stat").read_text().split(")", 1)[1][:4]:
                continue
            if not title or (d / "cmdline").read_bytes().startswith(title):
                out.append(int(d.name))
        except (OSError, ProcessLookupError, IndexError):
            continue
    return out


def _task_workers(sid: int) -> list[int]:
    """pids of this cluster's Ray workers executing run_job (process title ``ray::run_job``)."""
    return _session(sid, b"ray::run_job")


class _KillRayWorker:
    """Wraps a RayBackend: once two tasks are in flight, SIGKILLs a worker running a task (once;
    if none is seen running within 5 s, tries again at the next start)."""

    def __init__(self, inner, sid):
        self.inner, self.sid, self.killed, self.starts = inner, sid, [], 0
        self.name = inner.name

    def describe(self):
        return self.inner.describe()

    def run(self, jobs, on_start, on_result, on_crash):
        def start(job, pid):
            on_start(job, pid)
            self.starts += 1
            deadline = time.monotonic() + 5
            while self.starts >= 2 and not self.killed and time.monotonic() < deadline:
                pids = _task_workers(self.sid)
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
                    self.killed.append(pids[0])
                    break
                time.sleep(0.01)

        self.inner.run(jobs, start, on_result, on_crash)


def _commands(bag):
    from robot_capture.bag.reader import BagReader

    with BagReader(bag) as r:
        return [(m.log_time_ns, tuple(m.message.name), tuple(m.message.position))
                for m in r.messages(topics=["/retarget/joint_command"], decode=True)]


def test_retarget_on_ray_with_a_killed_worker_matches_pool_and_single_bag(cluster, day):
    from robot_capture.batch.pool import PoolBackend
    from robot_capture.batch.ray_backend import RayBackend
    from robot_capture.batch.runner import run_batch
    from robot_capture.offline.bag_retarget import retarget_bag

    address, sid = cluster
    root, bags, bad = day
    params = {"robot": "h1", "source": "auto"}
    backend = _KillRayWorker(RayBackend(address, cpus_per_job=1, retries=3), sid)
    try:
        s_ray = run_batch("retarget", [bags[0].parent], root / "ray", backend, params=params, progress=False)
    finally:
        backend.inner.shutdown()
    assert backend.killed, "no Ray worker was seen running a job"
    assert s_ray.done == 12 and s_ray.failed == 2, s_ray.lines()
    assert {p for p, _r in s_ray.failures} == {str(bad["not_bag"].resolve()), str(bad["truncated"].resolve())}
    s_pool = run_batch("retarget", bags[:3], root / "pool", PoolBackend(2), params=params, progress=False)
    assert s_pool.done == 3
    single = root / "single"
    retarget_bag(bags[1], single, robot="h1")
    for b in bags[:3]:
        assert _commands(root / "ray" / "bags" / b.name) == _commands(root / "pool" / "bags" / b.name)
    assert _commands(root / "ray" / "bags" / bags[1].name) == _commands(single)
    assert sorted(p.name for p in (root / "ray" / "bags").iterdir()) == sorted(b.name for b in bags)


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
runner.run_batch("retarget", [sys.argv[2]], sys.argv[3], RayBackend(sys.argv[4]), params={"robot": "g1",
                 "source": "auto"}, progress=False)
"""


def test_ray_runner_killed_then_rerun_finishes_the_rest_once(cluster, day):
    from robot_capture.batch.ledger import Ledger
    from robot_capture.batch.ray_backend import RayBackend
    from robot_capture.batch.runner import run_batch

    address, _pgid = cluster
    root, bags, _bad = day
    out = root / "ray_killed"
    proc = subprocess.run([sys.executable, "-c", _KILL_AFTER, "4", str(bags[0].parent), str(out), address],
                          capture_output=True, text=True, timeout=180, env={**os.environ},
                          cwd=root)  # not the checkout: `python -c` would import its unbuilt package
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    with Ledger(out) as led:
        first = [r.status for r in led.rows("retarget")]
    assert first.count("done") == 4 and "running" in first
    backend = RayBackend(address)
    try:
        s = run_batch("retarget", [bags[0].parent], out, backend, params={"robot": "g1", "source": "auto"},
                      progress=False)
    finally:
        backend.shutdown()
    assert s.done == 12 and s.skipped == 4 and s.failed == 2
    with Ledger(out) as led:
        finished = [e["bag"] for e in led.events("retarget") if e["event"] in ("done", "reused")]
    assert sorted(finished) == sorted(str(b.resolve()) for b in bags)  # each good bag finished once
    assert sorted(p.name for p in (out / "bags").iterdir()) == sorted(b.name for b in bags)
