"""Is a bag directory the whole recording? The one check every reader uses (issue 23).

:func:`check_bag` is what ``info``, ``qa``, ``export``, ``batch``, ``report`` and ``play``
call before they judge, export or play a bag, and :class:`~robot_capture.bag.reader.BagReader`
applies the same rules when it opens a directory, so nothing reads a partial bag as whole.

A bag is **incomplete** when (each rule is one plain-words problem):

1. its folder holds a ``.mcap`` file that ``metadata.yaml`` does not list. The writer
   rewrites metadata.yaml every ``WriterOptions.metadata_interval_s`` (5 s) while recording,
   so after a crash it lists only the files that existed at its last rewrite: a recording
   killed after a split showed 6 of its 9 files (1,865 of 2,815 messages) as the whole bag;
2. ``metadata.yaml`` lists a file that is not in the folder;
3. a ``.mcap`` file does not end in a Footer record and the MCAP magic (the writer appends
   them when it closes the file: a crash, a power cut or a truncated copy leaves none).

A bag whose writer still holds ``<bag>/.recording.lock`` (:func:`robot_capture.bag.lock.is_recording`,
the live lock the episodes store reports as ``recording``) is **recording**, not incomplete:
its files are unfinished by design. With ``verify_chunks``, every chunk of a complete bag is
decoded and checked (framing, decompression, size, CRC32: :mod:`robot_capture.bag.chunks`);
one that fails makes the bag **damaged**. ``robot-capture recover BAG`` fixes both
(it rebuilds the files and metadata.yaml from what is on disk).

A folder without metadata.yaml, or with one that does not parse, is not incomplete by
rule 1 or 2: the reader then reads every ``.mcap`` file of the folder (nothing is hidden)
and rebuilds the metadata from the files' summaries.

ROS-free; cheap without ``verify_chunks``: a directory listing, metadata.yaml and the last
37 bytes of each file (no message data). :func:`check_folder` (rules 1-3, one error) and
:func:`load_summary` (a file's summary after its footer and summary-CRC checks) are what
``BagReader`` and ``recover`` run when they open a file.
"""
from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from mcap.exceptions import McapError
from mcap.reader import make_reader

from robot_capture.bag.crc import crc32
from robot_capture.bag.errors import IncompleteBagFileError
from robot_capture.bag.lock import is_recording
from robot_capture.bag.metadata import METADATA_FILENAME, read_metadata

__all__ = ["BagCheck", "COMPLETE", "DAMAGED", "INCOMPLETE", "RECORDING", "check_bag", "check_folder",
           "damaged_result", "folder_problems", "load_summary",
           "footer_problem", "incomplete_line", "list_mcap_files"]

COMPLETE, INCOMPLETE, RECORDING, DAMAGED = "complete", "incomplete", "recording", "damaged"

_MAGIC = b"\x89MCAP0\r\n"
_FOOTER_OPCODE = 0x02
_TAIL = 9 + 20 + 8  # Footer record (opcode, length, summary start, summary offset start, CRC) + magic


def _split_index(p: Path) -> tuple:
    m = re.search(r"_(\d+)\.mcap$", p.name)
    return (int(m.group(1)) if m else 1 << 62, p.name)


def list_mcap_files(bag_dir) -> list[Path]:
    """The bag's ``*.mcap`` files in split order (``<name>_<i>.mcap`` by i)."""
    return sorted((p for p in Path(bag_dir).glob("*.mcap") if p.is_file()), key=_split_index)


def footer_problem(path) -> str | None:
    """None when ``path`` ends in an MCAP Footer record and magic, else why not (plain words)."""
    path = Path(path)
    try:
        with open(path, "rb") as h:
            size = os.fstat(h.fileno()).st_size
            if size < 8 + _TAIL:
                return f"{path.name} has no summary/footer ({size} bytes: recording crashed or file truncated)"
            h.seek(size - _TAIL)
            tail = h.read(_TAIL)
    except OSError as exc:
        return f"{path.name} cannot be read ({exc.strerror or exc})"
    if tail[-8:] != _MAGIC or tail[0] != _FOOTER_OPCODE:
        return f"{path.name} has no summary/footer (recording crashed or file truncated)"
    return None


def _names(paths) -> str:
    paths = list(paths)
    shown = ", ".join(paths[:4]) + (f" and {len(paths) - 4} more" if len(paths) > 4 else "")
    return shown


def folder_problems(bag_dir, listed: list[str] | None) -> list[str]:
    """Rules 1 and 2 of the module docstring: the folder's ``.mcap`` files against the
    ``relative_file_paths`` of metadata.yaml (``listed``; None = no usable metadata.yaml,
    nothing to compare). Compared by file name. Returns plain-words problems ([] = agree)."""
    if listed is None:
        return []
    present = [p.name for p in list_mcap_files(bag_dir)]
    names = [Path(f).name for f in listed]
    out = []
    extra = [n for n in present if n not in set(names)]
    if extra:
        out.append(f"{len(extra)} of {len(present)} .mcap files not listed in {METADATA_FILENAME} ({_names(extra)})")
    missing = [n for n in names if n not in set(present)]
    if missing:
        out.append(f"{METADATA_FILENAME} lists {len(missing)} file(s) not in the folder ({_names(missing)})")
    return out


def incomplete_line(bag, problems) -> str:
    """The one line every reader prints for an incomplete bag: the bag, ``incomplete: run
    `robot-capture recover BAG```, and what is wrong."""
    return f"{bag}: incomplete: run `robot-capture recover {bag}` ({'; '.join(problems)})"


@dataclass(frozen=True)
class BagCheck:
    """Result of :func:`check_bag`.

    Attributes:
        path: the bag directory.
        status: ``complete`` | ``incomplete`` | ``recording`` | ``damaged``.
        problems: what is wrong, one plain-words item each (empty when complete).
        damaged_chunks: the chunks that failed (``DamagedChunk``; with ``verify_chunks``).
    """

    path: Path
    status: str
    problems: tuple = ()
    damaged_chunks: tuple = field(default=())

    @property
    def ok(self) -> bool:
        """True only for a complete bag (and, if checked, no damaged chunk)."""
        return self.status == COMPLETE

    @property
    def lost_messages(self) -> int:
        """Messages the damaged chunks' indexes list (a lower bound: -1 counts are unknown)."""
        return sum(d.messages for d in self.damaged_chunks if d.messages > 0)

    @property
    def reason(self) -> str:
        """What is wrong and what to do, without the bag's path in front (e.g. for a line that
        names the bag already): ``incomplete: run `robot-capture recover BAG` (...)``."""
        if self.status == INCOMPLETE:
            return incomplete_line(self.path, self.problems)[len(f"{self.path}: "):]
        if self.status == RECORDING:
            return "being recorded right now: wait until its episode stops"
        if self.status == DAMAGED:
            return f"damaged: run `robot-capture recover {self.path}` ({'; '.join(self.problems)})"
        return "complete"

    def line(self) -> str:
        """One line naming the bag and what is wrong (or that it is complete)."""
        return f"{self.path}: {self.reason}"


def _bag_path(bag) -> Path:
    p = Path(bag)
    return p.parent if p.is_file() and p.suffix == ".mcap" else p


def check_bag(bag, verify_chunks: bool = False) -> BagCheck:
    """Whether ``bag`` (a bag directory, or one of its ``.mcap`` files) is the whole recording.

    Args:
        bag: bag directory (a ``.mcap`` file stands for its directory).
        verify_chunks: also decode and check every chunk (reads every byte of the bag; what
            QA and export do before judging or exporting it); a failing chunk -> ``damaged``.

    Returns:
        BagCheck; ``status`` ``recording`` (live lock held), ``incomplete`` (rules 1-3 of the
        module docstring; with ``verify_chunks`` also a summary failing its CRC, as the reader
        says), ``damaged`` (a chunk fails its checks), or ``complete``.

    Raises:
        robot_capture.bag.errors.NotABagError: not a directory, or no metadata.yaml and no .mcap file in it.
    """
    from robot_capture.bag.errors import NotABagError

    p = _bag_path(bag)
    if not p.is_dir():
        raise NotABagError(f"{p}: not a bag directory (does not exist or is not a directory)")
    files = list_mcap_files(p)
    has_meta = (p / METADATA_FILENAME).is_file()
    if not files and not has_meta:
        raise NotABagError(f"{p}: not a bag directory (no metadata.yaml and no .mcap files)")
    if is_recording(p):
        return BagCheck(p, RECORDING, ("being recorded right now",))
    listed = None
    if has_meta:
        try:
            listed = list(read_metadata(p).relative_file_paths)
        except (ValueError, OSError):
            listed = None  # the reader rebuilds it from the summaries of every file in the folder
    problems = folder_problems(p, listed)
    problems += [why for why in (footer_problem(f) for f in files) if why]
    if problems:
        return BagCheck(p, INCOMPLETE, tuple(problems))
    if not verify_chunks:
        return BagCheck(p, COMPLETE)
    from robot_capture.bag.reader import BagReader

    try:
        reader = BagReader(p)
        damaged = reader.verify_chunks()
    except IncompleteBagFileError as exc:  # a footer that points nowhere, a summary failing its CRC
        return BagCheck(p, INCOMPLETE, tuple(getattr(exc, "problems", ()) or (str(exc).splitlines()[0],)))
    return damaged_result(p, damaged)


def damaged_result(bag, damaged) -> BagCheck:
    """The BagCheck of a complete bag whose chunk check found ``damaged`` (DamagedChunk list,
    e.g. :meth:`BagReader.verify_chunks`): ``complete`` when empty, else ``damaged`` with the
    count, the messages the damaged chunks' indexes list, and the first failure."""
    p = _bag_path(bag)
    seen, uniq = set(), []
    for d in damaged:
        if (d.file, d.offset) not in seen:
            seen.add((d.file, d.offset))
            uniq.append(d)
    if not uniq:
        return BagCheck(p, COMPLETE)
    first = uniq[0]
    lost = sum(d.messages for d in uniq if d.messages > 0)
    what = (f"{len(uniq)} chunk(s) fail their checks" + (f", {lost} messages in them" if lost else "")
            + f"; first: {Path(first.file).name} at byte {first.offset}: {first.reason}")
    return BagCheck(p, DAMAGED, (what,), tuple(uniq))


# ---- what BagReader uses when it opens a bag ------------------------------------------
def _incomplete(bag: Path, problems) -> IncompleteBagFileError:
    """The error for an incomplete bag; a bag being recorded says so instead."""
    if is_recording(bag):  # a live bag has no footer yet: recovering it would be refused
        exc = IncompleteBagFileError(f"{bag}: being recorded right now (its writer holds the lock): wait until "
                                     f"its episode stops ({'; '.join(problems)})")
    else:
        exc = IncompleteBagFileError(incomplete_line(bag, problems))
    exc.problems = tuple(problems)
    return exc


def check_folder(bag: Path, files: list[Path], meta) -> list[Path]:
    """The files to read (metadata.yaml's order when it lists exactly the folder's files).

    Raises:
        IncompleteBagFileError: ``completeness`` rules 1-3 (unlisted or missing files, a
            file without footer), all problems in one line.
    """
    listed = list(meta.relative_file_paths) if meta is not None and meta.relative_file_paths else None
    problems = folder_problems(bag, listed)
    problems += [why for why in (footer_problem(f) for f in files) if why]
    if problems:
        raise _incomplete(bag, problems)
    if listed:
        return [bag / Path(f).name for f in listed]
    return files


def load_summary(f: Path, bag: Path):
    """The file's summary, after checking its magics and the footer's summary CRC.

    Raises:
        IncompleteBagFileError: no footer, a damaged footer or summary.
    """
    try:
        with open(f, "rb") as h:
            size = os.fstat(h.fileno()).st_size
            why = footer_problem(f)
            if why:
                raise _incomplete(bag, [why])
            h.seek(size - 8 - 29)
            tail = h.read(29 + 8)
            _op, _len, s_start, _s_off, s_crc = struct.unpack_from("<BQQQI", tail, 0)
            if s_start and s_crc:
                if not 8 <= s_start <= size - 8 - 29:
                    raise _incomplete(bag, [f"{f.name}: footer points outside the file (damaged)"])
                h.seek(s_start)
                body = h.read(size - 8 - 4 - s_start)
                if crc32(body) != s_crc:
                    raise _incomplete(bag, [f"{f.name}: summary fails its CRC (damaged)"])
            h.seek(0)
            summary = make_reader(h).get_summary()
    except IncompleteBagFileError:
        raise
    except (McapError, EOFError, ValueError, OSError, struct.error, UnicodeDecodeError, KeyError) as exc:
        raise _incomplete(bag, [f"{f.name}: unreadable MCAP ({type(exc).__name__}: {exc})"]) from None
    if summary is None:
        raise _incomplete(bag, [f"{f.name} has no summary/footer (recording crashed or file truncated)"])
    return summary
