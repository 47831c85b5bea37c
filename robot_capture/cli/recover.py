"""``robot-capture recover BAG``: rebuild a crashed bag's MCAP files and metadata.yaml."""
from __future__ import annotations

import argparse
import json
import sys

HELP = "rebuild readable MCAP files and metadata.yaml after a crash"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "recover", help=HELP,
        description="After a crash (SIGKILL, power cut, truncated copy), rebuild every MCAP file of the bag "
                    "that has no valid footer from its complete records, and rebuild metadata.yaml from the "
                    "files. Originals are kept as <file>.orig (and metadata.yaml.orig); nothing is deleted. "
                    "Prints how many messages were recovered per topic and per file. Intact files are left "
                    "untouched, so running it twice is harmless.",
        epilog="Exit status: 0 recovered (or already intact), 2 not a bag, 1 other error.")
    p.add_argument("bag", help="bag directory")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-file progress lines on stderr")
    return p


def run(args) -> int:
    from robot_capture.bag.errors import BagError, NotABagError
    from robot_capture.bag.recover import recover

    def progress(line):
        if not args.quiet:
            print(f"  {line}", file=sys.stderr, flush=True)

    try:
        report = recover(args.bag, progress=progress)
    except NotABagError as exc:
        print(f"robot-capture recover: {exc}", file=sys.stderr)
        return 2
    except BagError as exc:  # still being recorded
        print(f"robot-capture recover: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"robot-capture recover: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({
            "bag": report.bag_dir, "message_count": report.message_count, "topics": report.topics,
            "metadata": report.metadata_path,
            "files": [{"path": f.path, "status": f.status, "messages": f.messages, "topics": f.topics,
                       "backup": f.backup, "stopped_at": f.stopped_at} for f in report.files],
        }, indent=2))
    else:
        print(report.format())
    return 0
