"""BagWriter: a rosbag2 bag directory (metadata.yaml + ``<name>_<i>.mcap``) from raw CDR.

What it writes mirrors rosbag2's MCAP storage plugin (``rosbag2_storage_mcap``):

* MCAP profile ``ros2``; one Schema per type (name ``pkg/msg/Type``, encoding
  ``ros2msg``, data = concatenated definition, see ``msgdefs``); one Channel per
  topic (``message_encoding: cdr``, metadata ``offered_qos_profiles`` (YAML string)
  and ``topic_type_hash`` (``RIHS01_...``)).
* Message ``log_time`` = receive time, ``publish_time`` = source time, both ns.
* Before a file is closed, a ``rosbag2`` Metadata record whose ``serialized_metadata``
  is the bag's metadata (as ``MCAPStorage::update_metadata``), plus ``ROS_DISTRO``.
* ``metadata.yaml`` v9, written atomically at close (and every
  ``metadata_interval_s`` while recording, so a live bag can be inspected).

Hot path: ``write`` appends the message to the chunk being built (no copy, no
I/O). A full or aged chunk is *sealed* (O(1)) and handed to an I/O thread that
joins, CRCs, compresses and writes it, with the GIL released for the heavy parts;
so a subscription callback never waits for compression or the disk, unless
``io_queue_chunks`` sealed chunks are already waiting (back-pressure, bounded memory).
This mirrors rosbag2's double-buffered cache + writer thread.

Crash safety: a chunk is sealed at least every ``flush_interval_s`` (on ``write``,
and on its own clock by a seal thread when messages stop or the caller is starved) and
written right after, so a SIGKILL loses at most about that much; with ``fsync`` a separate
sync thread fdatasyncs (and rewrites metadata.yaml), so a slow disk never delays a seal,
bounding a power cut's loss similarly. ``close`` hands the buffered chunk to the I/O thread
before it waits for anything, and never waits for an fdatasync in flight. ``recover`` rebuilds files without footer.

Disk full (ENOSPC/EDQUOT/EFBIG): the file is cut back to its last complete record;
the next ``write`` (or ``split``/``add_metadata``/``attach``/``close``) raises
``BagDiskFullError`` once, later writes raise ``BagClosedError``. ``lost_messages``
counts every ``write`` call whose message is not on disk (including the one that
raised). ``close()`` still finishes the files (footer + metadata.yaml) if the freed
room allows, else leaves them recoverable. Nothing already written is touched.

Thread-safety: all public methods may be called from several threads.
"""
from __future__ import annotations

import logging
import os
import queue
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from robot_capture.bag.errors import (DISK_FULL_ERRNOS, BagClosedError, BagDiskFullError, BagError,
                                      BagWriteError)
from robot_capture.bag.lock import RecordingLock
from robot_capture.bag.mcap_file import COMPRESSIONS, McapFileWriter
from robot_capture.bag.metadata import (BagMetadata, FileInfo, TopicMeta, serialized_metadata,
                                        write_metadata)
from robot_capture.bag.msgdefs import definition_for, type_hash_for
from robot_capture.bag.qos import dump_qos_list, normalize

__all__ = ["BagWriter", "TopicStats", "WriterOptions"]

log = logging.getLogger(__name__)

_MiB = 1024 * 1024
_monotonic = time.monotonic


def _default_distro() -> str:
    """``$ROS_DISTRO`` (set by a ROS install's setup.bash), else ``""``, as rosbag2 writes it."""
    return os.environ.get("ROS_DISTRO", "")


@dataclass
class WriterOptions:
    """Storage options.

    Attributes:
        compression: MCAP chunk compression, ``none``, ``lz4`` or ``zstd``.
        compression_level: lz4 (0-16) or zstd (-7..22) level; None = library default (zstd 3).
        chunk_size: uncompressed bytes per chunk (rosbag2 MCAP default is 768 KiB; 4 MiB here).
        max_bag_size: split to a new file once a file reaches this many bytes (0 = never).
        max_bag_duration_s: split once a file spans this many seconds of log time (0 = never).
        flush_interval_s: what a SIGKILL may lose, s. A chunk is sealed for writing once its
            oldest message is half this old (checked on every ``write``, so it does not depend
            on a timer that load can delay; the timer covers a topic that goes quiet), which
            leaves the other half for the I/O thread to reach the kernel. Must be > 0.
        ros_distro: written to metadata.yaml (``ros_distro``); default ``$ROS_DISTRO``, else ``""``
            (as rosbag2: the distro is not guessed).
        fsync: fdatasync the file from the timer thread after writes (power-cut safety).
        chunk_crc: CRC32 of uncompressed chunks, so ``recover`` and validators detect corrupted
            chunks (rosbag2 leaves it 0; zlib's crc32 runs at ~1 GB/s here, GIL released).
        metadata_interval_s: rewrite metadata.yaml this often while recording (0 = only at close).
        background_flush: run the timer thread (flush aged chunks when messages stop, fsync,
            periodic metadata). Off: only ``write`` flushes.
        async_io: write chunks on an I/O thread (off: in the caller of ``write``).
        io_queue_chunks: sealed chunks that may wait for the I/O thread before ``write`` blocks.
    """

    compression: str = "none"
    compression_level: int | None = None
    chunk_size: int = 4 * _MiB
    max_bag_size: int = 0
    max_bag_duration_s: float = 0.0
    flush_interval_s: float = 1.0
    ros_distro: str = field(default_factory=_default_distro)
    fsync: bool = True
    chunk_crc: bool = True
    metadata_interval_s: float = 5.0
    background_flush: bool = True
    async_io: bool = True
    io_queue_chunks: int = 8

    def validate(self) -> None:
        """Raises ValueError naming the bad option."""
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {self.compression!r}")
        if self.compression_level is not None:
            lo, hi = (0, 16) if self.compression == "lz4" else (-7, 22)
            if not lo <= int(self.compression_level) <= hi:
                raise ValueError(f"compression_level {self.compression_level} out of range [{lo}, {hi}]")
        if int(self.chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.max_bag_size < 0 or self.max_bag_duration_s < 0:
            raise ValueError("max_bag_size and max_bag_duration_s must be >= 0")
        if not self.flush_interval_s > 0:
            raise ValueError(f"flush_interval_s must be > 0, got {self.flush_interval_s}")
        if self.metadata_interval_s < 0:
            raise ValueError("metadata_interval_s must be >= 0")
        if int(self.io_queue_chunks) < 1:
            raise ValueError("io_queue_chunks must be >= 1")


@dataclass
class TopicStats:
    """Per-topic counters since the writer was opened: messages and payload bytes passed to
    ``write`` (including the chunk not yet on disk)."""

    type: str
    messages: int
    bytes: int


class _Topic:
    __slots__ = ("name", "type", "qos", "hash", "channel_id", "schema_id", "counts")

    def __init__(self, name, type_, qos, hash_, channel_id, schema_id):
        self.name, self.type, self.qos, self.hash = name, type_, qos, hash_
        self.channel_id, self.schema_id = channel_id, schema_id
        self.counts = [0, 0]  # messages, bytes


def _file_info(f: McapFileWriter) -> FileInfo:
    n = f.message_count
    return FileInfo(path=os.path.basename(f.path), starting_time_ns=f.start_time if n else 0,
                    duration_ns=(f.end_time - f.start_time) if n else 0, message_count=n)


def _build_metadata(writers, topics, custom: dict, distro: str) -> BagMetadata:
    """metadata.yaml content from the files' on-disk statistics (pure; snapshots in)."""
    files = [_file_info(f) for f in writers]
    counts: dict[int, int] = {}
    for f in writers:
        for k, v in f.channel_counts.items():
            counts[k] = counts.get(k, 0) + v
    with_msgs = [fi for fi in files if fi.message_count]
    start = min((fi.starting_time_ns for fi in with_msgs), default=0)
    end = max((fi.starting_time_ns + fi.duration_ns for fi in with_msgs), default=0)
    tm = [TopicMeta(name=t.name, type=t.type, serialization_format="cdr", offered_qos_profiles=list(t.qos),
                    type_description_hash=t.hash, message_count=counts.get(t.channel_id, 0)) for t in topics]
    return BagMetadata(storage_identifier="mcap", duration_ns=end - start, starting_time_ns=start,
                       message_count=sum(fi.message_count for fi in files), topics=tm,
                       relative_file_paths=[fi.path for fi in files], files=files,
                       custom_data=dict(custom), ros_distro=distro)


class BagWriter:
    """Write a rosbag2 bag directory. See the module docstring for the format and threads.

    Args:
        bag_dir: the bag directory; created (parents too). Must not exist or be empty.
        options: WriterOptions (validated).
        custom_data: metadata.yaml ``custom_data`` (string -> string).

    Raises:
        FileExistsError: ``bag_dir`` exists and is not empty.
        ValueError: bad options.
    """

    def __init__(self, bag_dir, options: WriterOptions | None = None, custom_data: dict | None = None):
        self.options = opts = options or WriterOptions()
        opts.validate()
        self.path = Path(bag_dir)
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise FileExistsError(f"bag directory {self.path} exists and is not empty")
        self.path.mkdir(parents=True, exist_ok=True)
        self._reclock = RecordingLock(self.path)  # tells `recover`/`info` the bag is live
        self.name = self.path.name
        self._custom = {str(k): str(v) for k, v in (custom_data or {}).items()}
        self._topics: dict[str, _Topic] = {}
        self._schemas: dict[str, tuple[int, object]] = {}  # type -> (id, MessageDefinition)
        self._meta_records: dict[str, dict] = {}
        self._attachments: list[tuple] = []
        self._writers: list[McapFileWriter] = []  # every file, in split order
        self._file: McapFileWriter | None = None
        self._file_start: int | None = None
        self._chunk_t0 = 0.0
        self._chunk_size = int(opts.chunk_size)
        self._flush_s = float(opts.flush_interval_s)
        self._seal_s = 0.5 * self._flush_s  # chunk age at which it is sealed (see flush_interval_s)
        self._split_size = int(opts.max_bag_size)
        self._split_ns = int(opts.max_bag_duration_s * 1e9)
        self._lock = threading.Lock()  # never re-acquired internally; the I/O thread never takes it
        self._error: BagWriteError | None = None
        self._error_raised = False
        self._closed = False
        self._final: BagMetadata | None = None
        self.lost_messages = 0
        self.unknown_types: set[str] = set()
        self._io_q: queue.Queue | None = None
        self._io_thread = None
        if opts.async_io:
            self._io_q = queue.Queue(maxsize=int(opts.io_queue_chunks))
            self._io_thread = threading.Thread(target=self._io_loop, name=f"bag-io-{self.name}", daemon=True)
            self._io_thread.start()
        try:
            with self._lock:
                self._open_file()
        except BaseException:
            if self._io_q is not None:
                self._io_q.put(None)
                self._io_thread.join()
            self._reclock.release()
            self._closed = True
            raise
        self._stop = threading.Event()
        self._meta_lock = threading.Lock()  # the final metadata.yaml is written after any periodic one
        self._meta_final = False
        self._threads: list[threading.Thread] = []
        if opts.background_flush:  # sealing never waits for the disk: the sync has its own thread
            self._threads = [threading.Thread(target=self._seal_loop, name=f"bag-seal-{self.name}", daemon=True),
                             threading.Thread(target=self._sync_loop, name=f"bag-sync-{self.name}", daemon=True)]
            for t in self._threads:
                t.start()

    # ---- topics -----------------------------------------------------------------------
    def add_topic(self, name: str, type_name: str, offered_qos_profiles: list | None = None) -> None:
        """Register a topic (a Channel, and a Schema on first use of its type).

        ``type_name`` is ``pkg/msg/Type``. A type with no installed definition is still
        recorded (empty schema: MCAP's "no schema available"), logged once and listed in
        ``unknown_types``. Re-adding with the same type is a no-op.

        Raises:
            ValueError: empty names, or the topic exists with a different type.
            BagClosedError: after close(). BagDiskFullError: see the module docstring.
        """
        if not name or not type_name:
            raise ValueError(f"topic name and type must be non-empty (got {name!r}, {type_name!r})")
        qos = [normalize(p) for p in (offered_qos_profiles or [])]
        with self._lock:
            self._check_open()
            t = self._topics.get(name)
            if t is not None:
                if t.type != type_name:
                    raise ValueError(f"topic {name!r} already recorded as {t.type}, not {type_name}")
                return
            new_schema = type_name not in self._schemas
            if new_schema:
                d = definition_for(type_name)
                if not d.known:
                    self.unknown_types.add(type_name)
                    log.warning("no installed message definition for %s (topic %s): recording with an "
                                "empty schema; decode it with the package installed", type_name, name)
                self._schemas[type_name] = (len(self._schemas) + 1, d)
            sid, _d = self._schemas[type_name]
            t = _Topic(name, type_name, qos, type_hash_for(type_name), len(self._topics) + 1, sid)
            self._topics[name] = t
            self._guard(lambda: self._register(self._file, t, new_schema))

    def _register(self, f: McapFileWriter, t: _Topic, new_schema: bool) -> None:
        if new_schema:
            _sid, d = self._schemas[t.type]
            f.add_schema(t.schema_id, t.type, d.encoding, d.text.encode("utf-8"))
        f.add_channel(t.channel_id, t.schema_id, t.name, "cdr",
                      {"offered_qos_profiles": dump_qos_list(t.qos), "topic_type_hash": t.hash})

    # ---- hot path -----------------------------------------------------------------
    def write(self, topic: str, data: bytes, log_time_ns: int, publish_time_ns: int | None = None) -> None:
        """Append one serialized (CDR) message.

        Args:
            topic: a topic registered with ``add_topic``.
            data: the CDR bytes (bytes-like; non-``bytes`` input is copied).
            log_time_ns: receive time, ns since the epoch (0 <= t < 2**64).
            publish_time_ns: source timestamp, ns; defaults to ``log_time_ns``.

        Raises:
            KeyError: unknown topic. ValueError: a time out of range. TypeError: data not bytes-like.
            BagDiskFullError: the disk is full (once; later calls raise BagClosedError).
            BagClosedError: after close() or a disk-full error.
        """
        t = self._topics.get(topic)
        if t is None:
            raise KeyError(f"topic {topic!r} was not added (call add_topic first)")
        if type(data) is not bytes:
            data = bytes(data)
        if publish_time_ns is None:
            publish_time_ns = log_time_ns
        with self._lock:
            f = self._file
            if f is None or self._error is not None:
                self._raise_state(with_message=True)
            now = _monotonic()
            if self._split_due_locked(f, log_time_ns):
                self._split_locked()
                f = self._file
            if f.chunk_messages == 0:
                self._chunk_t0 = now
            try:
                f.add_message(t.channel_id, log_time_ns, publish_time_ns, data)
            except struct.error:
                raise ValueError(f"times out of range for {topic}: log_time_ns={log_time_ns!r}, "
                                 f"publish_time_ns={publish_time_ns!r} (need 0 <= t < 2**64)") from None
            if self._file_start is None or log_time_ns < self._file_start:
                self._file_start = log_time_ns
            c = t.counts
            c[0] += 1
            c[1] += len(data)
            if f.chunk_len >= self._chunk_size or now - self._chunk_t0 >= self._seal_s:
                self._emit(f)

    def _emit(self, f: McapFileWriter) -> None:
        """Seal the chunk being built and write it (I/O thread, or here when sync)."""
        sealed = f.seal_chunk()
        if sealed is None:
            return
        if self._io_q is not None:
            self._io_q.put(("chunk", f, sealed))
            return
        try:
            f.write_chunk(sealed)
        except BagWriteError as exc:
            self._fail(exc)
            self._raise_state()

    def _io_loop(self) -> None:
        """The I/O thread: write sealed chunks and close split files, in order."""
        while True:
            item = self._io_q.get()
            try:
                if item is None:
                    return
                kind, f, arg = item
                if kind == "chunk":
                    if self._error is not None:
                        self.lost_messages += arg.count  # after a failure nothing more is written
                    else:
                        try:
                            f.write_chunk(arg)
                        except BagWriteError as exc:
                            self._fail(exc)
                elif kind == "close":
                    try:
                        self._finish_file(f, arg)
                    except BagWriteError as exc:
                        if self._error is None:
                            self._fail(exc)
                elif kind == "call":
                    arg()
            except Exception as exc:  # noqa: BLE001 - never let the I/O thread die silently
                log.exception("bag I/O thread: %s", exc)
                if self._error is None:
                    self._error = BagWriteError(getattr(item[1], "path", self.path), getattr(exc, "errno", 0) or 0)
            finally:
                self._io_q.task_done()

    def _drain(self) -> None:
        """Wait until the I/O thread has written everything queued."""
        if self._io_q is not None:
            self._io_q.join()

    def _fail(self, exc: BagWriteError) -> None:
        """Disk full: the file is already cut back to its last record; refuse further writes."""
        self.lost_messages += exc.lost_messages
        if self._error is None:
            self._error = exc
        log.error("%s", exc)

    def _raise_state(self, with_message: bool = False) -> None:
        """Raise the pending disk-full error once (dropping the chunk being built), else
        BagClosedError. ``with_message``: the caller's own message was refused (count it lost)."""
        if self._closed:
            raise BagClosedError(f"bag {self.path} is closed")
        if self._error is not None and not self._error_raised:
            self._error_raised = True
            self._drain()  # the I/O thread counts the chunks it drops; let it finish first
            f = self._file
            if f is not None:
                self.lost_messages += f.chunk_messages
                f._reset_chunk()
            self.lost_messages += 1 if with_message else 0
            self._error.lost_messages = self.lost_messages
            raise self._error
        raise BagClosedError(f"bag {self.path} stopped after a disk-full error: {self._error}")

    def _check_open(self) -> None:
        if self._closed or self._error is not None:
            if self._closed:
                raise BagClosedError(f"bag {self.path} is closed")
            if not self._error_raised:
                self._error_raised = True
                self._error.lost_messages = self.lost_messages
                raise self._error
            raise BagClosedError(f"bag {self.path} stopped after a disk-full error: {self._error}")

    def _guard(self, fn) -> None:
        """Run a direct (non-chunk) write after the queued chunks; disk full raises now."""
        self._drain()
        self._check_open()
        try:
            fn()
        except BagWriteError as exc:
            self._fail(exc)
            self._error_raised = True
            raise

    # ---- episode metadata, attachments ------------------------------------------------
    def add_metadata(self, name: str, data: dict) -> None:
        """Write an MCAP Metadata record ``name`` (string -> string) now, and into every later
        split file. Calling again with the same name writes a newer record (readers take the last).

        Raises:
            ValueError: ``name`` is ``rosbag2`` (reserved) or empty. BagDiskFullError, BagClosedError.
        """
        if not name or name == "rosbag2":
            raise ValueError(f"metadata name {name!r} is empty or reserved")
        rec = {str(k): str(v) for k, v in data.items()}
        with self._lock:
            self._check_open()
            self._meta_records[name] = rec
            f = self._file
            self._emit(f)
            self._guard(lambda: f.add_metadata(name, rec))

    def attach(self, name: str, data: bytes, media_type: str = "text/xml") -> None:
        """Write an MCAP Attachment (e.g. the robot URDF) now and into every later split file.

        Raises:
            ValueError: empty name. BagDiskFullError, BagClosedError.
        """
        if not name:
            raise ValueError("attachment name must be non-empty")
        t = time.time_ns()
        item = (str(name), bytes(data), str(media_type), t, t)
        with self._lock:
            self._check_open()
            self._attachments.append(item)
            f = self._file
            self._emit(f)
            self._guard(lambda: f.add_attachment(*item))

    def set_custom_data(self, key: str, value: str) -> None:
        """Set a metadata.yaml ``custom_data`` entry (written at the next metadata write)."""
        with self._lock:
            self._custom[str(key)] = str(value)

    # ---- files ----------------------------------------------------------------------
    def _open_file(self) -> None:
        opts = self.options
        path = self.path / f"{self.name}_{len(self._writers)}.mcap"
        import mcap

        from robot_capture import __version__

        f = McapFileWriter(path, compression=opts.compression, compression_level=opts.compression_level,
                           chunk_size=opts.chunk_size, chunk_crc=opts.chunk_crc,
                           library=f"robot_capture {__version__}; mcap-python {getattr(mcap, '__version__', '')}")
        self._writers.append(f)
        self._file = f
        self._file_start = None

        def header_records():
            seen = set()
            for t in self._topics.values():
                self._register(f, t, new_schema=t.schema_id not in seen)
                seen.add(t.schema_id)
            for name, rec in self._meta_records.items():
                f.add_metadata(name, rec)
            for item in self._attachments:
                f.add_attachment(*item)

        try:
            header_records()
        except BagWriteError as exc:
            self._fail(exc)
            self._error_raised = True
            raise

    def _finish_file(self, f: McapFileWriter, snapshot) -> None:
        """Write the rosbag2 record and the footer of ``f`` (I/O thread or caller).

        ``snapshot``: (writers up to f, topics, custom data) for the rosbag2 record.
        """
        writers, topics, custom = snapshot
        err = None
        try:
            f.flush_chunk()
            meta = _build_metadata(writers, topics, custom, self.options.ros_distro)
            f.add_metadata("rosbag2", {"serialized_metadata": serialized_metadata(meta),
                                       "ROS_DISTRO": self.options.ros_distro})
        except BagWriteError as exc:
            err = exc
        try:
            f.finish()
        except BagWriteError as exc:
            err = err or exc
        except OSError as exc:  # anything else: the data is on disk; recover can finish it
            log.error("closing %s: %s", f.path, exc)
        if err is not None:
            raise err

    def _close_current(self) -> None:
        """Seal and hand over the current file's last chunk and its closing (in order)."""
        f = self._file
        if f is None:
            return
        self._emit(f)
        snapshot = (list(self._writers), list(self._topics.values()), dict(self._custom))
        self._file = None
        if self._io_q is not None:
            self._io_q.put(("close", f, snapshot))
        else:
            try:
                self._finish_file(f, snapshot)
            except BagWriteError as exc:
                if self._error is None:
                    self._fail(exc)
                raise

    def _split_due_locked(self, f, log_time_ns: int) -> bool:
        return bool((self._split_size and f.pos + f.pending_bytes + f.chunk_len >= self._split_size
                     and (f.chunk_messages or f.message_count)) or (
                    self._split_ns and self._file_start is not None
                    and log_time_ns - self._file_start >= self._split_ns))

    def split_due(self, log_time_ns: int) -> bool:
        """True if a ``write`` at ``log_time_ns`` would first start the next file (``max_bag_size`` or
        ``max_bag_duration_s`` reached): the video encoders then write a keyframe there."""
        with self._lock:
            f = self._file
            return f is not None and self._error is None and self._split_due_locked(f, log_time_ns)

    def split(self) -> None:
        """Close the current file and continue in ``<name>_<i+1>.mcap`` (no-op if it has no
        messages yet). Raises BagDiskFullError, BagClosedError."""
        with self._lock:
            self._check_open()
            f = self._file
            if f.message_count or f.chunk_messages:
                self._split_locked()

    def _split_locked(self) -> None:
        self._close_current()
        self._open_file()

    # ---- metadata ---------------------------------------------------------------------
    def _metadata_locked(self) -> BagMetadata:
        return _build_metadata(list(self._writers), list(self._topics.values()), self._custom,
                               self.options.ros_distro)

    @property
    def file_count(self) -> int:
        """Files opened so far (``<name>_0.mcap`` ...): 1 + the splits, by size, duration or ``split()``."""
        with self._lock:
            return len(self._writers)

    def metadata(self) -> BagMetadata:
        """The bag metadata as of now (messages on disk only)."""
        with self._lock:
            return self._final if self._final is not None else self._metadata_locked()

    @property
    def stats(self) -> dict[str, TopicStats]:
        """Per-topic messages and bytes passed to ``write`` (snapshot)."""
        with self._lock:
            return {n: TopicStats(t.type, t.counts[0], t.counts[1]) for n, t in self._topics.items()}

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def unwritten_bytes(self) -> int:
        """Bytes accepted by ``write`` but not yet handed to the kernel (uncompressed; a
        snapshot, read without the lock): what the disk guard subtracts from free space."""
        f = self._file
        return f.pending_bytes + f.chunk_len if f is not None else 0

    @property
    def current_file(self) -> Path | None:
        f = self._file
        return Path(f.path) if f is not None else None

    # ---- background threads -------------------------------------------------------------
    # Two threads, so that the flush bound holds on a starved machine (issue 23): the seal thread
    # seals an aged chunk on its own clock and never touches the disk (the I/O thread writes it);
    # the sync thread does fdatasync and the periodic metadata.yaml, which can take seconds on a
    # loaded disk. Before, one thread did all three, and while it synced no aged chunk was sealed.
    def _seal_loop(self) -> None:
        tick = min(0.25, self._flush_s / 4)
        while not self._stop.wait(tick):
            with self._lock:
                f = self._file
                if f is None or self._closed:
                    break
                if self._error is None and f.chunk_messages and _monotonic() - self._chunk_t0 >= self._seal_s:
                    try:
                        self._emit(f)
                    except BagError:
                        pass  # reported to the next write()

    def _sync_loop(self) -> None:
        tick = min(0.25, self._flush_s / 4)
        last_meta = _monotonic()
        meta_every = self.options.metadata_interval_s
        while not self._stop.wait(tick):
            dup = -1
            meta = None
            with self._lock:
                f = self._file
                if f is None or self._closed:
                    break
                if self._error is None and self.options.fsync and f.pos > getattr(f, "_synced", 0):
                    f._synced = f.pos
                    dup = f.dup_fd()
                if meta_every and _monotonic() - last_meta >= meta_every:
                    last_meta = _monotonic()
                    meta = self._metadata_locked()
            if dup >= 0:
                try:
                    os.fdatasync(dup) if hasattr(os, "fdatasync") else os.fsync(dup)
                except OSError:
                    pass
                finally:
                    os.close(dup)
            if meta is not None and meta.message_count:
                with self._meta_lock:
                    if self._meta_final:
                        break
                    try:
                        write_metadata(self.path, meta)
                    except OSError as exc:
                        log.warning("periodic metadata.yaml write failed: %s", exc)

    # ---- close ----------------------------------------------------------------------
    def close(self) -> BagMetadata:
        """Write what is buffered, finish the current file, write metadata.yaml atomically.
        Idempotent. Returns the final BagMetadata.

        Raises:
            BagDiskFullError: the disk filled up and no earlier call has raised it; everything
                that fitted is readable (``recover`` if a footer is missing).
        """
        self._stop.set()
        with self._lock:  # first hand what is buffered to the I/O thread: never behind a slow sync
            if self._closed:
                return self._final
            already = self._error_raised
            try:
                self._close_current()
            except BagWriteError:
                pass
        threads, self._threads = self._threads, []
        for t in threads[:1]:  # the seal thread; never the sync thread, which may sit in a long fdatasync
            t.join()
        with self._lock:
            if self._closed:
                return self._final
            self._drain()
            if self._io_q is not None:
                self._io_q.put(None)
                self._io_thread.join()
                self._io_q = None
            self._closed = True
            self._reclock.release()
            meta = self._final = self._metadata_locked()
            err = self._error
            try:
                with self._meta_lock:  # after a periodic write in flight, and no periodic one after it
                    self._meta_final = True
                    write_metadata(self.path, meta)
            except OSError as exc:
                log.error("could not write %s/metadata.yaml: %s (run `robot-capture recover`)", self.path, exc)
                if err is None and exc.errno in DISK_FULL_ERRNOS:
                    err = self._error = BagDiskFullError(self.path / "metadata.yaml", exc.errno)
            if err is not None and not already:
                self._error_raised = True
                err.lost_messages = self.lost_messages
                raise err
            return meta

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.close()
        except BagWriteError:
            if exc[0] is None:
                raise

    def __del__(self):  # best effort: never leave a file without its footer
        try:
            if not self._closed and self._file is not None:
                self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
