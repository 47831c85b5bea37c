"""Output-path checks the verbs run before any work: one line in words, never ``[Errno 2] ... '/x'``.

A verb that writes into a folder (``export --out``, ``batch --out``, ``record -o``, ``up
--output-dir``, ``demo --output-dir``, ``retarget --out``) checks it first, so a path that
names a file or a folder that cannot be made is refused at once (exit 2), not after minutes
of work with one ``NotADirectoryError`` per bag.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["OutputPathError", "check_output_dir", "os_error_text"]


class OutputPathError(ValueError):
    """An output path that cannot be used; the message is one line naming the option and the path."""


def os_error_text(exc: OSError) -> str:
    """``exc`` in words: its strerror (``No such file or directory``) without errno or repr."""
    return (exc.strerror or str(exc) or type(exc).__name__).rstrip(".")


def check_output_dir(path: str | os.PathLike, flag: str, create: bool = False) -> Path:
    """Check that ``path`` is a directory this process can write into, or can be made one.

    Args:
        path: the folder (it may not exist yet; missing parents are allowed).
        flag: the option that gave it (``--out``), named in the message.
        create: make the folder (and its parents). Without it, the missing folders are made
            to prove they can be and removed again, so a check leaves nothing behind.
    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    Raises:
        OutputPathError: ``path`` or a parent is a file, a folder cannot be made, or the
            folder is not writable (the message says which, in words).
    """
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{flag}: {p} is a file, not a directory")
    missing = []
    anc = p
    while not anc.exists():
        missing.append(anc)
        if anc.parent == anc:
            break
        anc = anc.parent
    if anc.exists() and not anc.is_dir():
        raise OutputPathError(f"{flag}: cannot create output directory {p}: {anc} is a file, not a directory")
    made = []
    try:
        for d in reversed(missing):
            d.mkdir()
            made.append(d)
    except OSError as exc:
        for d in reversed(made):
            d.rmdir()
        raise OutputPathError(f"{flag}: cannot create output directory {p}: {os_error_text(exc)}") from None
    if not create:
        for d in reversed(made):
            d.rmdir()
    if p.is_dir() and not os.access(p, os.W_OK | os.X_OK):
        raise OutputPathError(f"{flag}: output directory {p} is not writable")
    return p
