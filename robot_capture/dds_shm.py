"""Remove the Fast DDS shared-memory files of dead processes before a DDS node starts.

ROS-free. Fast DDS's shared-memory transport keeps, in ``/dev/shm`` (prefix ``fastdds_`` in
Fast DDS 3 / Kilted, ``fastrtps_`` in Fast DDS 2 / Jazzy):

* a **segment** per participant: ``<prefix><16 [0-9a-z]>`` and its lock file ``..._el``;
* a **port** per listening locator: ``<prefix>port<N>``, its lock files ``..._el`` (one
  exclusive reader) / ``..._sl`` (shared readers) and the named mutex ``sem.<prefix>port<N>_mutex``.

The owner holds an ``flock`` on each lock file for as long as it lives; the kernel drops it
when the process dies. A SIGKILLed process therefore leaves its files behind, unlocked, and a
fresh participant that reuses the port numbers opens the dead one's port (issue 23: a fresh
recorder right after a SIGKILL logged ``RTPS_TRANSPORT_SHM Error ... open_and_lock_file
failed`` and did not answer its services for 60 s in 11 of 36 trials).

The rule is Fast DDS's own ``fastdds shm clean`` (``tools/fastdds/shm/clean.py``): a segment or
port whose lock files no live process holds is stale. Here "held" is read from
``/proc/locks`` (the kernel's table of every held or awaited lock), never by trying the lock
ourselves: a probing ``flock`` would, for its instant, make a live participant that opens
the same port fail with exactly the error above. Other DDS processes run on the same machine
(other stations, tests, tools), so nothing a live process holds is ever touched:

* a set is stale only if it has at least one lock file and none of its lock files is held;
* a lock file younger than ``min_age_s`` (1 s) is given that long to be locked and is then
  read again (Fast DDS creates the file and locks it in the next call; a starved process can
  sit between the two);
* files of other users that cannot be removed are left (and not counted).
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SHM_DIR", "CleanReport", "clean_stale", "held_inodes", "startup_clean"]

#: where Fast DDS (boost.interprocess on Linux) keeps its shared-memory files
SHM_DIR = Path("/dev/shm")
_PREFIXES = ("fastdds_", "fastrtps_")
_LOCK = re.compile(r"^(?P<base>(?:fastdds|fastrtps)_(?:port\d{1,5}|[0-9a-z]{16}))_(?:el|sl)$")
_DEV_INODE = re.compile(r"^([0-9a-f]+):([0-9a-f]+):(\d+)$")


@dataclass
class CleanReport:
    """What :func:`clean_stale` did: ``removed`` file names, ``in_use`` sets kept (held by a
    live process), ``failed`` {file: error} (e.g. another user's file)."""

    removed: list[str] = field(default_factory=list)
    in_use: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        """One line for the log ("" when nothing was removed)."""
        if not self.removed:
            return ""
        extra = f" ({len(self.failed)} could not be removed)" if self.failed else ""
        return (f"cleaned {len(self.removed)} stale Fast DDS shared-memory files of dead processes "
                f"(kept {self.in_use} in use){extra}")


def held_inodes(locks_text: str | None = None) -> set[tuple[int, int, int]]:
    """``(major, minor, inode)`` of every file with a lock held or awaited, from ``/proc/locks``
    (FLOCK, POSIX and OFD locks; waiters, the ``->`` lines, count too)."""
    if locks_text is None:
        try:
            locks_text = Path("/proc/locks").read_text()
        except OSError:
            return set()
    out = set()
    for line in locks_text.splitlines():
        for tok in line.split():
            m = _DEV_INODE.match(tok)
            if m:
                out.add((int(m.group(1), 16), int(m.group(2), 16), int(m.group(3))))
                break
    return out


def _key(st: os.stat_result) -> tuple[int, int, int]:
    return os.major(st.st_dev), os.minor(st.st_dev), st.st_ino


def _sets(names: list[str]) -> dict[str, list[str]]:
    """{segment or port base name: its lock file names}."""
    out: dict[str, list[str]] = {}
    for n in names:
        m = _LOCK.match(n)
        if m:
            out.setdefault(m.group("base"), []).append(n)
    return out


def _any_held(d: Path, locks: list[str], held: set) -> bool:
    for n in locks:
        try:
            if _key(os.stat(d / n)) in held:
                return True
        except FileNotFoundError:
            continue
    return False


def _members(base: str, names: set[str]) -> list[str]:
    """Every file of a set: the segment/port, its lock files, a port's named mutex."""
    cands = [base, f"{base}_el", f"{base}_sl", f"sem.{base}_mutex"]
    return [c for c in cands if c in names]


def clean_stale(shm_dir: str | os.PathLike = SHM_DIR, min_age_s: float = 1.0, locks_text=None,
                sleep=time.sleep) -> CleanReport:
    """Remove the Fast DDS segments and ports of dead processes in ``shm_dir``.

    Args:
        shm_dir: the shared-memory folder (``/dev/shm``; tests pass a temporary one).
        min_age_s: unlocked lock files younger than this (s, by ctime) are read again once they
            are this old before being judged (a live process may not have locked them yet); a
            live process's files never cause a wait.
        locks_text: ``/proc/locks`` content (tests); default: read it (again after a wait).
        sleep: ``time.sleep`` (tests).

    Returns:
        CleanReport. Never raises for a missing folder or a file that vanished meanwhile.
    """
    d = Path(shm_dir)
    rep = CleanReport()
    try:
        names = sorted(n for n in os.listdir(d) if n.startswith(_PREFIXES) or n.startswith("sem."))
    except OSError:
        return rep
    sets = _sets(names)
    if not sets:
        return rep
    held = held_inodes(locks_text)
    stale = {b: locks for b, locks in sets.items() if not _any_held(d, locks, held)}
    rep.in_use = len(sets) - len(stale)
    now = time.time()
    young = 0.0
    for locks in stale.values():  # only unlocked files wait: a live process's new files cost nothing
        for n in locks:
            try:
                young = max(young, min_age_s - (now - os.stat(d / n).st_ctime))
            except OSError:
                pass
    if young > 0:
        sleep(min(young, min_age_s))
        held = held_inodes(locks_text)
        again = {b: locks for b, locks in stale.items() if not _any_held(d, locks, held)}
        rep.in_use += len(stale) - len(again)
        stale = again
    present = set(names)
    for base in stale:
        for n in _members(base, present):
            try:
                os.unlink(d / n)
                rep.removed.append(n)
            except FileNotFoundError:
                pass
            except OSError as exc:
                rep.failed[n] = exc.strerror or str(exc)
    return rep


def startup_clean(log=None, shm_dir: str | os.PathLike | None = None) -> CleanReport:
    """:func:`clean_stale` at a node's or the floor's start, saying so in one line through
    ``log`` (a callable taking a str; default: stderr) when files were removed. Never raises:
    a failed clean must not keep a recorder from starting."""
    try:
        rep = clean_stale(SHM_DIR if shm_dir is None else shm_dir)
    except Exception as exc:  # noqa: BLE001 - best effort
        rep = CleanReport(failed={"*": str(exc)})
    line = rep.line()
    if line:
        if log is None:
            import sys

            print(line, file=sys.stderr, flush=True)
        else:
            log(line)
    return rep
