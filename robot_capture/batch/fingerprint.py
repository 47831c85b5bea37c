"""What identifies a bag's content for the batch ledger.

**The content of a bag is every file of its directory except hidden files**
(``.recording.lock``, the temp files of atomic writes) **and, for the qa stage, the verdict
sidecar** ``qa.json``: QA writes it, so it cannot be part of what QA is keyed on, while the
export stage reads it (its selection rule delivers by verdict), so there it is content.
``metadata.yaml`` **is** content: it holds the labels (task, operator, success), which the
QA ``labels`` check and the export's task column read, so a relabel redoes QA and export for
that bag (and only that bag).

* :func:`bag_fingerprint`: names, sizes and mtimes (ns) of the content files, no data
  read. A re-run skips a done job whose fingerprint and pipeline are unchanged.
* :func:`bag_sha256`: SHA-256 over the content files in name order (name, size, bytes
  each), read in 1 MiB blocks. Computed by the worker that runs the job (it reads the bag
  anyway, and on Ray it is the machine next to the data), so a re-run whose fingerprint
  changed but whose bytes did not (a copy, a ``touch``) is recognised as unchanged.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from robot_capture.episodes.verdict import VERDICT_FILENAME

BLOCK = 1 << 20
SIDECARS = frozenset({VERDICT_FILENAME})


def content_files(bag_dir: str | os.PathLike, with_verdict: bool = True) -> list[Path]:
    """The bag's content files (see the module docstring), sorted by relative path;
    ``with_verdict=False`` leaves out ``qa.json``.

    Raises:
        FileNotFoundError / NotADirectoryError: ``bag_dir`` is not a directory.
    """
    root = Path(bag_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory")
    out = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in files:
            if f.startswith(".") or (not with_verdict and f in SIDECARS):
                continue
            out.append(Path(dirpath) / f)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def bag_fingerprint(bag_dir: str | os.PathLike, with_verdict: bool = True) -> str:
    """``name:size:mtime_ns`` of each content file joined by ``|``: cheap, no data read."""
    root = Path(bag_dir)
    parts = []
    for p in content_files(root, with_verdict):
        st = p.stat()
        parts.append(f"{p.relative_to(root).as_posix()}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def bag_sha256(bag_dir: str | os.PathLike, with_verdict: bool = True) -> str:
    """Hex SHA-256 of the bag's content (module docstring); reads every content byte once."""
    root = Path(bag_dir)
    h = hashlib.sha256()
    for p in content_files(root, with_verdict):
        rel = p.relative_to(root).as_posix().encode()
        h.update(len(rel).to_bytes(4, "little") + rel + p.stat().st_size.to_bytes(8, "little"))
        with open(p, "rb") as f:
            while True:
                block = f.read(BLOCK)
                if not block:
                    break
                h.update(block)
    return h.hexdigest()
