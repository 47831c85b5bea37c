"""``robot-capture batch qa|export|retarget DIR...``: one stage over a centre's archive.

One job per bag, on a local process pool (``--workers``, default the core count) or, with
``--ray [ADDRESS]``, as Ray tasks on an existing cluster. A SQLite ledger in the output
folder makes a re-run skip what is done and redo what failed or changed. See
:mod:`robot_capture.batch` and README "Batch processing".
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import sys

HELP = "run qa, export or retarget over every bag of some folders (process pool or Ray cluster)"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "batch", help=HELP,
        description="Run one stage over every bag found in DIR... (recursively): one job per bag, the same "
                    "function the single-bag command runs. A ledger (SQLite, OUT/batch.sqlite) records each "
                    "bag's sha256, pipeline, status, duration, error and attempts: a re-run skips what is done "
                    "and redoes what failed or changed, also after the runner was killed. A bad bag fails its "
                    "own job; a worker that dies has its job retried; a file that is not a bag is skipped "
                    "and counted. Exit code 1 if any job failed, 2 on bad usage (no bag found, an --out "
                    "that is a file or cannot be made).",
        epilog="Examples:\n"
               "  robot-capture batch qa /archive/2026-12-01 --out /results/qa-2026-12-01\n"
               "  robot-capture batch export /archive/2026-12-01 --out /results/delivery-2026-12-01 --workers 16\n"
               "  robot-capture batch retarget /archive/2026-12-01 --out /results/kuavo --robot kuavo\n"
               "  robot-capture batch export /archive/day1 --out /results/day1 --ray auto --cpus-per-job 2\n"
               "With --ray every machine of the cluster needs robot_capture[ray] installed and the archive and "
               "OUT mounted at the same paths (README, 'Batch processing on a Ray cluster').",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    stages = p.add_subparsers(dest="stage", metavar="<stage>", required=True)
    from robot_capture.batch.jobs import STAGES, available_stages

    missing = available_stages()
    for stage in sorted(STAGES):
        text = _STAGE_HELP[stage] + (f" [not available in this build: {missing[stage]}]" if missing[stage] else "")
        sp = stages.add_parser(stage, help=text, description=text)
        sp.add_argument("dirs", nargs="+", metavar="DIR", help="bag directories or folders holding bags")
        sp.add_argument("--out", required=True,
                        help="output folder (required): the ledger batch.sqlite, job records, " + _OUTPUTS[stage])
        _add_common(sp)
        _STAGE_ARGS[stage](sp)
    return p


def _add_common(sp) -> None:
    sp.add_argument("--workers", type=int, default=None,
                    help=f"local worker processes (default: the core count, {_cores()} here); with --ray: the "
                         f"most tasks in flight (default: the cluster's CPUs / --cpus-per-job)")
    sp.add_argument("--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
                    help="run as Ray tasks on the cluster at ADDRESS (host:port; default when given "
                         "without ADDRESS: auto, the cluster this machine belongs to). Default: local pool")
    sp.add_argument("--cpus-per-job", type=float, default=1.0, help="with --ray: CPUs each task reserves (default: 1)")
    sp.add_argument("--retries", type=int, default=2, help="extra attempts for a job whose worker died (default: 2)")
    sp.add_argument("--timeout", type=float, default=0.0,
                    help="local pool: kill a job running longer than this many seconds and retry it (default: 0, no limit)")
    sp.add_argument("--force", action="store_true", help="redo every job, even those the ledger has done")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")


def _retarget_args(sp) -> None:
    sp.add_argument("--robot", default="g1", help="robot mapping name or YAML path (default: g1)")
    sp.add_argument("--bag-source", choices=("auto", "exo", "vr"), default="auto",
                    help="which human topics to use (default: auto, exo if present, else vr)")


def _qa_args(sp) -> None:
    sp.add_argument("--config", default="", help="QA config YAML (default: config/qa.yaml)")


def _export_args(sp) -> None:
    sp.add_argument("--mapping", default="", help="export mapping YAML (default: config/export/lerobot_default.yaml)")
    sp.add_argument("--fps", type=int, default=None, help="dataset frame rate (default: the mapping's)")
    sp.add_argument("--codec", choices=("libsvtav1", "h264", "hevc"), default=None,
                    help="video codec (default: the mapping's, libsvtav1 = AV1 as LeRobot)")
    sp.add_argument("--crf", type=int, default=None, help="video quality (default: the mapping's)")
    sp.add_argument("--gop", type=int, default=None, help="video keyframe interval (default: the mapping's)")
    sp.add_argument("--include-failed", action="store_true",
                    help="also deliver episodes labelled failed or with a failed verdict (default: not)")
    sp.add_argument("--robot-type", default=None, help="dataset robot_type (default: from the bags)")
    sp.add_argument("--no-qa", action="store_true",
                    help="do not run QA on a bag without a verdict before selecting it (default: run it)")


_STAGE_HELP = {
    "retarget": "re-retarget each bag's human topics onto another robot (OUT/bags/<name>)",
    "qa": "write each bag's QA verdict (<bag>/qa.json); folder statistics over every bag given",
    "export": "export each bag to a LeRobot v3 shard (OUT/shards), then merge them into OUT/dataset",
}
_OUTPUTS = {"qa": "(verdicts go to <bag>/qa.json)", "export": "shards/ and the merged dataset/",
            "retarget": "bags/ (one new bag per input bag)"}
_STAGE_ARGS = {"retarget": _retarget_args, "qa": _qa_args, "export": _export_args}


def _params(args) -> dict:
    if args.stage == "retarget":
        return {"robot": args.robot, "source": args.bag_source}
    if args.stage == "qa":
        return {"config": str(os.path.abspath(args.config)) if args.config else ""}
    opts = {"mapping": os.path.abspath(args.mapping) if args.mapping else None, "fps": args.fps,
            "codec": args.codec, "crf": args.crf, "gop": args.gop, "include_failed": args.include_failed,
            "robot_type": args.robot_type, "run_qa": not args.no_qa}
    return {"options": opts}


def run(args) -> int:
    from robot_capture.batch.jobs import available_stages
    from robot_capture.batch.pool import PoolBackend
    from robot_capture.batch.runner import run_batch

    missing = available_stages().get(args.stage, "")
    if missing:
        print(f"robot-capture batch {args.stage}: {missing}", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 1 or args.retries < 0 or args.cpus_per_job <= 0 or args.timeout < 0:
        print(f"robot-capture batch {args.stage}: need --workers >= 1, --retries >= 0, --cpus-per-job > 0, "
              "--timeout >= 0", file=sys.stderr)
        return 2
    from robot_capture.cli.outputs import check_output_dir

    backend = None
    try:
        out = check_output_dir(args.out, "--out")  # before any work: a file here used to be a traceback
        if args.ray is not None:
            from robot_capture.batch.ray_backend import RayBackend

            backend = RayBackend(args.ray, cpus_per_job=args.cpus_per_job, retries=args.retries,
                                 max_in_flight=args.workers)
        else:
            backend = PoolBackend(args.workers or _cores(), retries=args.retries, timeout_s=args.timeout or None)
        summary = run_batch(args.stage, args.dirs, out, backend, params=_params(args), progress=not args.quiet,
                            force=args.force)
    except (FileNotFoundError, NotADirectoryError, ValueError, sqlite3.DatabaseError) as exc:
        print(f"robot-capture batch {args.stage}: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # RayUnavailableError and friends: one line, no traceback
        print(f"robot-capture batch {args.stage}: {exc}", file=sys.stderr)
        return 2
    finally:
        if backend is not None and hasattr(backend, "shutdown"):
            backend.shutdown()
    for line in summary.lines():
        print(line)
    return 0 if summary.ok else 1
