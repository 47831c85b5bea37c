"""The batch ledger: one SQLite file in the output folder, one row per (stage, bag).

``<out>/batch.sqlite`` holds

* ``jobs``: the current state of each job, primary key ``(stage, bag)`` (``bag`` is the
  resolved bag path, the same on every machine that mounts the archive): ``sha256`` of the
  bag's content (:func:`robot_capture.batch.fingerprint.bag_sha256`), ``fingerprint`` (file
  names, sizes, mtimes: the cheap check that lets a re-run skip without re-reading the bag),
  ``pipeline`` (package version, stage version and the stage's options: a change redoes the
  job), ``status`` (``pending``/``running``/``done``/``failed``), ``duration_s``, ``error``,
  ``attempts`` (submissions over all runs), ``result`` (JSON the job returned), ``host``,
  ``updated_ns``;
* ``events``: an append-only log, one row per start, finish, failure or worker death, with
  run id, attempt, host and pid: "no job was done twice" is checked here (one ``done`` per
  job).
* ``meta``: key/value (e.g. the last merge of an export run).

Only the runner writes the ledger (workers return results; on Ray they run on other
machines). WAL journal mode and one transaction per update: a runner killed at any point
leaves every committed row intact; rows it left ``running`` are redone by the next run.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

LEDGER_FILENAME = "batch.sqlite"
STATUSES = ("pending", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    stage TEXT NOT NULL,
    bag TEXT NOT NULL,
    sha256 TEXT NOT NULL DEFAULT '',
    fingerprint TEXT NOT NULL DEFAULT '',
    pipeline TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'pending',
    duration_s REAL NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT NOT NULL DEFAULT '{}',
    host TEXT NOT NULL DEFAULT '',
    updated_ns INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (stage, bag)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    bag TEXT NOT NULL,
    event TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    host TEXT NOT NULL DEFAULT '',
    pid INTEGER NOT NULL DEFAULT 0,
    detail TEXT NOT NULL DEFAULT '',
    t_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass
class JobRow:
    """One row of ``jobs`` (see the module docstring for the fields)."""

    stage: str
    bag: str
    sha256: str = ""
    fingerprint: str = ""
    pipeline: str = ""
    status: str = "pending"
    duration_s: float = 0.0
    error: str = ""
    attempts: int = 0
    result: dict | None = None
    host: str = ""
    updated_ns: int = 0


class Ledger:
    """The SQLite ledger of one output folder. Not thread-safe: the runner's one thread uses it.

    Raises:
        sqlite3.DatabaseError: the file exists and is not a SQLite database (message names it).
    """

    def __init__(self, out_dir: str | os.PathLike, run_id: str | None = None):
        self.path = Path(out_dir) / LEDGER_FILENAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id or f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"
        self.host = socket.gethostname()
        try:
            # isolation_level=None: autocommit; each write below is its own transaction
            self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process kill
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise sqlite3.DatabaseError(f"{self.path}: not a batch ledger ({exc})") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------
    def get(self, stage: str, bag: str) -> JobRow | None:
        cur = self._db.execute("SELECT stage, bag, sha256, fingerprint, pipeline, status, duration_s, error, "
                               "attempts, result, host, updated_ns FROM jobs WHERE stage=? AND bag=?",
                               (stage, str(bag)))
        r = cur.fetchone()
        return _row(r) if r else None

    def rows(self, stage: str | None = None) -> list[JobRow]:
        q = ("SELECT stage, bag, sha256, fingerprint, pipeline, status, duration_s, error, attempts, result, host, "
             "updated_ns FROM jobs")
        cur = self._db.execute(q + (" WHERE stage=? ORDER BY bag" if stage else " ORDER BY stage, bag"),
                               (stage,) if stage else ())
        return [_row(r) for r in cur.fetchall()]

    def events(self, stage: str | None = None, event: str | None = None) -> list[dict]:
        q, args = "SELECT run_id, stage, bag, event, attempt, host, pid, detail, t_ns FROM events", []
        conds = []
        if stage:
            conds.append("stage=?")
            args.append(stage)
        if event:
            conds.append("event=?")
            args.append(event)
        if conds:
            q += " WHERE " + " AND ".join(conds)
        keys = ("run_id", "stage", "bag", "event", "attempt", "host", "pid", "detail", "t_ns")
        return [dict(zip(keys, r)) for r in self._db.execute(q + " ORDER BY id", args).fetchall()]

    def get_meta(self, key: str, default: str = "") -> str:
        r = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return r[0] if r else default

    # -- writing (one transaction each) -----------------------------------------------
    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                         (key, value))

    def start(self, stage: str, bag: str, pipeline: str, fingerprint: str, pid: int = 0,
              host: str = "") -> int:
        """Mark a job running (a new attempt); return the attempt number (1-based, over all runs)."""
        now = time.time_ns()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO jobs(stage, bag, pipeline, fingerprint, status, attempts, updated_ns) "
                "VALUES(?, ?, ?, ?, 'running', 1, ?) ON CONFLICT(stage, bag) DO UPDATE SET "
                "status='running', pipeline=excluded.pipeline, fingerprint=excluded.fingerprint, "
                "attempts=jobs.attempts+1, error='', updated_ns=excluded.updated_ns",
                (stage, str(bag), pipeline, fingerprint, now))
            attempt = self._db.execute("SELECT attempts FROM jobs WHERE stage=? AND bag=?",
                                       (stage, str(bag))).fetchone()[0]
            self._event(stage, bag, "start", attempt, pid, host or self.host, "", now)
        return attempt

    def finish(self, stage: str, bag: str, status: str, sha256: str = "", duration_s: float = 0.0,
               error: str = "", result: dict | None = None, host: str = "", pid: int = 0,
               event: str | None = None, fingerprint: str | None = None, pipeline: str | None = None) -> None:
        """Record a job's outcome (``done`` or ``failed``), with an event of the same name unless given."""
        if status not in ("done", "failed", "pending"):
            raise ValueError(f"finish status {status!r}: expected done, failed or pending")
        now = time.time_ns()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO jobs(stage, bag, status, updated_ns) VALUES(?, ?, ?, ?) "
                "ON CONFLICT(stage, bag) DO NOTHING", (stage, str(bag), status, now))
            sets = ["status=?", "duration_s=?", "error=?", "result=?", "host=?", "updated_ns=?"]
            args: list = [status, float(duration_s), error, json.dumps(result or {}, sort_keys=True),
                          host or self.host, now]
            if sha256:
                sets.append("sha256=?")
                args.append(sha256)
            if fingerprint is not None:
                sets.append("fingerprint=?")
                args.append(fingerprint)
            if pipeline is not None:
                sets.append("pipeline=?")
                args.append(pipeline)
            self._db.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE stage=? AND bag=?", (*args, stage, str(bag)))
            attempt = self._db.execute("SELECT attempts FROM jobs WHERE stage=? AND bag=?",
                                       (stage, str(bag))).fetchone()[0]
            self._event(stage, bag, event or status, attempt, pid, host or self.host, error, now)

    def note(self, stage: str, bag: str, event: str, detail: str = "", pid: int = 0, host: str = "") -> None:
        """Append an event without changing the job (e.g. ``worker_died`` before a retry)."""
        row = self.get(stage, bag)
        self._event(stage, bag, event, row.attempts if row else 0, pid, host or self.host, detail, time.time_ns())

    def _event(self, stage, bag, event, attempt, pid, host, detail, t_ns) -> None:
        self._db.execute("INSERT INTO events(run_id, stage, bag, event, attempt, host, pid, detail, t_ns) "
                         "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (self.run_id, stage, str(bag), event, attempt, host, pid, detail, t_ns))


def _row(r) -> JobRow:
    try:
        result = json.loads(r[9]) if r[9] else {}
    except ValueError:
        result = {}
    return JobRow(stage=r[0], bag=r[1], sha256=r[2], fingerprint=r[3], pipeline=r[4], status=r[5],
                  duration_s=r[6], error=r[7], attempts=r[8], result=result, host=r[10], updated_ns=r[11])
