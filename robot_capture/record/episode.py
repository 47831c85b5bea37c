"""Episodes: bag directory naming, metadata and the recording state machine.

An *episode* is one demonstration; each is its own rosbag2 bag directory in the
recorder's ``output_dir`` named ``<YYYYmmdd-HHMMSS>_<task-slug>_<seq:04d>``
(DESIGN.md, "record"). The task name is operator input and therefore hostile
until proven otherwise: :func:`slugify` maps it onto ``[a-z0-9_-]{1,48}`` and
:func:`episode_dir` re-checks that the result is a direct child of
``output_dir`` before anything is created.

States (:class:`EpisodeState`)::

    IDLE --start--> RECORDING --stop(success)--> IDLE   (bag closed, label written)
                        |------discard---------> IDLE   (bag deleted)
                        |------split-----------> RECORDING (next <name>_<n>.mcap)
                        |------disk/ENOSPC-----> IDLE   (bag closed, reason written)

No rclpy here.
"""
from __future__ import annotations

import dataclasses
import enum
import os
import re
import time
import unicodedata
from pathlib import Path

SLUG_MAX = 48
_NAME_RE = re.compile(r"^(\d{8}-\d{6})_([a-z0-9_-]+)_(\d{4,})$")


class EpisodeState(enum.Enum):
    IDLE = "idle"
    RECORDING = "recording"


@dataclasses.dataclass
class EpisodeInfo:
    """Operator-supplied episode description (free text, any unicode).

    Stored verbatim (control characters removed) in the MCAP ``metadata``
    record named ``episode`` and in metadata.yaml ``custom_data`` under
    ``episode.<key>`` keys; only the *directory name* uses the slug.
    """

    task: str = ""
    operator: str = ""
    scene: str = ""
    notes: str = ""
    extra: dict = dataclasses.field(default_factory=dict)

    def to_metadata(self) -> dict[str, str]:
        """Flat ``str -> str`` map (MCAP metadata records only hold strings)."""
        out = {"task": self.task, "operator": self.operator, "scene": self.scene, "notes": self.notes}
        out.update({str(k): str(v) for k, v in self.extra.items()})
        return {k: clean_text(v) for k, v in out.items()}


def clean_text(value: str, limit: int = 4096) -> str:
    """Drop control characters (NUL, escapes) and cap the length at ``limit`` chars."""
    value = "".join(ch for ch in str(value) if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return value[:limit]


def slugify(task: str) -> str:
    """Return a directory-safe slug of ``task``: ``[a-z0-9_-]``, 1..48 chars.

    Unicode is folded to ASCII (NFKD, accents dropped), every other character
    run becomes ``-``; dots and slashes never survive, so ``../../etc`` becomes
    ``etc``. An empty result becomes ``episode``.
    """
    text = unicodedata.normalize("NFKD", str(task)[: SLUG_MAX * 8])
    text = text.encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"[^a-z0-9_-]+", "-", text)
    text = re.sub(r"-{2,}", "-", text).strip("-_")
    text = text[:SLUG_MAX].strip("-_")
    return text or "episode"


def episode_name(start_time_s: float, task: str, seq: int) -> str:
    """``<YYYYmmdd-HHMMSS>_<task-slug>_<seq:04d>`` with the date in UTC."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(start_time_s))
    return f"{stamp}_{slugify(task)}_{int(seq):04d}"


def parse_episode_name(name: str):
    """Return ``(stamp, slug, seq)`` for an episode directory name, else ``None``."""
    m = _NAME_RE.match(name)
    return (m.group(1), m.group(2), int(m.group(3))) if m else None


def next_sequence(output_dir: Path) -> int:
    """One more than the highest sequence number of the episodes already in ``output_dir``."""
    best = -1
    try:
        for entry in os.scandir(output_dir):
            parsed = parse_episode_name(entry.name)
            if parsed and entry.is_dir(follow_symlinks=False):
                best = max(best, parsed[2])
    except FileNotFoundError:
        pass
    return best + 1


def episode_dir(output_dir: Path, name: str) -> Path:
    """``output_dir / name``, after checking it is a direct child of ``output_dir``.

    Raises:
        ValueError: if ``name`` is not a valid episode name or would resolve
            outside ``output_dir`` (defence in depth; :func:`slugify` already
            guarantees it).
    """
    if parse_episode_name(name) is None:
        raise ValueError(f"not an episode directory name: {name!r}")
    root = Path(output_dir).resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise ValueError(f"episode directory {path} escapes output_dir {root}")
    return path


@dataclasses.dataclass
class Episode:
    """The episode being recorded: where, what and since when (ns, wall clock)."""

    name: str
    path: Path
    info: EpisodeInfo
    seq: int
    started_ns: int
    splits: int = 0
