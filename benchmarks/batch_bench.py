#!/usr/bin/env python3
"""Batch benchmark: bags per minute for ``qa`` and ``export`` with 1 and 2 workers, on the local
process pool and on a local Ray cluster, in one run; the projected cores for a centre.

1. Records real episodes on the simulated floor (``robot-capture demo``'s :func:`run_demo`:
   mocap_replay on a real CMU clip -> retarget -> robot_sim, the recorder) with **3 cameras**
   (head, left_wrist, right_wrist: synthetic renders, raw 320x240 at 30 Hz), 2 episodes of
   ``--episode-s`` s, and copies them to ``--bags`` bags (relabelled: distinct content).
2. Starts a 2-CPU Ray head on 127.0.0.1 (``ray start --head --block``, own session, ended
   at the end) unless ``--ray-address`` names one or ``--skip-ray``.
3. For each stage and each (backend, workers): a fresh output folder, ``run_batch`` over all
   bags, wall time from the runner's start to its summary (including the export merge and
   the workers' start-up). bags/min = 60 x bags / wall.
4. Prints per stage: the table, the 1 -> 2 worker scaling ratio per backend (target >= 1.8 x
   on export), Ray's overhead against the pool at the same worker count (wall_ray / wall_pool
   - 1), the measured CPU-seconds per bag (CPU time of the job processes, all threads,
   summed from the 1-worker pool run), and the projection for a centre: 16,000 one-minute
   3-camera episodes a day, cost scaled linearly by recorded seconds, arithmetic shown.

A machine shared with other work (a CI box, a developer's laptop) lowers the scaling ratio:
the second worker competes for the second core. The script prints the load average before
and after, so the figures can be read against it.

    python benchmarks/batch_bench.py                      # 6 bags of 10 s, qa + export, pool + Ray
    python benchmarks/batch_bench.py --bags 4 --episode-s 5 --skip-ray
    python benchmarks/batch_bench.py --stages retarget    # any of qa, export, retarget
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

EPISODES_PER_DAY = 16_000
EPISODE_S = 60.0
CAMERAS = ("head", "left_wrist", "right_wrist")
from robot_capture.batch.local_ray import LOOPBACK_ENV, LocalRayHead  # noqa: E402

os.environ.update(LOOPBACK_ENV)  # before Ray is imported: keep a one-machine Ray on the loopback interface


def record(root: Path, n: int, episode_s: float) -> list[Path]:
    from robot_capture.episodes import relabel
    from robot_capture.floor import graph
    from robot_capture.floor.demo import list_bags, run_demo

    cfg = graph.load_config(None)
    cam = dict(cfg["cameras"]["head"])
    cfg["cameras"] = {name: dict(cam) for name in CAMERAS}
    for attempt in range(3):
        rec = root / f"recorded{attempt}"
        log = io.StringIO()
        run_demo(rec, episodes=2, episode_s=episode_s, config=cfg, out=log)  # rc 1 on a QA fail: not our concern
        src = list_bags(rec)
        if len(src) == 2:
            break
    else:
        sys.exit(f"the sim floor did not record 2 episodes:\n{log.getvalue()[-2000:]}")
    day = root / "archive"
    day.mkdir()
    bags = []
    for i in range(n):
        d = day / f"{src[i % 2].name}_c{i:02d}"
        shutil.copytree(src[i % 2], d)
        relabel(d, notes=f"bench copy {i}")
        bags.append(d)
    return bags


def run_one(stage, bags, out, backend_name, workers, ray_address):
    from robot_capture.batch.pool import PoolBackend
    from robot_capture.batch.ray_backend import RayBackend
    from robot_capture.batch.runner import run_batch

    params = {"retarget": {"robot": "h1", "source": "auto"}, "qa": {"config": ""},
              "export": {"options": {"include_failed": True}}}[stage]
    if backend_name == "pool":
        backend = PoolBackend(workers)
    else:
        backend = RayBackend(ray_address, cpus_per_job=1, max_in_flight=workers)
        backend.connect()  # connecting is not part of the run: a centre's driver connects once
    try:
        t0 = time.perf_counter()
        s = run_batch(stage, bags, out, backend, params=params, progress=False)
        wall = time.perf_counter() - t0
    finally:
        if backend_name == "ray":
            backend.shutdown()
    if s.failures:
        print(f"    {stage} {backend_name} x{workers}: {len(s.failures)} failure(s), e.g. {s.failures[0]}")
    return {"wall": wall, "cpu": s.job_cpu_s, "done": s.done, "bpm": 60.0 * len(bags) / wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--bags", type=int, default=6, help="bags per run")
    ap.add_argument("--episode-s", type=float, default=10.0, help="recorded seconds per episode")
    ap.add_argument("--stages", default="qa,export", help="comma-separated: qa, export, retarget")
    ap.add_argument("--workers", default="1,2", help="worker counts to compare")
    ap.add_argument("--skip-ray", action="store_true", help="process pool only")
    ap.add_argument("--ray-address", default="", help="use this cluster instead of starting a local one")
    args = ap.parse_args()

    from robot_capture.batch.jobs import available_stages

    avail = available_stages()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    for s in stages:
        if s not in avail:
            sys.exit(f"unknown stage {s!r}")
        if avail[s]:
            print(f"stage {s}: not available in this build ({avail[s]}); skipped")
    stages = [s for s in stages if not avail[s]]
    if not stages:
        return 1
    workers = [int(w) for w in args.workers.split(",")]
    root = Path(tempfile.mkdtemp(prefix="rc_batch_bench_"))
    ray = None
    try:
        print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
        t0 = time.perf_counter()
        bags = record(root, args.bags, args.episode_s)
        size_mb = sum(f.stat().st_size for f in bags[0].iterdir()) / 1e6
        print(f"recorded 2 episodes of {args.episode_s:g} s with {len(CAMERAS)} cameras on the sim floor, "
              f"{len(bags)} bags of {size_mb:.0f} MB, in {time.perf_counter() - t0:.0f} s")
        backends = ["pool"]
        address = args.ray_address
        if not args.skip_ray:
            try:
                import ray as _ray  # noqa: F401
            except ImportError:
                print("Ray is not installed (pip install 'robot_capture[ray]'): pool only")
            else:
                if not address:
                    ray = LocalRayHead(cpus=max(workers))
                    address = ray.address
                backends.append("ray")
        results = {}
        for stage in stages:
            for b in backends:
                for w in workers:
                    out = root / f"out_{stage}_{b}_{w}"
                    if stage == "qa":  # qa writes into the bags: start each run from no verdict
                        for bag in bags:
                            (bag / "qa.json").unlink(missing_ok=True)
                    results[(stage, b, w)] = r = run_one(stage, bags, out, b, w, address)
                    print(f"  {stage:8s} {b:4s} x{w}: {r['bpm']:7.1f} bags/min  (wall {r['wall']:6.1f} s, "
                          f"{r['done']}/{len(bags)} done, job CPU {r['cpu']:6.1f} s)", flush=True)
                    shutil.rmtree(out, ignore_errors=True)
        print(f"load average after: {os.getloadavg()[0]:.2f}\n")
        report(results, stages, backends, workers, len(bags), args.episode_s)
    finally:
        if ray is not None:
            ray.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


def report(results, stages, backends, workers, n, episode_s) -> None:
    lo, hi = min(workers), max(workers)
    total_cores = 0.0
    for stage in stages:
        print(f"== {stage}: {n} bags of {episode_s:g} s, {len(CAMERAS)} cameras ==")
        print(f"  {'backend':8s}" + "".join(f"  x{w} bags/min" for w in workers) + f"  scaling x{lo}->x{hi}")
        for b in backends:
            row = [results[(stage, b, w)]["bpm"] for w in workers]
            ratio = results[(stage, b, hi)]["bpm"] / results[(stage, b, lo)]["bpm"]
            target = "  (target >= 1.8)" if stage == "export" else ""
            print(f"  {b:8s}" + "".join(f"  {v:13.1f}" for v in row) + f"  {ratio:5.2f} x{target}")
        if "ray" in backends:
            for w in workers:
                over = results[(stage, "ray", w)]["wall"] / results[(stage, "pool", w)]["wall"] - 1
                print(f"  Ray overhead vs pool at x{w}: {100 * over:+.0f} % wall")
        base = results[(stage, "pool", lo)]
        cpu_per_bag = base["cpu"] / max(base["done"], 1)
        per_min = cpu_per_bag * EPISODE_S / episode_s
        day_cpu = EPISODES_PER_DAY * per_min
        cores = day_cpu / 86_400
        total_cores += cores
        print(f"  measured cost: {cpu_per_bag:.2f} CPU-s per {episode_s:g}-s bag (pool x{lo}, job CPU time)")
        print(f"  projection: {cpu_per_bag:.2f} CPU-s x ({EPISODE_S:g} s / {episode_s:g} s) = {per_min:.1f} CPU-s per "
              f"one-minute episode; x {EPISODES_PER_DAY:,} episodes/day = {day_cpu:,.0f} CPU-s/day; "
              f"/ 86,400 s/day = {cores:.1f} cores busy around the clock\n")
    if len(stages) > 1:
        print(f"all stages ({', '.join(stages)}): {total_cores:.1f} cores around the clock, before any headroom")


if __name__ == "__main__":
    sys.exit(main())
