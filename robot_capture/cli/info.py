"""``robot-capture info BAG [BAG|DIR...]``: one bag in detail, or one table row per episode.

One bag: what ``ros2 bag info`` prints (files, size, storage, duration, start/end, count),
then one line per topic (with the station contract's name of the stream where the bag has one:
custom_data ``stream/<topic>``) with its rate and the gap figures of the QA (same definitions:
:mod:`robot_capture.qa.context`: timebase, expected rate, missing messages, longest gap),
the labels once, the stored verdict, and ``drops /topic: n`` for the recorder's non-zero
drop counters. Several bags or a folder: one row per episode (task, operator, success,
duration, verdict), from labels and qa.json only (no message data is read).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HELP = "summarize a bag (topics, rates, gaps, labels, verdict), or a table of the episodes in folders"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "info", help=HELP, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="One bag: like `ros2 bag info` (files, size, storage, duration, start/end, message count, "
                    "chunk compression, per-topic type and count), plus per-topic rate, expected rate, missing "
                    "messages and longest gap with the QA's definitions (header stamps where the type has a "
                    "Header, read from the MCAP indexes: image payloads are not read), the episode labels, "
                    "the stored QA verdict and the recorder's drop counters. Several bags or a folder: one "
                    "row per episode: task, operator, success, duration, verdict.",
        epilog="An incomplete bag (a crashed recording: .mcap files metadata.yaml does not list, or a file "
               "without footer) is reported as such, one line each, with exit code 1: run `robot-capture "
               "recover BAG` first. Run `robot-capture qa` to compute verdicts.")
    p.add_argument("bags", nargs="+", metavar="BAG|DIR", help="bag directories (or .mcap files), or folders of bags")
    p.add_argument("--json", action="store_true", help="print JSON (one object; a list for several episodes)")
    p.add_argument("--gap-threshold", type=float, default=None, metavar="S",
                   help="also list every interval longer than S seconds (default: list the intervals the QA "
                        "counts as drops, over 1.5 periods)")
    p.add_argument("--max-gaps", type=int, default=5, help="gaps listed per topic in text output")
    p.add_argument("--no-gaps", action="store_true", help="skip the timing scan (faster on huge bags)")
    return p


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


def _stamp(ns: int) -> str:
    sec, frac = divmod(int(ns), 1_000_000_000)
    return time.strftime("%b %d %Y %H:%M:%S", time.gmtime(sec)) + f".{frac // 1_000_000:03d} UTC ({sec}.{frac:09d})"


def _drops(custom: dict) -> dict[str, int]:
    out = {}
    for k, v in (custom or {}).items():
        if k.startswith(("drops/", "drops.")):
            try:
                out[k[6:]] = int(float(v))
            except ValueError:
                continue
    return out


def summarize(bag, gap_threshold=None, gaps=True) -> dict:
    """The info of one bag as a JSON-ready dict with typed values.

    Raises NotABagError, IncompleteBagFileError, ValueError.
    """
    import numpy as np

    from robot_capture.episodes import load_episode
    from robot_capture.floor.contract import streams_from_custom_data
    from robot_capture.qa.bagdata import BagData
    from robot_capture.qa.context import topic_timing
    from robot_capture.qa.run import expected_from_bag

    with BagData(bag) as d:
        r, m = d.reader, d.metadata
        size = sum(f.stat().st_size for f in Path(r.path).iterdir() if f.is_file() and f.suffix != ".orig") \
            if Path(bag).is_dir() else Path(bag).stat().st_size
        try:
            ep = load_episode(r.path)
        except (OSError, ValueError):
            ep = None
        custom = dict(m.custom_data or {})
        expected = expected_from_bag(custom)
        streams = streams_from_custom_data(custom)
        start = ep.start_ns if ep and ep.start_ns else m.starting_time_ns
        topics = []
        for name, info in r.topics.items():
            entry = {"topic": name, "type": info.type, "count": int(info.count),
                     "serialization_format": info.serialization_format, "expected_hz": expected.get(name)}
            if streams.get(name, {}).get("name"):  # the station contract's name (issue 18)
                entry["name"] = streams[name]["name"]
            presence_only = name in expected and not expected[name]  # e.g. /diagnostics: several publishers
            if gaps and d.count(name) and presence_only:
                dur = m.duration_ns / 1e9
                entry["rate_hz"] = round(info.count / dur, 3) if dur > 0 else 0.0
            elif gaps and d.count(name):
                st = d.stamps(name)
                base, times = "receive", d.log_times(name)
                if st is not None and len(st) >= 2 and np.all(st > 0) and \
                        np.count_nonzero(np.diff(st) > 0) >= 0.99 * (len(st) - 1):
                    base, times = "stamp", st
                tt = topic_timing(times, base, expected.get(name), start, d.log_times(name))
                entry.update(rate_hz=round(tt.rate_hz, 3), effective_hz=round(tt.effective_hz, 3), timebase=base,
                             missing=tt.drops, longest_gap_s=round(tt.longest_gap_s, 6),
                             longest_gap_at_s=round(tt.longest_gap_at_s, 6))
                thr = gap_threshold if gap_threshold is not None else 1.5 * tt.period_s
                ts = np.sort(times)
                dt = np.diff(ts) / 1e9
                idx = np.nonzero(dt > thr)[0] if thr > 0 else []
                entry.update(gap_threshold_s=round(float(thr), 6), gap_count=int(len(idx)),
                             gaps=[{"at_s": round((int(ts[k]) - int(ts[0])) / 1e9 + tt.first_s, 6),
                                    "length_s": round(float(dt[k]), 6)} for k in idx])
            elif not gaps:
                dur = m.duration_ns / 1e9
                entry["rate_hz"] = round(info.count / dur, 3) if dur > 0 else 0.0
            topics.append(entry)
        records = r.metadata_records()
        records.pop("rosbag2", None)
        out = {
            "path": str(r.path), "files": [f.name for f in r.files], "bag_size_bytes": size,
            "storage_identifier": m.storage_identifier, "ros_distro": m.ros_distro, "metadata_version": m.version,
            "duration_s": m.duration_ns / 1e9, "start_ns": m.starting_time_ns, "end_ns": m.end_time_ns,
            "message_count": m.message_count, "chunk_compression": sorted(r.chunk_compression) or ["none"],
            "compression_format": m.compression_format, "compression_mode": m.compression_mode,
            "topics": topics, "episode": _episode(ep), "records": records, "drops": _drops(custom),
            "verdict": ep.verdict.to_dict() if ep and ep.verdict else None,
            "custom_data": custom, "attachments": sorted(r.attachments()),
        }
    return out


def _episode(ep) -> dict:
    if ep is None:
        return {}
    return {"name": ep.name, "task": ep.task, "operator": ep.operator, "scene": ep.scene, "notes": ep.notes,
            "success": ep.success, "robot": ep.robot, "start_ns": ep.start_ns, "stop_ns": ep.stop_ns,
            "duration_s": ep.duration_s, "stop_reason": ep.stop_reason, "flags": list(ep.flags)}


def format_text(info: dict, max_gaps: int = 5) -> str:
    """The text form of :func:`summarize`."""
    lines = []

    def kv(k, v):
        lines.append(f"{k + ':':<20}{v}")

    kv("Files", "\n".join((" " * 20 if i else "") + f for i, f in enumerate(info["files"])) or "(none)")
    kv("Bag size", _size(info["bag_size_bytes"]))
    kv("Storage id", info["storage_identifier"])
    kv("ROS Distro", info["ros_distro"] or "(unknown)")
    kv("Duration", f"{info['duration_s']:.9f}s")
    kv("Start", _stamp(info["start_ns"]))
    kv("End", _stamp(info["end_ns"]))
    kv("Messages", info["message_count"])
    kv("Chunk compression", ", ".join(info["chunk_compression"]))
    if info["compression_format"]:
        kv("Bag compression", f"{info['compression_format']} ({info['compression_mode']})")
    ep = info["episode"]
    if ep:
        succ = {True: "true", False: "false", None: "unknown"}[ep["success"]]
        kv("Episode", f"task: {ep['task'] or '-'} | operator: {ep['operator'] or '-'} | scene: {ep['scene'] or '-'}"
                      f" | success: {succ}" + (f" | stop: {ep['stop_reason']}" if ep["stop_reason"] else ""))
        if ep["notes"]:
            kv("Notes", ep["notes"])
    v = info["verdict"]
    kv("Verdict", _verdict_line(v) + ("" if v is None else "".join(f"\n{'':20}- {r}" for r in v["reasons"])))
    nw = max((len(t.get("name", "")) for t in info["topics"]), default=0)  # 0: a bag without a contract
    w = max((len(t["topic"]) for t in info["topics"]), default=0)
    label = {t["topic"]: (f"{t.get('name', ''):<{nw}}  " if nw else "") + f"{t['topic']:<{w}}" for t in info["topics"]}
    lines.append(f"{'Topic information:':<20}" + ("" if info["topics"] else "(none)"))
    for t in info["topics"]:
        line = f"  Topic: {label[t['topic']]} | Type: {t['type']} | Count: {t['count']}"
        if "rate_hz" in t:
            line += f" | Rate: {t['rate_hz']:.2f} Hz"
        if t.get("expected_hz"):
            line += f" (expected {t['expected_hz']:.4g})"
        if "missing" in t:
            line += f" | Missing: {t['missing']} | Longest gap: {t['longest_gap_s'] * 1e3:.1f} ms"
        lines.append(line + f" | Serialization Format: {t['serialization_format']}")
    listed = [t for t in info["topics"] if t.get("gap_count")]
    if listed:
        lines.append("Gaps:")
        for t in listed:
            lines.append(f"  {label[t['topic']]}  {t['gap_count']} gap(s) > {t['gap_threshold_s'] * 1e3:.1f} ms "
                         f"({t['timebase']} times)")
            for g in t["gaps"][:max_gaps]:
                lines.append(f"      at +{g['at_s']:.3f}s: {g['length_s'] * 1e3:.1f} ms")
            if t["gap_count"] > max_gaps:
                lines.append(f"      ... {t['gap_count'] - max_gaps} more")
    drops = {k: n for k, n in info["drops"].items() if n}
    lines.append("Drops (recorder):" + (" none" if not drops else ""))
    for k, n in sorted(drops.items()):
        lines.append(f"  drops {k}: {n}")
    if info["attachments"]:
        kv("Attachments", ", ".join(info["attachments"]))
    return "\n".join(lines)


def _verdict_line(v: dict | None) -> str:
    """The one verdict of a bag: the QA's, or a provisional one marked so (issue 18)."""
    if v is None:
        return "- (run `robot-capture qa`)"
    if v.get("source") != "qa":  # robot_capture.episodes.verdict.FULL_SOURCE
        return f"{v['verdict']} (provisional, {v['source']}: run `robot-capture qa` for the verdict)"
    return f"{v['verdict']} ({v['source']})"


def episode_rows(paths) -> list[dict]:
    """One dict per episode in ``paths`` (bags or folders): path, name, task, operator, success,
    duration_s, verdict, reasons, incomplete (the ``check_bag`` line, or ""); or path + error.
    Reads labels, qa.json and the files' footers only."""
    from robot_capture.bag.completeness import INCOMPLETE, check_bag
    from robot_capture.bag.errors import NotABagError
    from robot_capture.episodes import find_bags, load_episode

    rows = []
    for b in find_bags(paths):
        try:
            ep = load_episode(b)
            whole = check_bag(b)
        except (OSError, ValueError, NotABagError) as exc:
            rows.append({"path": str(b), "name": Path(b).name, "error": str(exc).splitlines()[0]})
            continue
        rows.append({"path": str(ep.path), "name": ep.name, "task": ep.task, "operator": ep.operator,
                     "success": ep.success, "duration_s": round(ep.duration_s, 3), "verdict": ep.verdict_text,
                     "provisional": bool(ep.verdict and ep.verdict.provisional),
                     "reasons": ep.verdict.reasons if ep.verdict else [], "recording": ep.recording,
                     "incomplete": whole.line() if whole.status == INCOMPLETE else ""})
    return rows


def format_table(rows: list[dict]) -> str:
    head = ("episode", "task", "operator", "success", "duration", "verdict")
    body = []
    for r in rows:
        if "error" in r:
            body.append((r["name"], "-", "-", "-", "-", f"error: {r['error']}"))
            continue
        succ = {True: "true", False: "false", None: "unknown"}[r["success"]]
        verdict = r["verdict"] + (" provisional" if r.get("provisional") else "") + (
            f" ({r['reasons'][0]}{'; ...' if len(r['reasons']) > 1 else ''})" if r["reasons"] else "")
        if r.get("incomplete"):  # never shown as a whole episode: its labels and verdict are not the recording's
            verdict = "incomplete: run `robot-capture recover` (below)"
        body.append((r["name"], r["task"] or "-", r["operator"] or "-", succ,
                     "recording" if r["recording"] else f"{r['duration_s']:.1f} s", verdict))
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head) - 1)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    whole = [r for r in rows if not r.get("incomplete")]
    n = {k: sum(1 for r in whole if r.get("verdict") == k and not r.get("provisional"))
         for k in ("pass", "warn", "fail", "-")}
    n["-"] += sum(1 for r in whole if r.get("provisional"))
    bad = len(rows) - len(whole)
    return "\n".join([fmt.format(*head), *(fmt.format(*x) for x in body),
                      f"{len(rows)} episodes: {n['pass']} pass, {n['warn']} warn, {n['fail']} fail, "
                      f"{n['-']} not checked" + (f", {bad} incomplete" if bad else "")])


def _live_info(args, bag) -> int:
    """A bag still being recorded: its files have no footer yet; show the periodic metadata.yaml."""
    from robot_capture.bag.metadata import read_metadata

    print(f"{bag}: being recorded right now (files are finished at the end of the episode)")
    try:
        m = read_metadata(bag)
    except (OSError, ValueError):
        print("no metadata.yaml written yet")
        return 0
    if args.json:
        print(json.dumps({"recording": True, "message_count": m.message_count, "duration_s": m.duration_ns / 1e9,
                          "topics": {t.name: t.message_count for t in m.topics}, "custom_data": m.custom_data}))
        return 0
    print(f"as of the last metadata.yaml: {m.message_count} messages over {m.duration_ns / 1e9:.3f} s")
    for t in m.topics:
        print(f"  Topic: {t.name} | Type: {t.type} | Count: {t.message_count}")
    return 0


def _is_single_bag(paths) -> bool:
    from robot_capture.episodes.store import is_bag_dir

    if len(paths) != 1:
        return False
    p = Path(paths[0])
    return (p.is_file() and p.suffix == ".mcap") or not p.exists() or is_bag_dir(p) or p.is_file()


def run(args) -> int:
    from robot_capture.bag.errors import BagError, NotABagError

    if not _is_single_bag(args.bags):
        try:
            rows = episode_rows(args.bags)
        except FileNotFoundError as exc:
            print(f"robot-capture info: {exc}", file=sys.stderr)
            return 2
        if not rows:
            print(f"robot-capture info: no bags found in {', '.join(args.bags)}", file=sys.stderr)
            return 2
        try:
            print(json.dumps(rows, indent=2) if args.json else format_table(rows))
            for r in rows:
                if r.get("incomplete"):
                    print(f"robot-capture info: {r['incomplete']}", file=sys.stderr)
        except BrokenPipeError:
            sys.stderr.close()
        return 1 if any(r.get("incomplete") for r in rows) else 0
    bag = args.bags[0]
    if Path(bag).is_file() and Path(bag).suffix != ".mcap":
        print(f"robot-capture info: {bag}: not a bag (a file, not a bag directory or .mcap file)", file=sys.stderr)
        return 2
    try:
        info = summarize(bag, args.gap_threshold, gaps=not args.no_gaps)
    except (NotABagError, FileNotFoundError, NotADirectoryError) as exc:
        print(f"robot-capture info: {exc}", file=sys.stderr)
        return 2
    except (BagError, ValueError) as exc:
        from robot_capture.bag.lock import is_recording

        if Path(bag).is_dir() and is_recording(bag):
            return _live_info(args, bag)
        print(f"robot-capture info: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    try:
        print(json.dumps(info, indent=2) if args.json else format_text(info, args.max_gaps))
    except BrokenPipeError:  # `robot-capture info BAG | head`
        sys.stderr.close()
    return 0
