"""``robot-capture report DIR... --out report.html``: a self-contained HTML report of episodes."""
from __future__ import annotations

import argparse
import sys

HELP = "one self-contained HTML report of a folder of episodes (the day, and each episode)"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "report", help=HELP, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Write one HTML file (images inline, viewable offline): the day (episodes, hours, success "
                    "rate and QA verdicts per task, per operator and per hour; failure reasons ranked) and, "
                    "linked from the day table, each episode (verdict with reasons, camera thumbnails, command "
                    "vs measured state, IK error over time, stream rates).",
        epilog="Uses each bag's stored qa.json; episodes without one are judged now (not written: run "
               "`robot-capture qa` to store verdicts). An incomplete or damaged bag is reported as fail with "
               "what to do (`robot-capture recover`), and makes the exit code 1.")
    p.add_argument("paths", nargs="+", metavar="DIR|BAG", help="folders of bags (searched recursively) or bags")
    p.add_argument("--out", "-o", default="report.html", help="the HTML file to write")
    p.add_argument("--config", default=None, metavar="YAML", help="QA config (default: the shipped config/qa.yaml)")
    p.add_argument("--thumbnails", type=int, default=6, help="camera frames per episode strip")
    return p


def run(args) -> int:
    from pathlib import Path

    from robot_capture.config_schema import ConfigError
    from robot_capture.qa.report import build_report
    from robot_capture.qa.run import env_progress

    out = Path(args.out)
    if not out.parent.exists():
        print(f"robot-capture report: {out.parent}: no such directory", file=sys.stderr)
        return 2
    try:
        day = build_report(args.paths, out, args.config, progress=env_progress(), thumbnails=args.thumbnails)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        for line in str(exc).splitlines():
            print(f"robot-capture report: {line}", file=sys.stderr)
        return 2
    t = day["total"]
    print(f"{out}: {t['episodes']} episodes, {t['seconds'] / 3600:.3f} h, {t['pass']} pass, {t['warn']} warn, "
          f"{t['fail']} fail")
    bad = [r["problem"] for r in day["rows"] if r.get("problem")]
    for line in bad:  # incomplete or damaged: in the report as fail, and said here
        print(f"robot-capture report: {line}", file=sys.stderr)
    return 1 if bad else 0
