"""``robot-capture qa BAG|DIR...``: the QA verdict of each episode, stored in ``<bag>/qa.json``."""
from __future__ import annotations

import argparse
import json
import sys

HELP = "judge episodes (pass/warn/fail with reasons) and store the verdict in each bag"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "qa", help=HELP, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Run the episode QA on bags or folders of bags (searched recursively, discarded/ "
                    "skipped): stream presence, rate against expected, gaps and drops, header stamps, camera "
                    "sync skew, duration, idle head/tail, retargeting, frozen or jumping command, labels. "
                    "Each verdict (pass, warn or fail, with reasons in plain words) is written to <bag>/qa.json, "
                    "which info, report, export and batch read. Thresholds: config/qa.yaml.",
        epilog="Expected rates come from the bag (custom_data expected_hz/<topic>, stored by the recorder), "
               "else from the config's expected_hz (per rig), else the bag is judged on its own topics. "
               "Exit code: 0 when no episode fails, 1 when one fails, 2 on bad input.")
    p.add_argument("paths", nargs="+", metavar="BAG|DIR", help="bag directories or folders of bags")
    p.add_argument("--config", default=None, metavar="YAML", help="QA config (default: the shipped config/qa.yaml)")
    p.add_argument("--rig", default=None, metavar="YAML", help="per-rig override file (only the keys it names; default: none)")
    p.add_argument("--rig-name", default=None, help="apply the rigs: <name> entry of the config (default: none)")
    p.add_argument("--json", action="store_true", help="print one JSON object per line: path, verdict, reasons")
    p.add_argument("--no-write", action="store_true", help="do not write <bag>/qa.json")
    p.add_argument("--quiet", "-q", action="store_true", help="print only episodes that warn or fail")
    return p


def loaded_configs(args) -> str:
    """``config: <qa.yaml> + <--config> + rig <file|name>``: the files this run's thresholds come from."""
    from pathlib import Path

    from robot_capture.qa.config import default_path

    parts = [str(default_path())]
    if args.config:
        parts.append(str(Path(args.config).resolve()))
    if args.rig_name:
        parts.append(f"rig {args.rig_name}")
    if args.rig:
        parts.append(f"rig {Path(args.rig).resolve()}")
    return "config: " + " + ".join(parts)


def run(args) -> int:
    from robot_capture.config_schema import ConfigError
    from robot_capture.qa.config import load_config
    from robot_capture.qa.run import env_progress, qa_paths

    try:
        cfg = load_config(args.config, rig=args.rig, rig_name=args.rig_name)
        print(loaded_configs(args), file=sys.stderr, flush=True)  # stderr: --json output stays JSON lines
        results = qa_paths(args.paths, cfg, write=not args.no_write, progress=env_progress() and not args.json)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        for line in str(exc).splitlines():
            print(f"robot-capture qa: {line}", file=sys.stderr)
        return 2
    failed = errors = 0
    counts = {"pass": 0, "warn": 0, "fail": 0}
    try:
        for path, v in results:
            if isinstance(v, str):
                errors += 1
                if args.json:
                    print(json.dumps({"path": str(path), "error": v}))
                else:
                    print(f"ERROR {path}: {v}")
                continue
            counts[v.verdict] += 1
            failed += v.verdict == "fail"
            if args.json:
                print(json.dumps({"path": str(path), "verdict": v.verdict, "error_cause": v.error_cause, "reasons": v.reasons,
                                  "findings": [f.to_dict() for f in v.findings], "trim": v.trim}, sort_keys=True))
                continue
            if args.quiet and v.verdict == "pass":
                continue
            print(f"{v.verdict.upper():4s} {path.name}" + (f" ({v.error_cause})" if v.error_cause else ""))
            for r in v.reasons:
                print(f"     - {r}")
        if not args.json:
            print(f"{sum(counts.values())} episodes: {counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail"
                  + (f"; {errors} not bags" if errors else ""))
    except BrokenPipeError:
        sys.stderr.close()
    return 1 if failed else (2 if errors and not sum(counts.values()) else 0)
