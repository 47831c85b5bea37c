"""``robot-capture recover BAG|FOLDER...``: rebuild crashed bags' MCAP files and metadata.yaml."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HELP = "rebuild readable MCAP files and metadata.yaml after a crash"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "recover", help=HELP,
        description="After a crash (SIGKILL, power cut, truncated copy), rebuild every MCAP file of the bag "
                    "that has no valid footer from its complete records, and rebuild metadata.yaml from the "
                    "files. Originals are kept as <file>.orig (and metadata.yaml.orig); nothing is deleted. "
                    "A recovered episode is marked in metadata.yaml custom_data (episode.recovered: true, "
                    "episode.stop_reason: crash unless the recorder wrote one). Prints how many messages "
                    "were recovered per topic and per file. Intact files are left untouched, so running it "
                    "twice is harmless. A file whose channel (or schema) definitions were all damaged takes "
                    "them from the bag's other files when those agree. The recorder's leftover "
                    ".recording.lock and .disk_reserve are removed (not data); a qa.json that judged the bag "
                    "before the recovery is moved to qa.json.orig (run `robot-capture qa` again). A FOLDER "
                    "is searched for bags (directories holding .mcap files): recover a whole output "
                    "directory in one call.",
        epilog="Exit status: 0 recovered (or already intact), 2 not a bag / no bag found, 1 other error "
               "(with several bags: the worst).")
    p.add_argument("bags", nargs="+", metavar="BAG", help="bag directories, or folders holding bags")
    p.add_argument("--json", action="store_true", help="print the report(s) as JSON (default: text)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress on stderr (default: a progress bar with a percentage)")
    return p


def find_bag_dirs(paths) -> tuple[list[Path], list[str]]:
    """Bag directories (holding ``*.mcap``) in ``paths``, searched recursively; and the paths
    that hold none."""
    bags, empty = [], []
    for raw in paths:
        p = Path(raw)
        if p.is_dir() and any(p.glob("*.mcap")):
            bags.append(p)
            continue
        found = sorted({Path(root) for root, _d, files in os.walk(p) if any(f.endswith(".mcap") for f in files)})
        if found:
            bags.extend(found)
        else:
            empty.append(str(raw))
    return bags, empty


def _report_json(report) -> dict:
    return {"bag": report.bag_dir, "message_count": report.message_count, "topics": report.topics,
            "metadata": report.metadata_path,
            "files": [{"path": f.path, "status": f.status, "messages": f.messages, "topics": f.topics,
                       "backup": f.backup, "stopped_at": f.stopped_at, "borrowed": list(f.borrowed),
                       "damaged_chunks": len(f.damaged_chunks)} for f in report.files]}


def run(args) -> int:
    from robot_capture.bag.errors import BagError, NotABagError
    from robot_capture.bag.recover import recover

    bags, empty = find_bag_dirs(args.bags)
    for e in empty:
        print(f"robot-capture recover: {e}: not a bag directory and no bag (a folder with .mcap files) in it",
              file=sys.stderr)
    if not bags:
        return 2
    total = sum(f.stat().st_size for b in bags for f in b.glob("*.mcap"))
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                   desc="recover", dynamic_ncols=True)
    rc, reports = 0, []
    for bag in bags:
        done_before = {}

        def progress_bytes(name, done, size, _seen=done_before):
            if bar is not None:
                bar.set_postfix_str(f"{bag.name}/{name}", refresh=False)
                bar.update(max(0, done - _seen.get(name, 0)))
                _seen[name] = done
        try:
            report = recover(bag, progress_bytes=progress_bytes)
        except NotABagError as exc:
            _say(bar, f"robot-capture recover: {exc}")
            rc = max(rc, 2)
            continue
        except (BagError, OSError) as exc:  # BagError: still being recorded
            _say(bar, f"robot-capture recover: {exc}")
            rc = max(rc, 1)
            continue
        reports.append(report)
        aside = _set_aside_verdict(bag, report)
        if not args.json:
            _say(bar, report.format() + (f"\n  {aside}" if aside else ""), out=sys.stdout)
    if bar is not None:
        bar.close()
    if args.json:
        doc = [_report_json(r) for r in reports]
        print(json.dumps(doc[0] if len(doc) == 1 and len(bags) == 1 else doc, indent=2))
    if len(bags) > 1:
        print(f"{len(reports)} of {len(bags)} bags recovered or intact", file=sys.stderr)
    return rc


def _set_aside_verdict(bag: Path, report) -> str:
    """Move ``<bag>/qa.json`` to ``qa.json.orig`` when it judged the bag before this recovery:
    a file was rebuilt or set aside, or the verdict's ``bag`` finding said incomplete, damaged or
    unreadable (issue 23: the stale "run recover" fail would otherwise keep the recovered episode
    out of the export). Returns the line saying so, or ""."""
    from robot_capture.episodes.verdict import VERDICT_FILENAME, read_verdict

    path = bag / VERDICT_FILENAME
    if not path.is_file():
        return ""
    try:
        v = read_verdict(bag)
    except (OSError, ValueError):
        v = None
    changed = any(f.status != "intact" for f in report.files)
    if not changed and v is not None and not any(f.check == "bag" for f in v.findings):
        return ""
    dest = path.with_name(VERDICT_FILENAME + ".orig")
    i = 1
    while dest.exists():
        dest = path.with_name(f"{VERDICT_FILENAME}.orig.{i}")
        i += 1
    os.replace(path, dest)
    return f"QA verdict of the bag before recovery moved to {dest.name}: run `robot-capture qa {bag}`"


def _say(bar, text: str, out=None) -> None:
    out = out or sys.stderr
    if bar is not None:
        bar.clear()
    print(text, file=out, flush=True)
    if bar is not None:
        bar.refresh()
