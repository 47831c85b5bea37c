"""The episode manager: the operator's state machine over the recorder core.

ROS-free; the recorder node (``robot_capture.nodes.recorder_node``) owns one and maps
its services onto :meth:`EpisodeManager.run`. States (:attr:`EpisodeManager.state`)::

    IDLE ──(every required stream fresh)──> READY ──start──> RECORDING ──stop──> REVIEW
      ^                                       |                 |  discard        |  next start
      └──────(a required stream not fresh)────┘                 └──> (bag moved)  └──> RECORDING

* **Start** is refused while a required stream is not fresh (:mod:`.streams`): the reply
  names each stream and how long it has been silent (or its rate). ``force`` records
  anyway and flags the episode (``episode.flags: forced``, ``episode.not_ready``).
* **Auto-stop**: while recording, a required stream that was fresh during the episode and
  is then silent for ``stream_lost_s`` (default 2 s) stops the episode with reason
  ``stream_lost`` (``episode.lost_streams`` names them). The bag is closed normally.
* **REVIEW**: the last stopped episode can be relabelled (:func:`robot_capture.episodes.relabel`,
  the one writer of labels after stop) or discarded (:func:`robot_capture.episodes.discard`:
  moved to ``<output_dir>/discarded/``, never deleted) until the next start.
* ``success``/``failure`` stop the open episode with that label; with none open they
  relabel the last one (space to stop, then ``s``: two keys, one label).
* **One owner**: :attr:`owner_problem` (set by the node: a duplicate node name, or another
  writer holding the output folder) refuses every start, forced or not.

Session counters: kept and discarded episodes of this session, successes, failures,
success rate = successes / labelled kept episodes, episodes per hour = kept episodes /
hours since the first start, given only from ``EPH_MIN_EPISODES`` kept episodes and
``EPH_MIN_SESSION_S`` of session on (None before: one episode in 4 s is not 900 an hour). Errors: :class:`~robot_capture.console.commands.CommandError`
(a ValueError whose text is the reply).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Mapping

from robot_capture.console.commands import CommandError, check_command
from robot_capture.console.streams import StreamTracker
from robot_capture.record.episode import EpisodeInfo

__all__ = ["EpisodeEntry", "EpisodeManager", "ManagerConfig", "next_task", "IDLE", "READY", "RECORDING", "REVIEW"]

IDLE, READY, RECORDING, REVIEW = "idle", "ready", "recording", "review"
#: episodes per hour is a rate over the session: not extrapolated from fewer episodes or a shorter session
EPH_MIN_EPISODES, EPH_MIN_SESSION_S = 2, 600.0


@dataclasses.dataclass
class ManagerConfig:
    """Thresholds (s, Hz fraction); see :mod:`robot_capture.console.streams` for their source."""

    stream_lost_s: float = 2.0
    silent_after_s: float = 1.0
    min_rate_fraction: float = 0.5
    rate_window_s: float = 2.0
    optional: tuple = ()


@dataclasses.dataclass
class EpisodeEntry:
    """One episode of this session."""

    name: str
    path: Path
    task: str = ""
    started_ns: int = 0
    stopped_ns: int = 0
    success: bool | None = None
    stop_reason: str = ""
    forced: bool = False
    discarded: bool = False
    verdict: str = ""             # one line, e.g. "warn: camera head: 12 frames missing" ("" until the QA is done)
    verdict_reasons: tuple = ()
    verdict_source: str = ""      # "qa": the full QA; anything else (e.g. "recorder") is provisional
    qa: str = ""                  # QA at stop: "" (none), "running", "done", "error: <why>" (robot_capture.qa.recorder)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path)
        d["verdict_reasons"] = list(self.verdict_reasons)
        return d


def next_task(tasks, current: str) -> str:
    """The task after ``current`` in ``tasks`` (wrapping; the first one if ``current`` is not listed).

    Raises:
        CommandError: ``tasks`` is empty.
    """
    tasks = [str(t) for t in tasks or [] if str(t).strip()]
    if not tasks:
        raise CommandError("no task list: set the recorder parameter `tasks` (floor.yaml episode.tasks)")
    try:
        return tasks[(tasks.index(current) + 1) % len(tasks)]
    except ValueError:
        return tasks[0]


class EpisodeManager:
    """Drive a :class:`robot_capture.record.recorder.Recorder` as the operator sees it.

    Args:
        recorder: the recorder core (uses ``stats``, ``episode``, ``output_dir``,
            ``start_episode``, ``stop_episode``, ``last_episode_path``).
        expected: the station contract's streams (``floor.contract.streams_from_params`` of the
            recorder's ``expected_streams``), or topic -> expected rate (Hz) or None.
        config: thresholds. robot: stored as ``episode.robot``.
        clock: ``() -> ns`` (tests inject a fake).
        logger: ``info``/``warning``/``error`` (an rclpy logger works).
    """

    def __init__(self, recorder, expected: Mapping[str, float | None] | list | None = None,
                 config: ManagerConfig | None = None, robot: str = "", clock: Callable[[], int] = time.time_ns,
                 logger=None):
        self.rec = recorder
        self.config = config or ManagerConfig()
        self.robot = robot
        self.clock = clock
        self.log = logger
        c = self.config
        self.tracker = StreamTracker(expected or {}, silent_after_s=c.silent_after_s,
                                     min_rate_fraction=c.min_rate_fraction, rate_window_s=c.rate_window_s,
                                     optional=c.optional, now_ns=clock())
        if expected and hasattr(recorder, "expected_hz"):  # stored in each bag and judged by the verdict at stop
            recorder.expected_hz = {t: s.expected_hz for t, s in self.tracker.states.items() if s.required}
        if expected and hasattr(recorder, "optional_hz"):  # declared rates of the optional streams: judged if there
            recorder.optional_hz = {t: s.expected_hz for t, s in self.tracker.states.items()
                                    if not s.required and s.expected_hz}
        if expected and hasattr(recorder, "stream_names"):  # custom_data stream/<topic>: name | role | source
            recorder.stream_names = {t: f"{s.name or t} | {s.role} | {s.source}"
                                     for t, s in self.tracker.states.items() if s.role}
        self.owner_problem = ""
        self.history: list[EpisodeEntry] = []
        self.current: EpisodeEntry | None = None
        self.last_message = ""
        self._watch: set[str] = set()
        self._first_start_ns = 0
        #: the node runs the QA of every closed episode (robot_capture.qa.recorder): entries start as "running"
        #: and :meth:`verdict_ready` fills in the verdict
        self.qa_at_stop = False

    # ------------------------------------------------------------------ state
    @property
    def recording(self) -> bool:
        return self.current is not None

    @property
    def last(self) -> EpisodeEntry | None:
        """The last stopped episode while it can be reviewed (not recording, not discarded)."""
        if self.current is not None or not self.history or self.history[-1].discarded:
            return None
        return self.history[-1]

    @property
    def state(self) -> str:
        if self.current is not None:
            return RECORDING
        if self.last is not None:
            return REVIEW
        return READY if self.ready else IDLE

    @property
    def ready(self) -> bool:
        return not self.owner_problem and self.tracker.ready()

    def not_ready_reasons(self) -> list[str]:
        out = [self.owner_problem] if self.owner_problem else []
        return out + self.tracker.reasons()

    def _say(self, level: str, msg: str) -> None:
        self.last_message = msg
        if self.log is None:
            return
        # one call site per severity: rclpy loggers refuse a severity change at the same call site
        if level == "error":
            self.log.error(msg)
        elif level == "warning":
            self.log.warning(msg)
        else:
            self.log.info(msg)

    # ------------------------------------------------------------------ periodic
    def tick(self, now_ns: int | None = None) -> str | None:
        """Sample the streams; auto-stop on a lost stream. Returns the auto-stop reply, if any."""
        now_ns = now_ns if now_ns is not None else self.clock()
        counters = {t: (st.received, st.last_recv_ns) for t, st in list(self.rec.stats.items())}
        states = self.tracker.update(counters, now_ns)
        if self.current is None:
            return None
        if self.rec.episode is None or self.rec.episode.path != self.current.path:
            self._finish(self.current, None, getattr(self.rec, "last_error", "") or "stopped by the recorder")
            self._say("warning", f"episode {self.history[-1].name} was stopped by the recorder: "
                      f"{self.history[-1].stop_reason}")
            return self.last_message
        lost = [] if self.tracker.stalled else [
            s for t, s in sorted(states.items())
            if s.required and t in self._watch and s.status == "silent" and s.age_s > self.config.stream_lost_s]
        self._watch.update(t for t, s in states.items() if s.fresh)
        if not lost:
            return None
        self.rec.episode.info.extra["lost_streams"] = ",".join(s.topic for s in lost)
        reply = self.stop(None, reason="stream_lost")
        from robot_capture.floor.contract import root_causes

        self._say("error", f"auto-stop (stream_lost): {'; '.join(s.reason() for s in root_causes(lost))} -> {reply}")
        return self.last_message

    # ------------------------------------------------------------------ commands
    def run(self, command: str, info: EpisodeInfo | None = None, **labels) -> str:
        """Run one command (:data:`robot_capture.console.commands.COMMANDS`); returns the reply.

        ``info``: the labels of a new episode (start, start_forced, toggle). ``labels``: for
        ``relabel`` (task, operator, scene, notes, success). Raises CommandError.
        """
        cmd = check_command(command)
        if cmd in ("start", "start_forced"):
            return self.start(info, force=cmd == "start_forced")
        if cmd == "toggle":
            return self.stop(None) if self.recording else self.start(info)
        if cmd == "stop":
            return self.stop(labels.get("success"))
        if cmd in ("success", "failure"):
            value = cmd == "success"
            if self.recording:
                return self.stop(value)
            if self.last is not None:
                return self.relabel(success=value)
            raise CommandError(f"{cmd}: no episode is recording and there is no last episode to label")
        if cmd == "discard":
            return self.discard()
        if cmd == "discard_last":
            return self.discard_last()
        if cmd == "relabel":
            return self.relabel(**labels)
        if cmd in ("relabel_success", "relabel_failure"):
            return self.relabel(success=cmd == "relabel_success")
        if cmd == "status":
            import json

            return json.dumps(self.status())
        raise CommandError(f"{cmd}: handled by the node (needs its parameters)")

    def start(self, info: EpisodeInfo | None = None, force: bool = False) -> str:
        """Open an episode; returns the bag path. Raises CommandError (not ready, already recording)."""
        if self.owner_problem:
            raise CommandError(f"not starting: {self.owner_problem}")
        if self.current is not None:
            raise CommandError(f"episode {self.current.name} is already recording")
        # judged on the last periodic tick (4 Hz in the node), not now: a service call can be
        # served before the messages that queued while this process was not scheduled
        reasons = self.tracker.reasons()
        if reasons and not force:
            raise CommandError("not starting: " + "; ".join(reasons)
                               + " (start_forced / `episode start --force` records anyway and flags the episode)")
        info = dataclasses.replace(info or EpisodeInfo(), extra=dict((info.extra if info else {}) or {}))
        if self.robot:
            info.extra.setdefault("robot", self.robot)
        if force:
            info.extra["flags"] = "forced"
            if reasons:
                info.extra["not_ready"] = "; ".join(reasons)
        try:
            path = self.rec.start_episode(info)
        except Exception as exc:  # noqa: BLE001 - disk low, state: the reply says why
            raise CommandError(f"not starting: {exc}") from None
        now = self.clock()
        self._first_start_ns = self._first_start_ns or now
        self.current = EpisodeEntry(name=Path(path).name, path=Path(path), task=info.task, started_ns=now,
                                    forced=force)
        self._watch = {t for t, s in self.tracker.states.items() if s.fresh}
        self._say("info", f"episode {self.current.name} started{' (forced: ' + '; '.join(reasons) + ')' if force and reasons else ''}")
        return str(path)

    def stop(self, success: bool | None = None, reason: str = "stopped") -> str:
        """Close the open episode with ``success`` (None = unlabelled). Returns the bag path, plus a
        second line ``QA running ...`` when its QA runs now (:meth:`verdict_ready`). Raises CommandError."""
        if self.current is None:
            raise CommandError("no episode is recording")
        entry = self.current
        if self.rec.episode is None:  # the recorder stopped it (disk, write error): say so
            self.tick()
            raise CommandError(f"episode {entry.name} was already stopped by the recorder: {entry.stop_reason}")
        try:
            path = self.rec.stop_episode(success, reason=reason)
        except Exception as exc:  # noqa: BLE001
            raise CommandError(f"stop failed: {exc}") from None
        self._finish(entry, success, reason, path)
        return str(entry.path) + ("\nQA running (the verdict follows in a few seconds: `episode status`, "
                                  "<bag>/qa.json)" if entry.qa == "running" else "")

    def _finish(self, entry: EpisodeEntry, success, reason: str, path=None) -> None:
        entry.path = Path(path or getattr(self.rec, "last_episode_path", None) or entry.path)
        entry.success, entry.stop_reason, entry.stopped_ns = success, reason, self.clock()
        entry.qa = "running" if self.qa_at_stop else ""
        self.current = None
        self.history.append(entry)

    def verdict_ready(self, name: str, verdict=None, error: str = "") -> EpisodeEntry | None:
        """The QA of episode ``name`` finished: ``verdict`` (robot_capture.episodes.Verdict, as stored in
        its qa.json) or ``error`` (one line). Returns the session entry, None if not one of this session's."""
        entry = next((e for e in reversed(self.history) if e.name == name), None)
        if entry is None:
            return None
        if verdict is not None:
            entry.verdict, entry.verdict_reasons, entry.qa = verdict.summary(), tuple(verdict.reasons), "done"
            entry.verdict_source = str(getattr(verdict, "source", ""))
        else:
            entry.verdict, entry.verdict_reasons, entry.qa, entry.verdict_source = "", (), f"error: {error}", ""
        return entry

    def discard(self) -> str:
        """Stop the open episode and move its bag to ``discarded/``. Raises CommandError."""
        if self.current is None:
            raise CommandError("discard: no episode is recording (discard_last discards the last one)")
        self.stop(None, reason="discarded")
        return self._move(self.history[-1])

    def discard_last(self) -> str:
        """Move the last stopped episode to ``discarded/`` (REVIEW only). Raises CommandError."""
        if self.current is not None:
            raise CommandError(f"discard_last: episode {self.current.name} is recording (discard discards it)")
        if self.last is None:
            raise CommandError("discard_last: there is no last episode to discard")
        return self._move(self.last)

    def _move(self, entry: EpisodeEntry) -> str:
        from robot_capture.episodes import discard

        try:
            new = discard(entry.path, self.rec.output_dir)
        except Exception as exc:  # noqa: BLE001
            raise CommandError(f"discard {entry.name} failed: {exc}") from None
        entry.discarded, entry.path = True, new
        self._say("info", f"episode {entry.name} discarded -> {new}")
        return str(new)

    def relabel(self, **labels) -> str:
        """Relabel the last stopped episode (task, operator, scene, notes, success); empty values are
        left unchanged. Returns the bag path. Raises CommandError (no last episode, bad label)."""
        from robot_capture.episodes import relabel

        labels = {k: v for k, v in labels.items() if v is not None and v != ""}
        if self.current is not None:
            raise CommandError(f"relabel: episode {self.current.name} is recording; stop it first")
        if self.last is None:
            raise CommandError("relabel: there is no last episode to relabel")
        if not labels:
            raise CommandError("relabel: nothing to change (give success, task, operator, scene or notes)")
        entry = self.last
        try:
            rec = relabel(entry.path, **labels)
        except Exception as exc:  # noqa: BLE001 - bad success value, unknown key: nothing changed
            raise CommandError(f"relabel: {exc}") from None
        entry.success, entry.task = rec.success, rec.task
        if rec.verdict is not None and entry.qa == "done":  # the labels check, judged from the new labels
            entry.verdict, entry.verdict_reasons = rec.verdict.summary(), tuple(rec.verdict.reasons)
        self._say("info", f"episode {entry.name} relabelled: {', '.join(f'{k}={v}' for k, v in labels.items())}")
        return str(entry.path)

    # ------------------------------------------------------------------ status
    def counters(self, now_ns: int | None = None) -> dict:
        """Session counters (see the module docstring)."""
        now_ns = now_ns if now_ns is not None else self.clock()
        kept = [e for e in self.history if not e.discarded]
        ok = sum(1 for e in kept if e.success is True)
        bad = sum(1 for e in kept if e.success is False)
        session_s = (now_ns - self._first_start_ns) / 1e9 if self._first_start_ns else 0.0
        eph = len(kept) / (session_s / 3600.0) if len(kept) >= EPH_MIN_EPISODES and session_s >= EPH_MIN_SESSION_S \
            else None
        return {"kept": len(kept), "discarded": len(self.history) - len(kept), "success": ok, "failure": bad,
                "unlabelled": len(kept) - ok - bad, "success_rate": ok / (ok + bad) if ok + bad else None,
                "episodes_per_hour": eph, "session_s": round(session_s, 1),
                "forced": sum(1 for e in kept if e.forced)}

    def status(self) -> dict:
        """Everything a console shows, JSON-able."""
        now = self.clock()
        cur = self.current
        tally = "red" if cur else ("green" if self.ready else "amber")
        return {
            "state": self.state, "ready": self.ready, "tally": tally, "reasons": self.not_ready_reasons(),
            "episode": cur.name if cur else "", "elapsed_s": (now - cur.started_ns) / 1e9 if cur else 0.0,
            "forced": bool(cur and cur.forced),
            "last": self.history[-1].as_dict() if self.history else None,
            "reviewable": self.last is not None,
            "counters": self.counters(now),
            "streams": [s.as_dict() for _t, s in sorted(self.tracker.states.items())],
            "owner_problem": self.owner_problem, "message": self.last_message, "robot": self.robot,
            "output_dir": str(self.rec.output_dir),
        }
