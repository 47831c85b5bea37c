"""Recorder: serialized messages in, one rosbag2 bag directory per episode out.

ROS-free (the rclpy shell is ``robot_capture.nodes.recorder_node``). The node
registers topics (:meth:`Recorder.add_topic`) as it discovers them, feeds every
received CDR buffer to :meth:`Recorder.on_message` and maps the episode services
to :meth:`start_episode`, :meth:`stop_episode`, :meth:`discard_episode` and
:meth:`split`; :meth:`tick` (1 Hz) runs the disk guard and closes the rate window.

Episode metadata (task, operator, scene, notes, start/stop times, success label,
stop reason, splits by size, duration or service, drop counters) is written both as MCAP
metadata records and as metadata.yaml ``custom_data`` (``episode.<key>``, ``drops/<topic>``).
Records: ``episode_start`` (labels and start time, at start, repeated in every split file),
``episode`` (the full summary, once, at stop, in the last file: first-found = last-found),
``recorder_drops``.
Attachments (robot URDF, configs) are read at each episode start and stored as
MCAP attachments named by file name.

Failure policy (never crash, never corrupt):

* Free space under ``disk_min_free_bytes`` (checked on :meth:`tick`, before a
  start, and whenever the bytes written since the last check could have used up
  half of the headroom above the threshold, so a fast writer cannot overrun it
  between ticks): the episode is stopped cleanly with reason ``disk_low`` and
  :attr:`last_error` says so; a start is refused (``DiskLowError``).
* Room for the labels: each episode holds a ``disk_reserve_bytes`` reserve file
  (``<bag>/.disk_reserve``, default 1 MiB, allocated at start) that is deleted just
  before the bag is closed, so the footers and a metadata.yaml with the labels and
  the stop reason fit even when the disk filled up. A start that cannot succeed
  (free space under guard threshold + reserve + one chunk, or the reserve cannot
  be allocated) is refused with ``DiskLowError``, guard or not.
* The writer reports disk full (``BagDiskFullError``: ENOSPC/EDQUOT/EFBIG) or
  another OS error: the episode is closed (the bag writer truncates to the last
  complete record, finishes footers and metadata.yaml if room allows) with reason
  ``disk_full``/``write_error``; later messages are ignored until the next start.
* A topic seen with a second type: the first type keeps being recorded, the
  other is refused, counted (``problems['type_change']``) and warned once.

Thread-safety: every public method takes one lock; the writer's own I/O thread
does compression and disk writes, so ``on_message`` stays short.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from robot_capture.bag.errors import DISK_FULL_ERRNOS
from robot_capture.record.episode import (Episode, EpisodeInfo, EpisodeState, episode_dir, episode_name,
                                          next_sequence)
from robot_capture.record.stats import TopicStats

__all__ = ["DiskLowError", "EpisodeStateError", "Recorder", "RecorderStatus"]

log = logging.getLogger(__name__)

_MEDIA_TYPES = {".urdf": "text/xml", ".xml": "text/xml", ".xacro": "text/xml", ".yaml": "application/yaml",
                ".yml": "application/yaml", ".json": "application/json", ".srdf": "text/xml"}


class EpisodeStateError(RuntimeError):
    """The request does not fit the episode state (start while recording, stop while idle)."""


class DiskLowError(RuntimeError):
    """Free space in ``output_dir`` is under the recorder's threshold."""


class RecorderStatus(dict):
    """``status()`` result: a dict with keys ``state``, ``episode`` (name or ""),
    ``episode_path``, ``episode_elapsed_s``, ``disk_free_bytes``, ``last_error``,
    ``episodes_recorded``, ``topics`` ({topic: TopicStats.as_dict()})."""


class Recorder:
    """Record raw CDR messages into episode bags.

    Args:
        output_dir: folder that receives one bag directory per episode (created).
        writer_options: ``robot_capture.bag.WriterOptions`` (None: defaults).
        attachments: file paths (URDF, configs) attached to every episode.
        disk_min_free_bytes: stop/refuse episodes below this free space (0: off).
        disk_reserve_bytes: space held per episode for its closing records (0: none).
        writer_factory: ``(bag_dir, options, custom_data) -> BagWriter`` (tests inject fakes).
        disk_usage: ``shutil.disk_usage``-like function (tests inject fakes).
        logger: object with ``info``/``warning``/``error`` (an rclpy logger works).
    """

    def __init__(self, output_dir, writer_options=None, attachments: Sequence = (), disk_min_free_bytes: int = 0,
                 writer_factory: Callable | None = None, disk_usage: Callable = shutil.disk_usage, logger=None,
                 disk_reserve_bytes: int = 1 << 20):
        self.output_dir = Path(output_dir).expanduser().resolve()
        self.log = logger or log
        self.last_error = ""
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a full disk: stay up; every start says why (DiskLowError)
            if exc.errno not in DISK_FULL_ERRNOS:
                raise
            self.last_error = f"cannot create {self.output_dir}: {exc.strerror}"
            self.log.error(self.last_error)
        if writer_options is None:
            from robot_capture.bag import WriterOptions

            writer_options = WriterOptions()
        writer_options.validate()
        self.writer_options = writer_options
        self.attachments = [Path(a).expanduser() for a in attachments if str(a)]
        self.disk_min_free_bytes = int(disk_min_free_bytes)
        self.disk_reserve_bytes = max(0, int(disk_reserve_bytes))
        self._reserve: Path | None = None
        self._since_check = 0     # bytes written since free space was last read
        self._check_budget = 0    # ... after which it is read again (half the headroom)
        if writer_factory is None:
            from robot_capture.bag import BagWriter

            writer_factory = BagWriter
        self._factory = writer_factory
        self._disk_usage = disk_usage
        self._lock = threading.RLock()
        self._topics: dict[str, tuple[str, list]] = {}   # name -> (type, offered qos)
        self.stats: dict[str, TopicStats] = {}
        self._writer = None
        self.episode: Episode | None = None
        self.state = EpisodeState.IDLE
        self.episodes_recorded = 0
        self.last_episode_path: Path | None = None
        #: {topic: Hz | None} the floor expects; stored in each bag (custom_data expected_hz/<topic>), where
        #: the QA reads it. Set by the node (e.g. from floor.graph.expected_topics).
        self.expected_hz: dict = {}
        #: {topic: Hz} declared rates of optional streams (custom_data optional_hz/<topic>): the QA judges
        #: their rate and gaps when they are in the bag, and not their absence
        self.optional_hz: dict = {}
        #: ``(bag_dir) -> None`` called after every episode close (stop, disk, write error, shutdown), e.g. to
        #: queue the bag's QA (robot_capture.qa.recorder.StopVerdicts.submit); must not block; errors are logged
        self.on_closed: Callable | None = None
        #: {topic: "name | role | source"} of the station contract; stored as custom_data stream/<topic>
        self.stream_names: dict = {}
        #: ``() -> None`` called before a stop or shutdown takes the lock (robot_capture.video.stage: the
        #: encoders write their queued frames); errors are logged
        self.before_close: Callable | None = None
        #: ``() -> context manager`` held around :meth:`split` (robot_capture.video.stage: no frame is
        #: being encoded, so each file starts with a keyframe)
        self.split_guard: Callable | None = None
        self._seq = next_sequence(self.output_dir)
        self._disk_free = self._free_bytes()

    # ------------------------------------------------------------------ topics
    def add_topic(self, name: str, type_name: str, offered_qos_profiles: list | None = None) -> bool:
        """Register ``name`` with ``type_name`` for this and later episodes.

        Returns False (and counts ``type_change``, warning once) if ``name`` is
        already registered with another type; the first type stays recorded.
        """
        with self._lock:
            st = self.stats.setdefault(name, TopicStats(name, type_name))
            known = self._topics.get(name)
            if known is not None:
                if known[0] != type_name:
                    self.problem(name, "type_change",
                                 f"topic {name} now also has type {type_name}; recording only {known[0]}")
                    return False
                return True
            self._topics[name] = (type_name, list(offered_qos_profiles or []))
            st.type = type_name
            if self._writer is not None:
                self._writer_add_topic(name)
            return True

    def set_offered_qos(self, name: str, offered_qos_profiles: list) -> None:
        """Refresh the offered QoS profiles of a registered topic (used from the next episode on;
        a bag's channels cannot change once written)."""
        with self._lock:
            known = self._topics.get(name)
            if known is not None and offered_qos_profiles:
                self._topics[name] = (known[0], list(offered_qos_profiles))

    @property
    def segment(self) -> tuple[int, int] | None:
        """``(episode sequence, file count)`` of the file being written, None when idle. Read without
        the lock (two attribute reads): the video encoders poll it per frame to start every episode
        and file with a keyframe."""
        w, ep = self._writer, self.episode
        if w is None or ep is None:
            return None
        return ep.seq, getattr(w, "file_count", 0)

    @property
    def topics(self) -> dict[str, str]:
        """Registered topics: ``{name: type}``."""
        with self._lock:
            return {k: v[0] for k, v in self._topics.items()}

    def problem(self, topic: str, kind: str, message: str) -> None:
        """Count a bad-publisher problem on ``topic``; log ``message`` the first time only."""
        with self._lock:
            st = self.stats.setdefault(topic, TopicStats(topic))
            if st.on_problem(kind) == 1:
                self.log.warning(message)

    def on_lost(self, topic: str, count: int) -> None:
        """Middleware-reported lost messages (DDS ``message_lost`` event) on ``topic``."""
        with self._lock:
            self.stats.setdefault(topic, TopicStats(topic)).on_lost(count)

    # ------------------------------------------------------------------ hot path
    def on_message(self, topic: str, type_name: str, data: bytes, recv_ns: int, source_ns: int | None = None,
                   seq: int | None = None, publisher: bytes | None = None,
                   segment: tuple | None = None) -> bool | None:
        """One received message (raw CDR). Returns True if it went into the episode bag.

        ``recv_ns`` becomes the MCAP ``log_time``, ``source_ns`` the ``publish_time``
        (receive time when unknown). ``seq``/``publisher``: the publication sequence
        number and publisher GID from the rmw MessageInfo, for drop detection.
        ``segment`` (a video frame that is not a keyframe, :attr:`segment` when it was encoded):
        returns None, writing nothing, if the file changed since or this write would start the
        next file; the caller writes a keyframe instead (robot_capture.video.stage).
        """
        with self._lock:
            if segment is not None and self._writer is not None and (
                    self.segment != segment or getattr(self._writer, "split_due", lambda _t: False)(recv_ns)):
                return None
            st = self.stats.get(topic)
            if st is None:
                st = self.stats[topic] = TopicStats(topic, type_name)
            st.on_receive(recv_ns, seq, publisher)
            w = self._writer
            if w is None:
                return False
            known = self._topics.get(topic)
            if known is None or known[0] != type_name:
                if known is None:
                    self.add_topic(topic, type_name)
                else:
                    self.problem(topic, "type_change", f"topic {topic}: message of type {type_name} refused "
                                 f"(recording {known[0]})")
                    return False
            try:
                w.write(topic, data, recv_ns, source_ns if source_ns else recv_ns)
            except Exception as exc:  # noqa: BLE001 - any writer failure ends the episode, never the node
                self._fail(exc)
                return False
            st.on_written(len(data), recv_ns, publisher)
            self._since_check += len(data)
            if self._since_check >= self._check_budget and self.disk_min_free_bytes:
                self._disk_guard()
            return True

    # ------------------------------------------------------------------ episodes
    def start_episode(self, info: EpisodeInfo | None = None) -> Path:
        """Open a new episode bag; returns its directory.

        Raises:
            EpisodeStateError: an episode is already recording.
            DiskLowError: free space below ``disk_min_free_bytes``.
            OSError: the bag directory cannot be created.
        """
        info = info or EpisodeInfo()
        with self._lock:
            if self._writer is not None:
                raise EpisodeStateError(f"episode {self.episode.name} is already recording")
            free = self._free_bytes()
            if self.disk_min_free_bytes and free < self.disk_min_free_bytes:
                raise DiskLowError(f"only {free / 1e6:.1f} MB free in {self.output_dir} "
                                   f"(threshold {self.disk_min_free_bytes / 1e6:.1f} MB); not starting")
            need = self.disk_min_free_bytes + self.disk_reserve_bytes + int(getattr(self.writer_options,
                                                                                   "chunk_size", 0))
            if (self.disk_min_free_bytes or self.disk_reserve_bytes) and free < need:
                raise DiskLowError(f"only {free / 1e6:.1f} MB free in {self.output_dir}: an episode needs at "
                                   f"least {need / 1e6:.1f} MB (guard threshold + closing reserve + one chunk); "
                                   "not starting")
            now_ns = time.time_ns()
            while True:
                seq = self._seq
                self._seq += 1
                name = episode_name(now_ns / 1e9, info.task, seq)
                path = episode_dir(self.output_dir, name)
                if not path.exists():
                    break
            meta = info.to_metadata()
            custom = {f"episode.{k}": v for k, v in meta.items()}
            custom.update({"episode.name": name, "episode.start_time_ns": str(now_ns), "episode.success": "unknown"})
            custom.update({f"expected_hz/{t}": (f"{hz:g}" if hz else "") for t, hz in sorted(self.expected_hz.items())})
            custom.update({f"optional_hz/{t}": f"{hz:g}" for t, hz in sorted(self.optional_hz.items()) if hz})
            custom.update({f"stream/{t}": str(v) for t, v in sorted(self.stream_names.items())})
            w = self._factory(path, self.writer_options, custom)
            try:
                self._reserve = self._make_reserve(path)
            except OSError as exc:
                try:
                    w.close()
                except Exception:  # noqa: BLE001 - the bag is empty and removed anyway
                    pass
                shutil.rmtree(path, ignore_errors=True)
                raise DiskLowError(f"cannot reserve {self.disk_reserve_bytes / 1e6:.1f} MB for closing "
                                   f"the episode in {self.output_dir} ({exc.strerror}); not starting") from None
            self._writer = w
            self._since_check = 0
            self._check_budget = self._budget(free)
            self.episode = Episode(name=name, path=path, info=info, seq=seq, started_ns=now_ns)
            self.state = EpisodeState.RECORDING
            self.last_error = ""
            try:
                # "episode_start", not "episode": each file then holds at most one "episode" record
                # (the final one, at stop), so first-found and last-found readers agree
                w.add_metadata("episode_start", {**meta, "name": name, "start_time_ns": str(now_ns)})
                for topic in self._topics:
                    self._writer_add_topic(topic)
                self._attach_files(w)
            except Exception as exc:  # noqa: BLE001
                self._fail(exc)
                raise
            for st in self.stats.values():
                st.reset_episode()
            self.log.info(f"episode {name} started -> {path}")
            return path

    def stop_episode(self, success: bool | None = None, reason: str = "stopped") -> Path | None:
        """Close the episode bag with a success label (None = unlabelled); returns its path.

        Raises:
            EpisodeStateError: no episode is recording.
        """
        self._before_close()
        with self._lock:
            if self._writer is None:
                raise EpisodeStateError("no episode is recording")
            return self._close(success, reason)

    def discard_episode(self) -> Path:
        """Close the episode and delete its bag directory; returns the deleted path.

        Raises:
            EpisodeStateError: no episode is recording.
        """
        with self._lock:
            if self._writer is None:
                raise EpisodeStateError("no episode is recording")
            w, ep = self._writer, self.episode
            self._writer, self.episode, self.state = None, None, EpisodeState.IDLE
            self._release_reserve()
            try:
                w.close()
            except Exception as exc:  # noqa: BLE001 - deleting anyway
                self.log.warning(f"closing discarded episode {ep.name}: {exc}")
            shutil.rmtree(ep.path, ignore_errors=True)
            self.log.info(f"episode {ep.name} discarded")
            return ep.path

    def split(self) -> Path:
        """Start the next ``<name>_<n>.mcap`` file of the current episode; returns the episode path.

        Raises:
            EpisodeStateError: no episode is recording.
        """
        with (self.split_guard() if self.split_guard is not None else contextlib.nullcontext()), self._lock:
            if self._writer is None:
                raise EpisodeStateError("no episode is recording")
            try:
                self._writer.split()
            except Exception as exc:  # noqa: BLE001
                path = self.episode.path
                self._fail(exc)
                return path
            self.episode.splits += 1
            return self.episode.path

    def close(self, success: bool | None = None) -> Path | None:
        """Stop the open episode, if any (reason ``shutdown``). Safe to call twice."""
        if self._writer is not None:
            self._before_close()
        with self._lock:
            if self._writer is None:
                return None
            return self._close(success, "shutdown")

    # ------------------------------------------------------------------ periodic
    def tick(self, now_ns: int | None = None) -> None:
        """Call about once a second: closes the rate window and runs the disk guard."""
        now_ns = now_ns or time.time_ns()
        with self._lock:
            for st in self.stats.values():
                st.window(now_ns)
            self._disk_guard()

    def status(self) -> RecorderStatus:
        """Snapshot for diagnostics (see :class:`RecorderStatus`)."""
        with self._lock:
            ep = self.episode
            return RecorderStatus(
                state=self.state.value,
                episode=ep.name if ep else "",
                episode_path=str(ep.path) if ep else "",
                episode_elapsed_s=(time.time_ns() - ep.started_ns) / 1e9 if ep else 0.0,
                disk_free_bytes=self._disk_free,
                last_error=self.last_error,
                episodes_recorded=self.episodes_recorded,
                topics={k: v.as_dict() for k, v in self.stats.items()},
            )

    # ------------------------------------------------------------------ internals
    def _disk_guard(self) -> None:
        """Read free space; below ``disk_min_free_bytes`` stop the episode (``disk_low``)."""
        # accepted bytes not yet on disk will take their room: counted, but free space is never
        # reported below 0 (issue 23: "-1.3 MB free")
        free = max(0, self._free_bytes() - int(getattr(self._writer, "unwritten_bytes", 0) or 0))
        self._since_check = 0
        self._check_budget = self._budget(free)
        if self._writer is not None and self.disk_min_free_bytes and free < self.disk_min_free_bytes:
            msg = (f"disk guard: only {free / 1e6:.1f} MB free in {self.output_dir} (threshold "
                   f"{self.disk_min_free_bytes / 1e6:.1f} MB); episode {self.episode.name} stopped")
            self._close(None, "disk_low")
            self.last_error = msg
            self.log.error(msg)

    def _budget(self, free: int) -> int:
        """Bytes that may be written before free space is read again: half the headroom above
        the threshold (at least 64 KiB, so a check costs one statvfs per 64 KiB at worst)."""
        return max(64 * 1024, (free - self.disk_min_free_bytes) // 2)

    def _make_reserve(self, bag: Path) -> Path | None:
        """Allocate ``<bag>/.disk_reserve`` (raises OSError, e.g. ENOSPC)."""
        if not self.disk_reserve_bytes:
            return None
        p = bag / ".disk_reserve"
        bag.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            try:
                os.posix_fallocate(fd, 0, self.disk_reserve_bytes)
            except (AttributeError, OSError) as exc:
                if getattr(exc, "errno", None) in DISK_FULL_ERRNOS:
                    raise
                os.write(fd, b"\0" * self.disk_reserve_bytes)  # no fallocate on this file system
            os.fsync(fd)
        except OSError:
            os.close(fd)
            p.unlink(missing_ok=True)
            raise
        os.close(fd)
        return p

    def _release_reserve(self) -> None:
        p, self._reserve = self._reserve, None
        if p is not None:
            try:
                p.unlink()
            except OSError as exc:
                self.log.warning(f"cannot delete the disk reserve {p}: {exc}")

    def _free_bytes(self) -> int:
        """Free bytes in ``output_dir`` (>= 0); the folder's nearest existing parent if it does
        not exist (yet: a full disk at start)."""
        where = self.output_dir
        while not where.exists() and where.parent != where:
            where = where.parent
        try:
            self._disk_free = max(0, int(self._disk_usage(where).free))
        except OSError as exc:
            self.log.warning(f"cannot read free space of {self.output_dir}: {exc}")
        return getattr(self, "_disk_free", 0)

    def _writer_add_topic(self, name: str) -> None:
        type_name, qos = self._topics[name]
        try:
            self._writer.add_topic(name, type_name, qos)
        except ValueError as exc:
            self.problem(name, "type_change", f"topic {name}: {exc}")

    def _attach_files(self, w) -> None:
        for path in self.attachments:
            try:
                data = path.read_bytes()
            except OSError as exc:
                self.problem(str(path), "attachment", f"cannot attach {path}: {exc}")
                continue
            w.attach(path.name, data, _MEDIA_TYPES.get(path.suffix.lower(), "text/plain"))

    def _episode_summary(self, success, reason: str, now_ns: int) -> dict[str, str]:
        ep = self.episode
        label = "unknown" if success is None else ("true" if success else "false")
        files = getattr(self._writer, "file_count", 0)  # splits by size and duration count too
        splits = max(ep.splits, int(files) - 1) if isinstance(files, int) else ep.splits
        return {**ep.info.to_metadata(), "name": ep.name, "start_time_ns": str(ep.started_ns),
                "stop_time_ns": str(now_ns), "duration_s": f"{(now_ns - ep.started_ns) / 1e9:.3f}",
                "success": label, "stop_reason": reason, "splits": str(splits)}

    def _close(self, success, reason: str) -> Path:
        w, ep = self._writer, self.episode
        now_ns = time.time_ns()
        summary = self._episode_summary(success, reason, now_ns)
        drops = {f"drops/{t}": str(s.drops) for t, s in self.stats.items() if t in self._topics}
        drops.update({f"publishers/{t}": str(s.publishers) for t, s in self.stats.items()
                      if t in self._topics and s.publishers})
        problems = {f"problems/{t}/{k}": str(n) for t, s in self.stats.items() for k, n in s.problems.items()}
        self._writer, self.episode, self.state = None, None, EpisodeState.IDLE
        # labels first: set_custom_data is memory only and reaches metadata.yaml at close,
        # whatever the records below meet (disk full, a writer that already failed)
        for k, v in {**{f"episode.{k}": v for k, v in summary.items()}, **drops}.items():
            w.set_custom_data(k, v)
        records = [("episode", summary), ("recorder_drops", drops)] + (
            [("recorder_problems", problems)] if problems else [])
        for name, rec in records:
            try:
                w.add_metadata(name, rec)
            except Exception as exc:  # noqa: BLE001 - disk full while labelling: metadata.yaml still has them
                self.log.error(f"episode {ep.name}: could not write the {name} record: {exc}")
        self._release_reserve()
        try:
            w.close()
        except Exception as exc:  # noqa: BLE001
            self.log.error(f"episode {ep.name}: close failed ({exc}); run `robot-capture recover {ep.path}`")
            self.last_error = str(exc)
        self.episodes_recorded += 1
        self.last_episode_path = ep.path
        self.log.info(f"episode {ep.name} stopped ({reason}, success={summary['success']})")
        self._notify_closed(ep)
        return ep.path

    def _before_close(self) -> None:
        if self.before_close is not None:
            try:
                self.before_close()
            except Exception as exc:  # noqa: BLE001 - a stop must never fail here
                self.log.warning(f"before close: {exc}")

    def _notify_closed(self, ep) -> None:
        """Hand the closed bag to :attr:`on_closed` (its QA); a failure there never fails the stop."""
        if self.on_closed is None or not Path(ep.path).is_dir():  # a test's fake writer: no bag
            return
        try:
            self.on_closed(ep.path)
        except Exception as exc:  # noqa: BLE001 - QA must never break a stop
            self.log.warning(f"episode {ep.name}: no QA queued ({exc})")

    def _fail(self, exc: Exception) -> None:
        """The writer failed: close the episode, remember why; the node keeps running."""
        from robot_capture.bag.errors import BagDiskFullError

        reason = "disk_full" if isinstance(exc, BagDiskFullError) or getattr(exc, "errno", None) in (
            28, 122, 27) else "write_error"
        name = self.episode.name if self.episode else "?"
        msg = f"episode {name} stopped: {reason}: {exc}"
        if self._writer is not None:
            self._close(None, reason)
        self.last_error = msg
        self.log.error(msg)


