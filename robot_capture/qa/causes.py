"""Error causes: the QA labels each finding with one of the fixed causes, and ranks them.

The list and its priority order belong to the verdict model
(:data:`robot_capture.episodes.verdict.ERROR_CAUSES`; a verdict's ``error_cause`` is the first
of them among its worst findings' causes). A finding's cause is its check's
(:data:`~robot_capture.episodes.verdict.CHECK_CAUSES`: ``exposure`` -> camera dark (``camera overexposed`` for overexposed frames), ``frozen`` and
``static`` -> camera frozen, ``blur`` -> camera blurred, ``decode`` -> decode error, ``presence``
and ``gaps`` -> stream lost, ...), refined here by what the check cannot know alone:

* a lost stream of the **human input** (``idle.input_topics``, and ``/vr/``, ``/exo/``,
  ``/hand``, ``/mocap`` topics) is ``tracking lost``: the teleoperation lost the operator;
* a ``retarget`` finding that the measured state is off the command (figures ``joint`` and
  ``duration_s``) is ``robot fault``: the robot did not follow;
* the episode's **stop reason** (custom_data ``episode.stop_reason``): stopped by the operator
  (``discarded``, ``abort``, ``aborted``, ``operator_abort``) makes the consequences of the early
  stop (``presence``, ``duration``, ``idle``) ``operator abort``; ``stream_lost`` (the console's
  auto-stop) makes them ``stream lost``.
"""
from __future__ import annotations

from collections import Counter

from robot_capture.episodes.verdict import CHECK_CAUSES, ERROR_CAUSES, Finding

__all__ = ["ERROR_CAUSES", "INPUT_PREFIXES", "ABORT_REASONS", "cause_of", "assign", "rank"]

#: topic prefixes of human input streams (besides ``idle.input_topics`` of the QA config)
INPUT_PREFIXES = ("/vr/", "/exo/", "/hand", "/mocap")
#: stop reasons that mean the operator stopped the demonstration
ABORT_REASONS = frozenset({"discarded", "abort", "aborted", "operator_abort"})
_EARLY_STOP = frozenset({"presence", "duration", "idle"})


def cause_of(f: Finding, input_topics=(), stop_reason: str = "") -> str:
    """The error cause of one finding (one of ``ERROR_CAUSES``; see the module docstring)."""
    if f.check in _EARLY_STOP and stop_reason in ABORT_REASONS:
        return "operator abort"
    if f.check in _EARLY_STOP and stop_reason == "stream_lost":
        return "stream lost"
    if f.check in ("presence", "gaps") and f.topic and (f.topic in input_topics or f.topic.startswith(INPUT_PREFIXES)):
        return "tracking lost"
    if f.check == "exposure" and f.figures.get("kind") == "overexposed":
        return "camera overexposed"
    if f.check == "retarget" and "joint" in f.figures and "duration_s" in f.figures:
        return "robot fault"
    return CHECK_CAUSES.get(f.check, "other")


def assign(findings, input_topics=(), stop_reason: str = "") -> list[Finding]:
    """Set ``cause`` on every finding (in place); returns ``findings``."""
    for f in findings:
        f.cause = cause_of(f, input_topics, stop_reason)
    return findings


def rank(causes) -> list[tuple[str, int]]:
    """``[(cause, episodes)]`` from one error cause per episode (``Verdict.error_cause``; "" for a
    pass counts for nothing), most frequent first, ties in the list's priority order."""
    n = Counter(c for c in causes if c)
    order = {c: i for i, c in enumerate(ERROR_CAUSES)}
    return sorted(n.items(), key=lambda x: (-x[1], order.get(x[0], len(order))))
