"""``robot-capture export DIR|BAG... --format lerobot --out DATASET``: episodes -> LeRobot v3.0."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "export episode bags to a LeRobot v3.0 dataset (parquet + AV1 video) or HDF5 (ALOHA, robomimic)"
FORMATS = ("lerobot", "hdf5-aloha", "hdf5-robomimic")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export", help=HELP,
        description="Export episode bags to a LeRobot v3.0 dataset that LeRobotDataset and lerobot-train "
                    "load. Every stream is resampled by its header stamps onto one frame grid "
                    "(timestamp = k / fps); cameras become AV1 (or h264) videos whose frame k sits at "
                    "from_timestamp + k / fps. By default only episodes whose QA verdict is not fail and "
                    "whose success label is true are exported. Exporting into an existing dataset appends; "
                    "a bag already in it (same sha256) is skipped.",
        epilog="Mapping of topics to features: config/export/lerobot_default.yaml (copy it and pass "
               "--mapping to change it). Exit code 0 when no bag ended in error, 1 otherwise, 2 on bad usage "
               "(no bag found, an --out that is a file or cannot be made).")
    p.add_argument("paths", nargs="+", metavar="DIR|BAG", help="episode bag directories, or directories holding them")
    p.add_argument("--format", default="lerobot", metavar="FORMAT",
                   help=f"output format: {', '.join(FORMATS)} (default lerobot: LeRobot v3.0; hdf5-aloha: a directory "
                        "of ALOHA/ACT episode_<i>.hdf5 files; hdf5-robomimic: one robomimic file, --out FILE.hdf5)")
    p.add_argument("--out", required=True, metavar="DATASET", help="dataset directory (created or appended to)")
    p.add_argument("--mapping", default=None, metavar="YAML",
                   help="stream -> feature mapping (default: config/export/lerobot_default.yaml)")
    p.add_argument("--fps", type=int, default=None,
                   help="frame grid rate (default: the mapping's, else the primary camera's rate)")
    p.add_argument("--codec", choices=["libsvtav1", "h264", "hevc"], default=None,
                   help="video codec (default: the mapping's, libsvtav1 = AV1 as LeRobot)")
    p.add_argument("--gop", type=int, default=None, help="keyframe interval in frames (default: the mapping's, 2)")
    p.add_argument("--crf", type=int, default=None, help="constant rate factor (default: the mapping's, 30)")
    p.add_argument("--include-failed", action="store_true",
                   help="export every episode, whatever its verdict and success label (default: off)")
    p.add_argument("--rejects", default=None, metavar="DATASET",
                   help="export the episodes the selection leaves out into this dataset instead of skipping them "
                        "(default: none, they are skipped)")
    p.add_argument("--robot-type", default=None, help="info.json robot_type (default: the episodes' robot label)")
    p.add_argument("--no-qa", action="store_true", help="do not run the QA job on bags without a verdict (default: run it when installed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    return p


def _check_inputs(args) -> str:
    """'' when there is a bag to export and the output folders can be used, else the one-line
    error (checked before any work: a bad --out used to fail once per bag, after the encoding)."""
    from robot_capture.cli.outputs import OutputPathError, check_output_dir
    from robot_capture.episodes import find_bags

    from robot_capture.config_schema import suggest

    if args.format not in FORMATS:
        return f"--format: unknown format {args.format!r}{suggest(args.format, FORMATS)} (one of {', '.join(FORMATS)})"
    try:
        if not find_bags(args.paths):
            return f"no bags found in {', '.join(args.paths)}"
        if args.format == "hdf5-robomimic":  # one file: its folder must be usable
            check_output_dir(Path(args.out).expanduser().resolve().parent, "--out")
        else:
            check_output_dir(args.out, "--out")
        if args.rejects:
            check_output_dir(args.rejects, "--rejects")
    except (FileNotFoundError, OutputPathError) as exc:
        return str(exc)
    return ""


def run(args) -> int:
    from robot_capture.config_schema import ConfigError
    from robot_capture.export.lerobot import ExportOptions, export_episodes

    problem = _check_inputs(args)
    if problem:
        print(f"robot-capture export: {problem}", file=sys.stderr)
        return 2
    opts = ExportOptions(mapping=args.mapping, fps=args.fps, codec=args.codec, gop=args.gop, crf=args.crf,
                         include_failed=args.include_failed, rejects=Path(args.rejects) if args.rejects else None,
                         robot_type=args.robot_type, run_qa=not args.no_qa)
    try:
        if args.format.startswith("hdf5-"):
            from robot_capture.export.hdf5 import export_hdf5

            if args.rejects:
                print("robot-capture export: --rejects is for --format lerobot", file=sys.stderr)
                return 2
            summary = export_hdf5(args.paths, Path(args.out), args.format, opts)
        else:
            summary = export_episodes(args.paths, Path(args.out), opts, progress=not args.no_progress)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"robot-capture export: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print("\n".join(summary.lines()))
    return 0 if summary.ok else 1
