"""Episodes on disk: find them, read their labels, relabel, discard, purge.

**The one source of truth for labels is ``metadata.yaml`` ``custom_data``**, keys
``episode.<key>`` (``task``, ``operator``, ``scene``, ``notes``, ``success``, plus what
the recorder writes: ``name``, ``start_time_ns``, ``stop_time_ns``, ``duration_s``,
``stop_reason``, ``splits``, ``robot``, ``flags``). The recorder writes them at stop; a
relabel rewrites them here (atomically, :func:`robot_capture.bag.metadata.write_metadata`)
and stamps ``episode.relabeled_ns``. ``ros2 bag info`` shows the same values. The MCAP
``episode`` metadata records inside the ``.mcap`` files are write-once, *as recorded*,
and are read only when a bag has no metadata.yaml labels (a crashed, unrecovered bag).
QA (``robot-capture qa``), export, ``info``, ``report`` and ``batch`` read labels only
through :func:`load_episode`.

Discarding never deletes: :func:`discard` moves the bag directory to
``<output_dir>/discarded/``; only :func:`purge_discarded` deletes, and only there.

ROS-free. Errors: ``FileNotFoundError`` for a path that does not exist,
``robot_capture.bag.errors.NotABagError`` for a directory that is not a bag,
:class:`EpisodeBusyError` when a bag is still being recorded, ``ValueError`` for bad labels.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path
from typing import Iterable

from robot_capture.bag.errors import NotABagError
from robot_capture.bag.lock import is_recording
from robot_capture.bag.metadata import METADATA_FILENAME, read_metadata, write_metadata
from robot_capture.episodes.verdict import Verdict, read_verdict, with_current_labels

__all__ = ["DISCARDED_DIR", "LABEL_KEYS", "REQUIRED_LABELS", "EpisodeBusyError", "EpisodeRecord", "find_bags",
           "is_bag_dir", "load_episode", "relabel", "discard", "purge_discarded", "parse_success"]

DISCARDED_DIR = "discarded"
#: labels a relabel may change
LABEL_KEYS = ("task", "operator", "scene", "notes", "success")
#: labels an episode needs to be delivered (QA "labels" check)
REQUIRED_LABELS = ("task", "operator", "success")
PREFIX = "episode."


class EpisodeBusyError(RuntimeError):
    """The bag is still being recorded (its ``.recording.lock`` is held)."""


def parse_success(value) -> bool | None:
    """``true/false/1/0/yes/no/success/failure`` -> bool; ``unknown``/""/None -> None.

    Raises:
        ValueError: for any other value.
    """
    if value is None or isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("true", "1", "yes", "success", "ok", "y"):
        return True
    if v in ("false", "0", "no", "failure", "fail", "n"):
        return False
    if v in ("", "unknown", "none", "null"):
        return None
    raise ValueError(f"success label {value!r}: expected true, false or unknown")


def _success_text(value: bool | None) -> str:
    return "unknown" if value is None else ("true" if value else "false")


def is_bag_dir(path: Path) -> bool:
    """True for a directory holding a metadata.yaml or at least one ``.mcap`` file."""
    try:
        return path.is_dir() and ((path / METADATA_FILENAME).is_file() or any(path.glob("*.mcap")))
    except OSError:
        return False


def find_bags(paths: Iterable[str | os.PathLike], include_discarded: bool = False,
              not_bags: list | None = None) -> list[Path]:
    """The bag directories in ``paths``, sorted, each once.

    A path that is a bag directory is taken as is; any other directory is searched
    recursively (``discarded/`` skipped unless ``include_discarded``). A file that is a
    ``.mcap`` counts as its directory. Other files are appended to ``not_bags`` (when
    given) with a reason, and skipped.

    Raises:
        FileNotFoundError: a path does not exist.
    """
    out: dict[Path, None] = {}
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file or directory")
        if p.is_file():
            if p.suffix == ".mcap":
                out[p.parent.resolve()] = None
            elif not_bags is not None:
                not_bags.append((p, "not a bag (a file, not a bag directory)"))
            continue
        if is_bag_dir(p):
            out[p.resolve()] = None
            continue
        for root, dirs, _files in os.walk(p):
            dirs.sort()
            if not include_discarded and DISCARDED_DIR in dirs:
                dirs.remove(DISCARDED_DIR)
            keep = []
            for d in dirs:
                sub = Path(root) / d
                if is_bag_dir(sub):
                    out[sub.resolve()] = None
                elif not d.startswith("."):
                    keep.append(d)
            dirs[:] = keep
        if not_bags is not None:
            for f in sorted(p.iterdir()):
                if f.is_file() and not f.name.startswith(".") and f.suffix != ".mcap":
                    not_bags.append((f, "not a bag (a file, not a bag directory)"))
    return sorted(out)


@dataclasses.dataclass
class EpisodeRecord:
    """What is known about one episode bag, read from disk by :func:`load_episode`.

    Times: ns since the epoch (wall clock of the recording PC); ``duration_s`` in s.
    ``success`` is None when unlabelled. ``verdict`` is the stored QA verdict
    (``qa.json``) or None. ``custom_data`` is the raw metadata.yaml map.
    """

    path: Path
    name: str
    task: str = ""
    operator: str = ""
    scene: str = ""
    notes: str = ""
    success: bool | None = None
    robot: str = ""
    start_ns: int = 0
    stop_ns: int = 0
    duration_s: float = 0.0
    stop_reason: str = ""
    flags: tuple = ()
    recording: bool = False
    has_metadata: bool = True
    custom_data: dict = dataclasses.field(default_factory=dict)
    verdict: Verdict | None = None

    @property
    def labels(self) -> dict[str, str]:
        """The label values as text: task, operator, scene, notes, success."""
        return {"task": self.task, "operator": self.operator, "scene": self.scene, "notes": self.notes,
                "success": _success_text(self.success)}

    def missing_labels(self) -> list[str]:
        """Required labels that are empty or unknown (task, operator, success)."""
        out = [k for k in ("task", "operator") if not getattr(self, k).strip()]
        if self.success is None:
            out.append("success")
        return out

    @property
    def verdict_text(self) -> str:
        """``pass``/``warn``/``fail``, or ``-`` when QA has not run."""
        return self.verdict.verdict if self.verdict is not None else "-"


def load_episode(bag_dir: str | os.PathLike) -> EpisodeRecord:
    """Read one episode's labels and stored verdict (no message data is read).

    Falls back to the MCAP ``episode`` metadata records (last one wins) when the bag has
    no metadata.yaml (crashed and not recovered).

    Raises:
        FileNotFoundError / NotABagError: not a bag directory.
        ValueError: unreadable metadata.yaml or qa.json (the message names the file).
    """
    p = Path(bag_dir)
    if p.is_file() and p.suffix == ".mcap":
        p = p.parent
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or directory")
    if not is_bag_dir(p):
        raise NotABagError(f"{p}: not a bag directory (no metadata.yaml and no .mcap files)")
    custom: dict[str, str] = {}
    has_meta = (p / METADATA_FILENAME).is_file()
    if has_meta:
        custom = dict(read_metadata(p).custom_data or {})
    labels = {k[len(PREFIX):]: v for k, v in custom.items() if k.startswith(PREFIX)}
    if not labels:
        labels = _labels_from_records(p)
    try:
        success = parse_success(labels.get("success"))
    except ValueError:
        success = None
    rec = EpisodeRecord(path=p.resolve(), name=labels.get("name") or p.name, task=labels.get("task", ""),
                        operator=labels.get("operator", ""), scene=labels.get("scene", ""),
                        notes=labels.get("notes", ""), success=success, robot=labels.get("robot", ""),
                        start_ns=_int(labels.get("start_time_ns")), stop_ns=_int(labels.get("stop_time_ns")),
                        duration_s=_float(labels.get("duration_s")), stop_reason=labels.get("stop_reason", ""),
                        flags=tuple(f for f in labels.get("flags", "").split(",") if f),
                        recording=is_recording(p), has_metadata=has_meta, custom_data=custom,
                        verdict=read_verdict(p))
    # the labels check is judged from the current labels, whatever qa.json says
    rec.verdict = with_current_labels(rec.verdict, rec.missing_labels())
    return rec


def _labels_from_records(p: Path) -> dict[str, str]:
    try:
        from robot_capture.bag.reader import BagReader

        with BagReader(p) as r:
            recs = r.metadata_records()  # crashed before stop: only the start record is there
            return dict(recs.get("episode") or recs.get("episode_start") or {})
    except Exception:  # noqa: BLE001 - a crashed bag: no labels rather than no episode
        return {}


def _int(v) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def relabel(bag_dir: str | os.PathLike, **labels) -> EpisodeRecord:
    """Change labels of a closed episode; returns the episode as now stored.

    ``labels``: any of task, operator, scene, notes (text; control characters removed)
    and success (bool, None or text as :func:`parse_success` takes). Rewrites
    metadata.yaml atomically; nothing else is touched.

    Raises:
        ValueError: an unknown label key, or a bad success value (nothing changed).
        EpisodeBusyError: the bag is still being recorded.
        NotABagError / FileNotFoundError: not a bag; ValueError if it has no metadata.yaml
            (run ``robot-capture recover`` first).
    """
    from robot_capture.record.episode import clean_text

    unknown = sorted(set(labels) - set(LABEL_KEYS))
    if unknown:
        raise ValueError(f"unknown label(s) {', '.join(unknown)}; labels are {', '.join(LABEL_KEYS)}")
    p = Path(bag_dir)
    if not is_bag_dir(p):
        raise NotABagError(f"{p}: not a bag directory")
    if is_recording(p):
        raise EpisodeBusyError(f"{p.name} is still being recorded; stop it first")
    if not (p / METADATA_FILENAME).is_file():
        raise ValueError(f"{p}: no metadata.yaml; run `robot-capture recover {p}` first")
    updates: dict[str, str] = {}
    for k, v in labels.items():
        if k == "success":
            updates[PREFIX + k] = _success_text(parse_success(v))
        else:
            updates[PREFIX + k] = clean_text(v)
    meta = read_metadata(p)
    custom = dict(meta.custom_data or {})
    custom.update(updates)
    custom[PREFIX + "relabeled_ns"] = str(time.time_ns())
    meta.custom_data = custom
    write_metadata(p, meta)
    return load_episode(p)


def discard(bag_dir: str | os.PathLike, output_dir: str | os.PathLike | None = None) -> Path:
    """Move a closed episode to ``<output_dir>/discarded/<name>`` (default: its parent). Returns the new path.

    A name already taken there gets a ``.<n>`` suffix; nothing is ever overwritten.

    Raises:
        EpisodeBusyError: the bag is still being recorded. NotABagError: not a bag.
    """
    p = Path(bag_dir).resolve()
    if not is_bag_dir(p):
        raise NotABagError(f"{p}: not a bag directory")
    if is_recording(p):
        raise EpisodeBusyError(f"{p.name} is still being recorded; stop it first")
    root = Path(output_dir).resolve() if output_dir is not None else p.parent
    dest_dir = root / DISCARDED_DIR
    dest_dir.mkdir(parents=False, exist_ok=True)
    dest = dest_dir / p.name
    n = 1
    while dest.exists():
        dest = dest_dir / f"{p.name}.{n}"
        n += 1
    os.replace(p, dest) if p.stat().st_dev == dest_dir.stat().st_dev else shutil.move(str(p), str(dest))
    return dest


def purge_discarded(output_dir: str | os.PathLike, older_than_s: float = 0.0) -> list[Path]:
    """Delete the bags in ``<output_dir>/discarded/`` (only there) older than ``older_than_s``.

    Returns the deleted paths. Raises FileNotFoundError if ``output_dir`` does not exist.
    """
    root = Path(output_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    d = root / DISCARDED_DIR
    if not d.is_dir():
        return []
    now = time.time()
    gone = []
    for sub in sorted(d.iterdir()):
        if sub.is_dir() and not sub.is_symlink() and is_bag_dir(sub) and now - sub.stat().st_mtime >= older_than_s:
            shutil.rmtree(sub)
            gone.append(sub)
    return gone
