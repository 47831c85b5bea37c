"""Recover a bag after a crash: rebuild readable MCAP files and metadata.yaml.

After a SIGKILL, a power cut or a truncated copy, an MCAP file may lack its footer
and summary, and may end in a half-written record; metadata.yaml may be stale or
missing. ``recover(bag_dir)``:

1. For each ``*.mcap`` file (split order): if it opens with a valid summary (footer,
   summary CRC) and every chunk passes its checks (``robot_capture.bag.chunks``:
   framing, decompression, size, CRC), keep it (``intact``). Otherwise rebuild it from
   its good records (:func:`robot_capture.bag.rebuild.rebuild_file`: damaged chunks
   skipped and counted, unframed bytes passed over to the next good chunk) into a new
   file with chunk CRCs, which replaces the original; the original is kept as
   ``<file>.orig`` (never deleted). Channels and schemas also come from the file's
   summary when it passes its CRC, and, when a file has messages in intact chunks whose
   every Channel record was damaged, from the bag's other files: a definition is taken
   only when every other file that defines that channel (schema) id agrees on it
   (topic, encoding, schema id; schema name, encoding, text) and the file itself does not
   define that topic under another id (``FileRecovery.borrowed``). Files of a bag are
   written by one writer, which keeps one id per topic across its split files (ours and
   rosbag2's); the check refuses the definition where that does not hold.
2. metadata.yaml is rebuilt from what the files hold (topics, types, QoS, type
   hashes, per-file and per-topic counts and times); ``custom_data`` and
   ``ros_distro`` are kept from the old metadata.yaml or a ``rosbag2`` record.
   The old metadata.yaml, if any, is kept as ``metadata.yaml.orig``.
3. When a file was rebuilt or the episode was never stopped, the episode is marked in
   ``custom_data``: ``episode.recovered: "true"``, ``episode.recovered_ns``, and
   ``episode.stop_reason: crash`` unless the recorder had written one; labels missing from
   ``custom_data`` are taken from the files' ``episode``/``episode_start`` records.

4. Files that are not data are removed: the stale ``.recording.lock`` and the recorder's
   ``.disk_reserve`` (the 1 MiB it holds so an episode can close on a full disk; a
   crash leaves it behind).

The report gives recovered messages per topic and per file.
"""
from __future__ import annotations

import logging
import os
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from mcap.exceptions import McapError
from mcap.reader import make_reader

from robot_capture.bag.errors import BagError, IncompleteBagFileError, NotABagError
from robot_capture.bag.lock import LOCK_NAME, is_recording
from robot_capture.bag.metadata import (METADATA_FILENAME, BagMetadata, FileInfo, TopicMeta,
                                        read_metadata, write_metadata)
from robot_capture.bag.qos import load_qos_list
from robot_capture.bag.completeness import list_mcap_files, load_summary
from robot_capture.bag.reader import BagReader
from robot_capture.bag.rebuild import rebuild_file

__all__ = ["FileRecovery", "RecoveryReport", "recover"]

log = logging.getLogger(__name__)

#: the recorder's closing reserve (robot_capture.record.recorder, ``disk_reserve_bytes``): not data
RESERVE_NAME = ".disk_reserve"


@dataclass
class FileRecovery:
    """What happened to one file. ``status``: ``intact`` (had a valid summary, untouched),
    ``rebuilt`` (rewritten from its complete records), ``unreadable`` (nothing usable;
    moved aside). ``stopped_at``: why the scan stopped (rebuilt files).
    ``damaged_chunks``: chunks skipped because they failed a check (DamagedChunk);
    ``skipped_bytes``: bytes passed over while searching for the next good chunk;
    ``borrowed``: topics whose channel (or schema) definitions came from the bag's other files."""

    path: str
    status: str
    messages: int = 0
    topics: dict = field(default_factory=dict)
    backup: str | None = None
    stopped_at: str = ""
    start_ns: int = 0
    end_ns: int = 0
    damaged_chunks: list = field(default_factory=list)
    skipped_bytes: int = 0
    borrowed: list = field(default_factory=list)


@dataclass
class RecoveryReport:
    """Result of ``recover``. ``topics``: recovered messages per topic over all files."""

    bag_dir: str
    files: list[FileRecovery]
    topics: dict[str, int]
    metadata_path: str

    @property
    def message_count(self) -> int:
        return sum(self.topics.values())

    def format(self) -> str:
        lines = [f"recovered bag {self.bag_dir}: {self.message_count} messages"]
        for f in self.files:
            extra = f" (original kept as {os.path.basename(f.backup)})" if f.backup else ""
            why = f"; scan stopped: {f.stopped_at}" if f.stopped_at else ""
            lines.append(f"  {os.path.basename(f.path)}: {f.status}, {f.messages} messages{extra}{why}")
            if f.damaged_chunks or f.skipped_bytes:
                lost = sum(d.messages for d in f.damaged_chunks if d.messages > 0)
                lines.append(f"    {len(f.damaged_chunks)} damaged chunk(s) skipped"
                             + (f" (>= {lost} messages lost)" if lost else "")
                             + (f", {f.skipped_bytes} unframed byte(s) passed over" if f.skipped_bytes else ""))
                for d in f.damaged_chunks[:5]:
                    lines.append(f"      at byte {d.offset}: {d.reason}")
            if f.borrowed:
                lines.append(f"    definitions from the bag's other files: {', '.join(f.borrowed)}")
        width = max((len(t) for t in self.topics), default=5)
        lines.append("  per topic:")
        for t, n in self.topics.items():
            lines.append(f"    {t:<{width}}  {n}")
        lines.append(f"  wrote {self.metadata_path}")
        return "\n".join(lines)


def _backup_path(p: Path) -> Path:
    cand = p.with_name(p.name + ".orig")
    i = 1
    while cand.exists():
        cand = p.with_name(f"{p.name}.orig.{i}")
        i += 1
    return cand


def _file_summary(path: Path):
    """(summary, rosbag2 record, damaged chunks, problems) for a file whose summary opens
    and passes its CRC; (None, None, [], []) otherwise. Every chunk is decoded and checked."""
    try:
        summary = load_summary(path, path.parent)
    except IncompleteBagFileError:
        return None, None, [], []
    try:
        r = BagReader(path)
        damaged = r.check()
        rec = r.metadata_records().get("rosbag2")
        return summary, rec, damaged, list(r.problems)
    except (BagError, ValueError, OSError) as exc:
        return summary, None, [], [str(exc)]


def _mark_recovered(custom: dict, files, reports) -> dict:
    """custom_data of a recovered episode: the ``recovered`` marker and a stop reason (see step 3)."""
    import time

    out = dict(custom)
    records: dict[str, dict] = {}
    for path in files:  # rewritten by now: every file has a summary
        try:
            with open(path, "rb") as h:
                for rec in make_reader(h).iter_metadata():
                    records[rec.name] = dict(rec.metadata)
        except (McapError, OSError, ValueError, EOFError, struct.error):
            continue
    labels = records.get("episode") or records.get("episode_start") or {}
    stopped = "episode.stop_time_ns" in out or "stop_time_ns" in labels
    if all(r.status == "intact" for r in reports) and (stopped or out.get("episode.recovered") == "true"):
        return out  # a clean or already recovered bag: recovering it again changes nothing
    for k, v in labels.items():
        out.setdefault(f"episode.{k}", str(v))
    out["episode.recovered"] = "true"
    out["episode.recovered_ns"] = str(time.time_ns())
    if not stopped or "episode.stop_reason" not in out:
        out["episode.stop_reason"] = "crash"
    return out


def _skey(sc) -> tuple:
    return (sc.name, sc.encoding, bytes(sc.data))


def _ckey(ch) -> tuple:
    return (ch.topic, ch.message_encoding, ch.schema_id)


def _agreed(defs) -> tuple[dict, dict]:
    """Schemas and channels (by id) defined identically in every one of ``defs`` that defines them."""
    schemas, channels, bad_s, bad_c = {}, {}, set(), set()
    for sch, chs in defs:
        for sid, sc in sch.items():
            if sid in schemas and _skey(schemas[sid]) != _skey(sc):
                bad_s.add(sid)
            schemas.setdefault(sid, sc)
        for cid, ch in chs.items():
            if cid in channels and _ckey(channels[cid]) != _ckey(ch):
                bad_c.add(cid)
            channels.setdefault(cid, ch)
    schemas = {i: sc for i, sc in schemas.items() if i not in bad_s}
    channels = {i: ch for i, ch in channels.items()
                if i not in bad_c and (ch.schema_id == 0 or ch.schema_id in schemas)}
    return schemas, channels


def _borrowable(scan, others) -> tuple[dict, dict]:
    """Definitions for the channel ids ``scan`` dropped messages of, and for the schema ids its
    channels name but it lost, from the other files' ``(schemas, channels)`` (the rule: step 1
    of the module docstring; a lost schema is taken only when another file has a channel of the
    same topic naming the same schema id)."""
    schemas, channels = _agreed(others)
    own_topics = {ch.topic for ch in scan.channels.values()}
    out_s, out_c = {}, {}
    for cid in sorted(scan.orphan_ids):
        ch = channels.get(cid)
        if ch is None or ch.topic in own_topics:
            continue
        if ch.schema_id:
            mine = scan.schemas.get(ch.schema_id)
            if mine is not None and _skey(mine) != _skey(schemas[ch.schema_id]):
                continue
            out_s[ch.schema_id] = schemas[ch.schema_id]
        out_c[cid] = ch
    pairs = {(ch.topic, ch.schema_id) for ch in channels.values()}
    for ch in scan.channels.values():
        if ch.schema_id in scan.missing_schema_ids and ch.schema_id in schemas and (ch.topic, ch.schema_id) in pairs:
            out_s[ch.schema_id] = schemas[ch.schema_id]
    return out_s, out_c


def _rebuild_in_place(path: Path, source: Path, seeds, progress, progress_bytes, backup: Path):
    """Rebuild ``source`` into ``path`` (via ``<path>.recovering``; ``path`` moves to ``backup``
    first when it is the source). Returns ``(FileRecovery, scan, counts)``, or ``(None, why, None)``
    when nothing usable was found (nothing moved)."""
    tmp = path.with_name(path.name + ".recovering")
    if tmp.exists():
        tmp.unlink()
    try:
        scan, w, why = rebuild_file(source, tmp, progress, seeds, progress_bytes)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if scan is None or (not scan.channels and w.message_count == 0 and not scan.orphan_ids):
        if w is not None:
            w.close_fd()
            tmp.unlink()
        return None, why, None
    counts = dict(w._stat_counts)
    start, end, n = w.start_time, w.end_time, w.message_count
    w.finish()
    if source == path:
        os.replace(path, backup)
    os.replace(tmp, path)
    fr = FileRecovery(str(path), "rebuilt", n, {scan.channels[c].topic: k for c, k in counts.items()},
                      backup=str(backup), stopped_at=why, start_ns=start if n else 0, end_ns=end if n else 0,
                      damaged_chunks=scan.damaged, skipped_bytes=scan.skipped_bytes)
    return fr, scan, counts


def recover(bag_dir, progress=None, progress_bytes=None) -> RecoveryReport:
    """Rebuild the bag's damaged MCAP files and its metadata.yaml (see module docstring).

    Args:
        bag_dir: the bag directory.
        progress: optional callable(str) for one line per file.
        progress_bytes: optional callable(file_name, bytes_done, file_bytes), called as each file
            is checked or scanned (for a progress bar with a percentage).

    Returns:
        RecoveryReport (per-topic and per-file recovered counts).

    Raises:
        NotABagError: not a directory, or no .mcap file in it.
        BagError: a live process is still recording the bag.
        OSError: I/O failure while rewriting (originals are untouched until a rewrite
            is complete; then they are renamed, never deleted).
    """
    bag = Path(bag_dir)
    if not bag.is_dir():
        raise NotABagError(f"{bag}: not a bag directory")
    if is_recording(bag):
        raise BagError(f"{bag} is being recorded right now (its writer holds {LOCK_NAME}); "
                       "stop the recording before recovering")
    files = list_mcap_files(bag)
    if not files:
        raise NotABagError(f"{bag}: no .mcap files to recover")
    for name in (LOCK_NAME, RESERVE_NAME):  # stale: their writer is gone (step 4)
        try:
            (bag / name).unlink()
        except OSError:
            pass
    old_meta = None
    if (bag / METADATA_FILENAME).is_file():
        try:
            old_meta = read_metadata(bag)
        except (ValueError, OSError) as exc:
            log.warning("old metadata.yaml unreadable (%s); rebuilding from the files", exc)
    reports: list[FileRecovery] = []
    kept = []  # [FileRecovery, (schemas, channels), counts, scan or None, own seeds]
    rosbag2_rec = None
    for path in files:
        summary, rec, damaged, problems = _file_summary(path)
        if summary is not None and not damaged and not problems:
            st = summary.statistics
            counts = dict(st.channel_message_counts) if st else {}
            n = st.message_count if st else 0
            fr = FileRecovery(str(path), "intact", n,
                              {summary.channels[c].topic: k for c, k in counts.items() if c in summary.channels},
                              start_ns=st.message_start_time if n else 0, end_ns=st.message_end_time if n else 0)
            kept.append([fr, (summary.schemas, summary.channels), counts, None, []])
            rosbag2_rec = rec or rosbag2_rec
        else:
            seeds = [(summary.schemas, summary.channels)] if summary is not None else []
            backup = _backup_path(path)
            fr, scan, counts = _rebuild_in_place(path, path, seeds, progress, progress_bytes, backup)
            if fr is None:
                why = scan  # (None, why, None): nothing usable
                os.replace(path, backup)
                reports.append(FileRecovery(str(path), "unreadable", 0, backup=str(backup), stopped_at=why))
                if progress:
                    progress(f"{path.name}: unreadable ({why}), moved to {backup.name}")
                continue
            kept.append([fr, (scan.schemas, scan.channels), counts, scan, seeds])
        reports.append(fr)
        if progress:
            progress(f"{path.name}: {fr.status}, {fr.messages} messages")
        if progress_bytes:
            size = path.stat().st_size if path.exists() else 0
            progress_bytes(path.name, size, size)
    for k, (fr, _defs, _counts, scan, seeds) in enumerate(kept):  # step 1: definitions from the other files
        if scan is None or not (scan.orphan_ids or scan.missing_schema_ids):
            continue
        extra = _borrowable(scan, [e[1] for j, e in enumerate(kept) if j != k])
        if not extra[0] and not extra[1]:
            continue
        path, backup = Path(fr.path), Path(fr.backup)
        new, scan2, counts = _rebuild_in_place(path, backup, seeds + [extra], progress, progress_bytes, backup)
        if new is None:
            continue
        new.borrowed = sorted({ch.topic for ch in extra[1].values()} |
                              {ch.topic for ch in scan2.channels.values() if ch.schema_id in extra[0]})
        reports[reports.index(fr)] = new
        kept[k] = [new, (scan2.schemas, scan2.channels), counts, scan2, seeds]
        if progress:
            progress(f"{path.name}: rebuilt again with the definitions of {', '.join(new.borrowed)} from the other "
                     f"files, {new.messages} messages")
    for e in [e for e in kept if e[3] is not None and not e[3].channels and not e[0].messages]:
        Path(e[0].path).unlink()  # nothing usable even with the other files' definitions
        reports[reports.index(e[0])] = FileRecovery(e[0].path, "unreadable", 0, backup=e[0].backup,
                                                    stopped_at=e[0].stopped_at or "no channel definition left")
        kept.remove(e)

    topic_meta: dict[str, TopicMeta] = {}
    for _fr, (schemas, channels), counts, _scan, _seeds in kept:
        for cid, ch in channels.items():
            sc = schemas.get(ch.schema_id)
            t = topic_meta.get(ch.topic)
            if t is None:
                try:
                    qos = load_qos_list(ch.metadata.get("offered_qos_profiles"))
                except ValueError:
                    qos = []
                t = topic_meta[ch.topic] = TopicMeta(
                    name=ch.topic, type=sc.name if sc else "", serialization_format=ch.message_encoding,
                    offered_qos_profiles=qos, type_description_hash=ch.metadata.get("topic_type_hash", ""))
            t.message_count += counts.get(cid, 0)
    finfos = [FileInfo(path=Path(fr.path).name, starting_time_ns=fr.start_ns, duration_ns=fr.end_ns - fr.start_ns,
                       message_count=fr.messages) for fr, *_rest in kept]

    custom, distro = {}, ""
    if old_meta is not None:
        custom, distro = dict(old_meta.custom_data), old_meta.ros_distro
    elif rosbag2_rec:
        try:
            doc = yaml.safe_load(rosbag2_rec.get("serialized_metadata", "")) or {}
            custom = {str(k): str(v) for k, v in (doc.get("custom_data") or {}).items()}
            distro = str(doc.get("ros_distro", "") or "")
        except (yaml.YAMLError, AttributeError):
            pass
    custom = _mark_recovered(custom, [Path(f.path) for f in reports if Path(f.path).exists()], reports)
    with_msgs = [f for f in finfos if f.message_count]
    start = min((f.starting_time_ns for f in with_msgs), default=0)
    end = max((f.starting_time_ns + f.duration_ns for f in with_msgs), default=0)
    meta = BagMetadata(duration_ns=end - start, starting_time_ns=start,
                       message_count=sum(f.message_count for f in finfos), topics=list(topic_meta.values()),
                       relative_file_paths=[f.path for f in finfos], files=finfos, custom_data=custom,
                       ros_distro=distro or os.environ.get("ROS_DISTRO", ""))
    if (bag / METADATA_FILENAME).is_file():
        shutil.copy2(bag / METADATA_FILENAME, _backup_path(bag / METADATA_FILENAME))
    mpath = write_metadata(bag, meta)
    return RecoveryReport(str(bag), reports, {t.name: t.message_count for t in topic_meta.values()}, str(mpath))
