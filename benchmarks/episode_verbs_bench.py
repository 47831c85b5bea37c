#!/usr/bin/env python3
"""Latency of the `robot-capture episode` verbs as an operator runs them (issue 18, "Fast verbs").

Starts a recorder (`robot-capture record --no-auto-start`, no expected streams: every start is
allowed) in a private ROS_DOMAIN_ID, then times whole runs of the installed CLI, from process
start to exit, for each verb: `start --task ...`, `status`, `success`, `fail`, in cycles of
start, status, success, start, fail. Two loads: quiet, and with a busy loop pinned to every
core but the first (the "other core busy" of a 2-core robot PC). Two transports in the same
run: `auto` (what a user gets: the recorder's local socket, else DDS) and `dds` (the services
through rclpy and DDS discovery: how every verb ran before the socket, the "before" figure).

    python benchmarks/episode_verbs_bench.py                 # 20 cycles (auto), 8 (dds) per load
    python benchmarks/episode_verbs_bench.py --loads busy --dds-cycles 0

Prints median / p95 / max per load, transport and verb, and the ratio dds / auto of the
medians. Target (issue 18): `auto` median <= 0.5 s and p95 <= 1.5 s per verb with the other
core busy; exit 1 if missed or if a verb failed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _installed import require_installed

require_installed()

TARGET_MEDIAN_S = 0.5  # issue 18
TARGET_P95_S = 1.5  # issue 18
VERBS = ("start", "status", "success", "fail")


def _p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def _exe() -> str:
    return str(Path(sys.executable).parent / "robot-capture")


def _busy(cores: list[int]) -> list[subprocess.Popen]:
    """One busy loop per core in ``cores`` (pinned there)."""
    procs = []
    for c in cores:
        code = f"import os; os.sched_setaffinity(0, {{{c}}})\nwhile True: pass"
        procs.append(subprocess.Popen([sys.executable, "-c", code]))
    return procs


def _verb(args: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    p = subprocess.run([_exe(), "episode", *args], capture_output=True, text=True, env=env, timeout=120)
    return time.perf_counter() - t0, p


def _cycles(n: int, transport: str, env: dict, times: dict, failures: list) -> None:
    common = ["--recorder", "bench_recorder", "--transport", transport, "--timeout", "30"]
    for i in range(n):
        for verb in ("start", "status", "success", "start", "fail"):
            extra = ["--task", f"bench {i}"] if verb == "start" else []
            dt, p = _verb([verb, *common, *extra], env)
            if p.returncode != 0:
                failures.append(f"{transport} {verb}: exit {p.returncode}: {p.stderr.strip()[-300:]}")
            times.setdefault(verb, []).append(dt)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--cycles", type=int, default=20, help="cycles per load with --transport auto")
    ap.add_argument("--dds-cycles", type=int, default=8, help="cycles per load with --transport dds (0: skip)")
    ap.add_argument("--loads", default="quiet,busy", help="comma-separated: quiet, busy")
    a = ap.parse_args(argv)
    loads = [x.strip() for x in a.loads.split(",") if x.strip()]
    if not loads or set(loads) - {"quiet", "busy"}:
        ap.error("--loads: quiet and/or busy")

    tmp = Path(tempfile.mkdtemp(prefix="verbs_bench_"))
    env = dict(os.environ, ROS_DOMAIN_ID=str(201 + os.getpid() % 31))  # beside the tests' 1-200
    log = open(tmp / "record.log", "wb")
    rec = subprocess.Popen([_exe(), "record", "-o", str(tmp / "rec"), "--no-auto-start", "--node-name",
                            "bench_recorder", "/bench_topic"], stdout=log, stderr=subprocess.STDOUT, env=env,
                           start_new_session=True)
    cores = sorted(os.sched_getaffinity(0))
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {len(cores)} cores, load average {os.getloadavg()[0]:.1f}, "
          f"python {sys.version.split()[0]}, ROS_DOMAIN_ID {env['ROS_DOMAIN_ID']}")
    results: dict[tuple[str, str], dict[str, list[float]]] = {}
    failures: list[str] = []
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:  # the recorder answers (on either transport)
            if _verb(["status", "--recorder", "bench_recorder", "--timeout", "5"], env)[1].returncode == 0:
                break
            if rec.poll() is not None:
                sys.exit("error: the recorder exited: " + (tmp / "record.log").read_text()[-2000:])
        else:
            sys.exit("error: the recorder did not answer within 60 s")
        for load in loads:
            busy = _busy(cores[1:] or cores) if load == "busy" else []
            try:
                for transport, n in (("auto", a.cycles), ("dds", a.dds_cycles)):
                    if n > 0:
                        times = results.setdefault((load, transport), {})
                        _cycles(n, transport, env, times, failures)
                        print(f"# {load} {transport}: done, load average {os.getloadavg()[0]:.1f}", flush=True)
            finally:
                for p in busy:
                    p.kill()
                    p.wait()
    finally:
        rec.send_signal(signal.SIGINT)
        try:
            rec.wait(30)
        except subprocess.TimeoutExpired:
            rec.kill()
        log.close()
    if not failures:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"# recorder log and bags kept in {tmp}")

    print(f"{'load':6} {'transport':9} {'verb':8} {'n':>3} {'median s':>9} {'p95 s':>7} {'max s':>7} {'dds/auto':>9}")
    missed = []
    for (load, transport), times in results.items():
        for verb in VERBS:
            xs = times.get(verb, [])
            if not xs:
                continue
            med, p95 = statistics.median(xs), _p95(xs)
            ratio = ""
            if transport == "dds" and results.get((load, "auto"), {}).get(verb):
                ratio = f"{med / statistics.median(results[(load, 'auto')][verb]):.1f}x"
            print(f"{load:6} {transport:9} {verb:8} {len(xs):3d} {med:9.3f} {p95:7.3f} {max(xs):7.3f} {ratio:>9}")
            if transport == "auto" and load == "busy" and (med > TARGET_MEDIAN_S or p95 > TARGET_P95_S):
                missed.append(f"{verb}: median {med:.3f} s, p95 {p95:.3f} s")
    for f in failures[:10]:
        print(f"FAILED {f}")
    if missed:
        print(f"target missed (median <= {TARGET_MEDIAN_S} s, p95 <= {TARGET_P95_S} s, other core busy): "
              + "; ".join(missed))
    return 1 if missed or failures else 0


if __name__ == "__main__":
    sys.exit(main())
