"""``robot-capture info BAG``: what ``ros2 bag info`` prints, plus rates, gaps and episode metadata."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HELP = "summarize a bag: duration, topics, counts, rates, gaps, episode metadata"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "info", help=HELP,
        description="Summarize a rosbag2 MCAP bag directory like `ros2 bag info` (files, size, storage, "
                    "duration, start/end, message count, chunk compression, per-topic type, count, rate and "
                    "serialization format), plus per-topic timing gaps and the episode metadata "
                    "(MCAP metadata records and custom_data). Gaps come from the MCAP message indexes, "
                    "so image payloads are not read.",
        epilog="A crashed bag (no footer) is reported as such: run `robot-capture recover BAG` first.")
    p.add_argument("bag", help="bag directory (or a single .mcap file)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--gap-threshold", type=float, default=None, metavar="S",
                   help="report inter-message gaps longer than S seconds (default: per topic, "
                        "GAP_FACTOR x the median interval, at least 0.05 s)")
    p.add_argument("--gap-factor", type=float, default=10.0,
                   help="gap = interval > GAP_FACTOR x median interval (default 10)")
    p.add_argument("--max-gaps", type=int, default=5, help="gaps listed per topic in text output (default 5)")
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


def summarize(bag, gap_threshold=None, gap_factor=10.0, gaps=True) -> dict:
    """The info of a bag as a JSON-ready dict. Raises NotABagError, IncompleteBagFileError, ValueError."""
    from robot_capture.bag.reader import BagReader
    from robot_capture.bag.timing import gap_report, topic_log_times

    r = BagReader(bag)
    m = r.metadata
    size = sum(f.stat().st_size for f in Path(r.path).iterdir() if f.is_file()) if Path(bag).is_dir() \
        else Path(bag).stat().st_size
    timing = {}
    if gaps:
        timing = gap_report(topic_log_times(r), m.starting_time_ns, gap_threshold, gap_factor)
    records = r.metadata_records()
    records.pop("rosbag2", None)
    topics = []
    dur_s = m.duration_ns / 1e9
    for name, t in r.topics.items():
        tt = timing.get(name)
        entry = {"topic": name, "type": t.type, "count": t.count, "serialization_format": t.serialization_format,
                 "rate_hz": round(tt.rate_hz if tt else (t.count / dur_s if dur_s > 0 else 0.0), 3)}
        if tt is not None:
            entry.update(largest_gap_s=round(tt.largest_gap_s, 6), largest_gap_at_s=round(tt.largest_gap_at_s, 6),
                         gap_threshold_s=round(tt.threshold_s, 6), gap_count=len(tt.gaps),
                         gaps=[{"at_s": round(a, 6), "length_s": round(g, 6)} for a, g in tt.gaps])
        topics.append(entry)
    return {
        "path": str(r.path), "files": [f.name for f in r.files], "bag_size_bytes": size,
        "storage_identifier": m.storage_identifier, "ros_distro": m.ros_distro, "metadata_version": m.version,
        "duration_s": dur_s, "start_ns": m.starting_time_ns, "end_ns": m.end_time_ns,
        "message_count": m.message_count, "chunk_compression": sorted(r.chunk_compression) or ["none"],
        "compression_format": m.compression_format, "compression_mode": m.compression_mode,
        "topics": topics, "episode": records, "custom_data": m.custom_data,
        "attachments": sorted(r.attachments()),
    }


def format_text(info: dict, max_gaps: int = 5) -> str:
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
    w = max((len(t["topic"]) for t in info["topics"]), default=0)
    lines.append(f"{'Topic information:':<20}" + ("" if info["topics"] else "(none)"))
    for t in info["topics"]:
        lines.append(f"  Topic: {t['topic']:<{w}} | Type: {t['type']} | Count: {t['count']} | "
                     f"Rate: {t['rate_hz']:.2f} Hz | Serialization Format: {t['serialization_format']}")
    if any("largest_gap_s" in t for t in info["topics"]):
        lines.append("Gaps:")
        for t in info["topics"]:
            if "largest_gap_s" not in t or t["count"] < 2:
                continue
            lines.append(f"  {t['topic']:<{w}}  largest {t['largest_gap_s'] * 1e3:.1f} ms at +{t['largest_gap_at_s']:.3f}s;"
                         f" {t['gap_count']} gap(s) > {t['gap_threshold_s'] * 1e3:.1f} ms")
            for g in t["gaps"][:max_gaps]:
                lines.append(f"      at +{g['at_s']:.3f}s: {g['length_s'] * 1e3:.1f} ms")
            if t["gap_count"] > max_gaps:
                lines.append(f"      ... {t['gap_count'] - max_gaps} more")
    lines.append("Episode metadata:" + ("" if info["episode"] else " (none)"))
    for name, rec in info["episode"].items():
        lines.append(f"  [{name}]")
        for k, v in rec.items():
            lines.append(f"    {k}: {v}")
    lines.append("Custom data:" + ("" if info["custom_data"] else " (none)"))
    for k, v in info["custom_data"].items():
        lines.append(f"  {k}: {v}")
    if info["attachments"]:
        lines.append("Attachments:        " + ", ".join(info["attachments"]))
    return "\n".join(lines)


def _live_info(args) -> int:
    """A bag still being recorded: its files have no footer yet; show the periodic metadata.yaml."""
    from robot_capture.bag.metadata import read_metadata

    print(f"{args.bag}: being recorded right now (files are finished at the end of the episode)")
    try:
        m = read_metadata(args.bag)
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


def run(args) -> int:
    from robot_capture.bag.errors import BagError, NotABagError

    try:
        info = summarize(args.bag, args.gap_threshold, args.gap_factor, gaps=not args.no_gaps)
    except (NotABagError, FileNotFoundError, NotADirectoryError) as exc:
        print(f"robot-capture info: {exc}", file=sys.stderr)
        return 2
    except (BagError, ValueError) as exc:
        from robot_capture.bag.lock import is_recording

        if Path(args.bag).is_dir() and is_recording(args.bag):
            return _live_info(args)
        print(f"robot-capture info: {exc}", file=sys.stderr)
        return 1
    try:
        print(json.dumps(info, indent=2) if args.json else format_text(info, args.max_gaps))
    except BrokenPipeError:  # `robot-capture info BAG | head`
        sys.stderr.close()
    return 0
