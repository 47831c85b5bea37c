"""What identifies a bag's content for the batch ledger, and the stage inputs beside it.

**The content of a bag is every file of its directory except hidden files**
(``.recording.lock``, the temp files of atomic writes) **and the verdict sidecar**
``qa.json``. The sidecar is derived data: QA writes it (``batch qa``, ``robot-capture qa``,
and the export's own QA on a bag without a verdict), so it cannot be part of what any stage
is keyed on, or a stage's own write (or a QA re-run writing the same verdict again) would
make the next run redo every bag. ``metadata.yaml`` **is** content: it holds the labels
(task, operator, success), which the QA ``labels`` check and the export's task column read,
so a relabel redoes QA and export for that bag (and only that bag).

What the export reads of the verdict (the word and the reasons: its selection rule and its
``qa/verdict`` / ``qa/reasons`` columns) is a separate input, :func:`stage_input`: the job
records the value it found before and the one it used after its own QA, and a re-run redoes
the bag only when the stored verdict is neither (e.g. ``batch qa`` with another config
turned it into ``fail``).

* :func:`bag_fingerprint`: names, sizes and mtimes (ns) of the content files, no data
  read. A re-run skips a done job whose fingerprint, pipeline and stage input are unchanged.
* :func:`bag_sha256`: SHA-256 over the content files in name order (name, size, bytes
  each), read in 1 MiB blocks. Computed by the worker that runs the job (it reads the bag
  anyway, and on Ray it is the machine next to the data), so a re-run whose fingerprint
  changed but whose bytes did not (a copy, a ``touch``) is recognised as unchanged.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from robot_capture.episodes.verdict import VERDICT_FILENAME

BLOCK = 1 << 20
SIDECARS = frozenset({VERDICT_FILENAME})


def content_files(bag_dir: str | os.PathLike) -> list[Path]:
    """The bag's content files (see the module docstring), sorted by relative path.

    Raises:
        NotADirectoryError: ``bag_dir`` is not a directory.
    """
    root = Path(bag_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory")
    out = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in files:
            if f.startswith(".") or f in SIDECARS:
                continue
            out.append(Path(dirpath) / f)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def bag_fingerprint(bag_dir: str | os.PathLike) -> str:
    """``name:size:mtime_ns`` of each content file joined by ``|``: cheap, no data read."""
    root = Path(bag_dir)
    parts = []
    for p in content_files(root):
        st = p.stat()
        parts.append(f"{p.relative_to(root).as_posix()}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def bag_sha256(bag_dir: str | os.PathLike) -> str:
    """Hex SHA-256 of the bag's content (module docstring); reads every content byte once."""
    root = Path(bag_dir)
    h = hashlib.sha256()
    for p in content_files(root):
        rel = p.relative_to(root).as_posix().encode()
        h.update(len(rel).to_bytes(4, "little") + rel + p.stat().st_size.to_bytes(8, "little"))
        with open(p, "rb") as f:
            while True:
                block = f.read(BLOCK)
                if not block:
                    break
                h.update(block)
    return h.hexdigest()


def verdict_key(bag_dir: str | os.PathLike) -> str:
    """What the export reads of the stored verdict: 16 hex of SHA-256 over (verdict, reasons),
    ``""`` when the bag has no ``qa.json``, ``"invalid"`` when it cannot be read as a verdict
    (the job then fails with the reader's message). Metrics, figures and file bytes are left
    out: a QA run that writes the same verdict again does not change the key."""
    from robot_capture.episodes.verdict import read_verdict

    try:
        v = read_verdict(bag_dir)
    except (OSError, ValueError):
        return "invalid"
    if v is None:
        return ""
    text = json.dumps([v.verdict, v.reasons], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stage_input(stage: str, bag_dir: str | os.PathLike) -> str | None:
    """The input of ``stage`` that is not content (module docstring): the export's
    :func:`verdict_key`; None for a stage that has none (qa, retarget)."""
    return verdict_key(bag_dir) if stage == "export" else None
