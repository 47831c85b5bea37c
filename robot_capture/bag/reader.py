"""BagReader: read a rosbag2 MCAP bag directory (ours or rosbag2's), no ROS needed.

Messages come in log-time order across all split files (a k-way merge of the
files' time-ordered iterators), filtered by topic and an inclusive time range,
as raw CDR bytes or, with ``decode=True``, decoded by ``mcap_ros2`` from the
schema stored in the file (so decoding needs no installed message package).

A file without a footer (crash, power cut, truncation) raises
``IncompleteBagFileError``: run ``robot-capture recover BAG`` first.
"""
from __future__ import annotations

import contextlib
import heapq
import inspect
import struct
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from mcap.exceptions import McapError
from mcap.reader import McapReader, make_reader

from robot_capture.bag.errors import IncompleteBagFileError, NotABagError
from robot_capture.bag.metadata import METADATA_FILENAME, BagMetadata, FileInfo, TopicMeta, read_metadata
from robot_capture.bag.qos import load_qos_list

__all__ = ["BagMessage", "BagReader", "TopicInfo", "list_mcap_files"]

log = logging.getLogger(__name__)


@dataclass
class TopicInfo:
    """One topic of a bag. ``qos``: offered profiles (v9 dicts)."""

    type: str
    count: int
    qos: list = field(default_factory=list)
    serialization_format: str = "cdr"
    type_hash: str = ""


@dataclass
class BagMessage:
    """One message. Times in ns since the epoch; ``message`` is set with ``decode=True``
    (None if the type has no stored definition)."""

    topic: str
    type: str
    data: bytes
    log_time_ns: int
    publish_time_ns: int
    message: Any = None


def _split_index(p: Path) -> tuple:
    m = re.search(r"_(\d+)\.mcap$", p.name)
    return (int(m.group(1)) if m else 1 << 62, p.name)


def list_mcap_files(bag_dir: Path) -> list[Path]:
    """The bag's ``*.mcap`` files in split order (``<name>_<i>.mcap`` by i)."""
    return sorted((p for p in Path(bag_dir).glob("*.mcap") if p.is_file()), key=_split_index)


class BagReader:
    """Open a bag directory (or a single ``.mcap`` file).

    Attributes:
        path: the bag directory. files: the MCAP files in split order.
        metadata: BagMetadata (from metadata.yaml, or rebuilt from the files' summaries).
        topics: dict topic -> TopicInfo.

    Raises:
        NotABagError: no such directory, or neither metadata.yaml nor .mcap files in it.
        IncompleteBagFileError: a file has no summary/footer (run ``recover``).
        ValueError: metadata.yaml is malformed.
    """

    def __init__(self, bag_dir):
        p = Path(bag_dir)
        if p.is_file() and p.suffix == ".mcap":
            files, p = [p], p.parent
        elif not p.is_dir():
            raise NotABagError(f"{p}: not a bag directory (does not exist or is not a directory)")
        else:
            files = None
        self.path = p
        has_meta = (p / METADATA_FILENAME).is_file() and files is None
        meta = read_metadata(p) if has_meta else None
        if files is None:
            files = list_mcap_files(p)
            if meta is not None and meta.relative_file_paths:
                listed = [p / f for f in meta.relative_file_paths]
                if all(f.is_file() for f in listed):
                    files = listed
        if not files and meta is None:
            raise NotABagError(f"{p}: not a bag directory (no metadata.yaml and no .mcap files)")
        if meta is not None and meta.storage_identifier != "mcap":
            raise NotABagError(f"{p}: storage {meta.storage_identifier!r} is not supported (only mcap)")
        if meta is not None and meta.compression_format:
            raise NotABagError(f"{p}: rosbag2 {meta.compression_mode or 'file'} compression "
                               f"{meta.compression_format!r} is not supported (MCAP chunk compression is)")
        self.files = files
        self._summaries = []
        for f in files:
            with open(f, "rb") as h:
                try:
                    summary = make_reader(h).get_summary()
                except (McapError, EOFError, ValueError, OSError, struct.error) as exc:
                    raise IncompleteBagFileError(
                        f"{f}: unreadable MCAP ({exc}); run `robot-capture recover {p}`") from None
            if summary is None:
                raise IncompleteBagFileError(
                    f"{f}: no summary/footer (recording crashed or file truncated); "
                    f"run `robot-capture recover {p}`")
            self._summaries.append(summary)
        self.metadata = meta if meta is not None else self._metadata_from_summaries()
        self.topics = self._topics()

    # ---- summaries ----------------------------------------------------------------------
    def _metadata_from_summaries(self) -> BagMetadata:
        topics: dict[str, TopicMeta] = {}
        files = []
        for f, s in zip(self.files, self._summaries):
            st = s.statistics
            n = st.message_count if st else 0
            files.append(FileInfo(path=f.name, starting_time_ns=st.message_start_time if n else 0,
                                  duration_ns=(st.message_end_time - st.message_start_time) if n else 0,
                                  message_count=n))
            for cid, ch in s.channels.items():
                schema = s.schemas.get(ch.schema_id)
                t = topics.get(ch.topic)
                if t is None:
                    t = topics[ch.topic] = TopicMeta(
                        name=ch.topic, type=schema.name if schema else "",
                        serialization_format=ch.message_encoding,
                        offered_qos_profiles=_safe_qos(ch.metadata.get("offered_qos_profiles")),
                        type_description_hash=ch.metadata.get("topic_type_hash", ""))
                t.message_count += (st.channel_message_counts.get(cid, 0) if st else 0)
        with_msgs = [fi for fi in files if fi.message_count]
        start = min((fi.starting_time_ns for fi in with_msgs), default=0)
        end = max((fi.starting_time_ns + fi.duration_ns for fi in with_msgs), default=0)
        custom, distro = {}, ""
        rec = self.metadata_records().get("rosbag2", {})
        if rec.get("serialized_metadata"):
            import yaml

            try:
                doc = yaml.safe_load(rec["serialized_metadata"]) or {}
                custom = {str(k): str(v) for k, v in (doc.get("custom_data") or {}).items()}
                distro = str(doc.get("ros_distro", "") or "")
            except (yaml.YAMLError, AttributeError):
                pass
        return BagMetadata(duration_ns=end - start, starting_time_ns=start,
                           message_count=sum(fi.message_count for fi in files), topics=list(topics.values()),
                           relative_file_paths=[fi.path for fi in files], files=files,
                           custom_data=custom, ros_distro=distro or rec.get("ROS_DISTRO", ""))

    def _topics(self) -> dict[str, TopicInfo]:
        return {t.name: TopicInfo(type=t.type, count=t.message_count, qos=list(t.offered_qos_profiles),
                                  serialization_format=t.serialization_format, type_hash=t.type_description_hash)
                for t in self.metadata.topics}

    @property
    def chunk_compression(self) -> set[str]:
        """The chunk compressions used in the files (``none``, ``lz4``, ``zstd``)."""
        out = set()
        for s in self._summaries:
            for ci in s.chunk_indexes:
                out.add(ci.compression or "none")
        return out

    # ---- messages -----------------------------------------------------------------------
    def messages(self, topics=None, start_ns: int | None = None, end_ns: int | None = None,
                 decode: bool = False) -> Iterator[BagMessage]:
        """Iterate messages in log-time order across files.

        Args:
            topics: iterable of topic names (None = all).
            start_ns, end_ns: inclusive log-time bounds in ns (None = open).
            decode: also decode with mcap_ros2 (``BagMessage.message``).
        """
        topic_list = None if topics is None else list(topics)
        decoder_factory = None
        if decode:
            from mcap_ros2.decoder import DecoderFactory

            decoder_factory = DecoderFactory()
        with contextlib.ExitStack() as stack:
            iters = []
            for i, f in enumerate(self.files):
                h = stack.enter_context(open(f, "rb"))
                it = make_reader(h).iter_messages(topics=topic_list, log_time_order=True,
                                                  **_time_range(start_ns, end_ns))
                iters.append(((m.log_time, i, schema, ch, m) for schema, ch, m in it))
            decoders: dict = {}
            for _t, i, schema, ch, m in heapq.merge(*iters, key=lambda x: (x[0], x[1])):
                msg = None
                if decode and schema is not None:
                    key = (i, schema.id)
                    dec = decoders.get(key, False)
                    if dec is False:
                        dec = _decoder(decoder_factory, ch, schema)
                        decoders[key] = dec
                    if dec is not None:
                        msg = dec(m.data)
                yield BagMessage(topic=ch.topic, type=schema.name if schema else "", data=m.data,
                                 log_time_ns=m.log_time, publish_time_ns=m.publish_time, message=msg)

    # ---- records ------------------------------------------------------------------------
    def metadata_records(self) -> dict[str, dict[str, str]]:
        """MCAP Metadata records by name (the last one wins, e.g. ``episode``, ``rosbag2``)."""
        out: dict[str, dict[str, str]] = {}
        for f in self.files:
            with open(f, "rb") as h:
                for rec in make_reader(h).iter_metadata():
                    out[rec.name] = dict(rec.metadata)
        return out

    def attachments(self) -> dict[str, tuple[str, bytes]]:
        """MCAP attachments by name -> (media_type, data); duplicates across split files collapse."""
        out: dict[str, tuple[str, bytes]] = {}
        for f in self.files:
            with open(f, "rb") as h:
                for a in make_reader(h).iter_attachments():
                    out[a.name] = (a.media_type, bytes(a.data))
        return out

    def close(self) -> None:
        """Nothing to release (files are opened per call); kept for the context manager."""

    def __enter__(self) -> "BagReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _time_range(start_ns, end_ns) -> dict:
    """Inclusive bounds in the keyword names of the installed mcap version."""
    if "starting_at" in inspect.signature(McapReader.iter_messages).parameters:
        return {"starting_at": start_ns, "ending_at": end_ns}
    return {"start_time": start_ns, "end_time": None if end_ns is None else end_ns + 1}


def _decoder(factory, channel, schema):
    """An mcap_ros2 decoder for the schema, or None (no stored definition, or a bad one)."""
    if not schema.data:
        return None
    try:
        return factory.decoder_for(channel.message_encoding, schema)
    except Exception as exc:  # noqa: BLE001 - a bad stored schema: keep the raw bytes
        log.warning("cannot build a decoder for %s: %s", schema.name, exc)
        return None


def _safe_qos(value) -> list:
    try:
        return load_qos_list(value)
    except ValueError:
        return []
