#!/usr/bin/env python3
"""Writer-only throughput: robot_capture BagWriter vs a plain ``mcap`` Writer, same run.

Load (issue 2 recorder load, simulated, no DDS): N x 640x480 rgb8 cameras at 30 Hz,
a 30-joint JointState at 1 kHz, a 200 Hz exo JointState. Prints payload MB/s over
wall time and over CPU time, and CPU us per write, for each writer and compression.

    python benchmarks/bag_writer_bench.py                       # none, lz4, zstd; 10 s of data
    python benchmarks/bag_writer_bench.py --compression zstd --level 1 --cameras 6
    NODE_PATH=/tmp/mcapjs/node_modules python benchmarks/bag_writer_bench.py --validate

``--validate`` also checks every file written with the reference TypeScript reader
(``@mcap/core``, CRCs included) via ``benchmarks/mcap_validate.js`` when Node.js and
the package are available (see that file for the one-line npm set-up); it is never
required by the tests.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from robot_capture.ros_env import ensure_ament_prefix


def _validate(files) -> str:
    js = Path(__file__).with_name("mcap_validate.js")
    if shutil.which("node") is None:
        return "skipped (no node)"
    proc = subprocess.run(["node", str(js), *files], capture_output=True, text=True, timeout=600)
    if "Cannot find module" in proc.stderr:
        return "skipped (@mcap/core not installed; see benchmarks/mcap_validate.js)"
    return ("OK: " if proc.returncode == 0 else "INVALID: ") + (proc.stdout + proc.stderr).strip().replace("\n", "; ")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="simulated seconds of data (default 10)")
    ap.add_argument("--cameras", type=int, default=3, help="number of 640x480 30 Hz cameras (default 3)")
    ap.add_argument("--compression", choices=["none", "lz4", "zstd", "all"], default="all")
    ap.add_argument("--level", type=int, default=None, help="compression level (BagWriter only; plain mcap "
                                                            "has no level setting)")
    ap.add_argument("--chunk-size", type=int, default=4 << 20, help="chunk size in bytes (default 4 MiB)")
    ap.add_argument("--out", default=None, help="directory for the files (default: temp, removed)")
    ap.add_argument("--fsync", action="store_true",
                    help="keep BagWriter's periodic fdatasync on (its recording default; the plain writer "
                         "never syncs, so the comparison is off by default)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per writer, alternating order; best CPU kept")
    ap.add_argument("--validate", action="store_true", help="validate the files with @mcap/core (Node.js)")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    args = ap.parse_args(argv)
    ensure_ament_prefix()
    from robot_capture.bag.bench import compare_writers, make_load

    comps = ["none", "lz4", "zstd"] if args.compression == "all" else [args.compression]
    load = make_load(args.seconds, args.cameras)
    results = []
    for comp in comps:
        out = Path(args.out or tempfile.mkdtemp(prefix="bagbench_")) / comp
        try:
            res = compare_writers(args.seconds, args.cameras, comp, args.level, args.chunk_size, out_dir=out,
                                  load=load, fsync=args.fsync, repeat=args.repeat, keep=args.validate)
            if args.validate:
                res["validation"] = _validate(res["files_kept"]["bag_writer"] + res["files_kept"]["plain_mcap"])
                shutil.rmtree(out, ignore_errors=True)
        finally:
            if not args.out:
                shutil.rmtree(out.parent, ignore_errors=True)
        results.append(res)
        if not args.json:
            ld = res["load"]
            print(f"\n== {comp}{'' if args.level is None else f' level {args.level}'}, chunk {args.chunk_size >> 10} KiB: "
                  f"{ld['messages']} messages, {ld['mbytes']:.0f} MB ({args.cameras} cameras, {args.seconds:g} s)"
                  f"{', fsync on' if args.fsync else ''}")
            print(f"{'writer':<12}{'MB/s wall':>11}{'MB/s CPU':>10}{'us/msg CPU':>12}{'file MB':>9}")
            for name in ("bag_writer", "plain_mcap"):
                r = res[name]
                print(f"{name:<12}{r['mb_per_s_wall']:>11.0f}{r['mb_per_s_cpu']:>10.0f}"
                      f"{r['us_per_msg_cpu']:>12.1f}{r['file_mb']:>9.0f}")
            b, p = res["bag_writer"], res["plain_mcap"]
            print(f"speed-up (CPU): x{p['cpu_s'] / b['cpu_s']:.2f}   realtime load needs "
                  f"{ld['mbytes'] / args.seconds:.0f} MB/s -> BagWriter CPU share "
                  f"{100 * b['cpu_s'] / args.seconds:.1f}% of one core")
            if "validation" in res:
                print(f"validation: {res['validation']}")
    # small messages only: the per-write cost that bounds high-rate topics
    small = compare_writers(args.seconds, 0, "none", None, args.chunk_size, load=make_load(args.seconds, 0),
                            repeat=args.repeat)
    results.append(small)
    if not args.json:
        b, p = small["bag_writer"], small["plain_mcap"]
        print(f"\n== joint states only (1 kHz + 200 Hz), no compression: {small['load']['messages']} messages")
        print(f"bag_writer {b['us_per_msg_cpu']:.2f} us/msg CPU, plain_mcap {p['us_per_msg_cpu']:.2f} us/msg CPU")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    sys.exit(main())
