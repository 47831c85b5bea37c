"""Which episodes go into the delivered dataset, which to the rejects, which nowhere.

Default rule (issue 10): an episode is delivered when its QA verdict is not ``fail`` and
its ``success`` label is true. ``include_failed`` delivers every episode. An episode
without a stored verdict is checked by the QA job when it is installed
(``robot_capture.qa.run.qa_episode``); without it, "no verdict" counts as not failed and
the decision says so.
"""
from __future__ import annotations

from dataclasses import dataclass

from robot_capture.episodes import EpisodeRecord, load_episode

__all__ = ["Decision", "decide", "verdict_of"]


@dataclass
class Decision:
    """``deliver``: into the dataset; else ``reason`` says why not (for the rejects)."""

    deliver: bool
    reason: str = ""
    verdict: str = "-"
    reasons: tuple = ()
    note: str = ""


def _qa_job():
    try:
        from robot_capture.qa.run import qa_episode  # built by the QA subsystem (issue 9)
    except ImportError:
        return None
    return qa_episode


def verdict_of(ep: EpisodeRecord, run_qa: bool = True) -> tuple[str, tuple, str, EpisodeRecord]:
    """``(verdict text, reasons, note, episode)``: the stored verdict, else the QA job's,
    else ``-`` with a note. The episode is re-read after a QA run (it writes qa.json)."""
    if ep.verdict is not None:
        return ep.verdict.verdict, tuple(ep.verdict.reasons), "", ep
    job = _qa_job() if run_qa else None
    if job is None:
        return "-", (), "no QA verdict (QA job not installed): counted as not failed", ep
    try:
        out = job(ep.path)
    except Exception as exc:  # noqa: BLE001 - QA failing must not stop the export
        return "-", (), f"QA run failed ({exc}): counted as not failed", ep
    v = getattr(out, "verdict", out)
    if hasattr(v, "verdict") and hasattr(v, "reasons"):  # a Verdict (or an object holding one)
        return v.verdict, tuple(v.reasons), "QA run now", load_episode(ep.path)
    ep2 = load_episode(ep.path)
    if ep2.verdict is not None:
        return ep2.verdict.verdict, tuple(ep2.verdict.reasons), "QA run now", ep2
    return "-", (), "QA produced no verdict: counted as not failed", ep2


def decide(ep: EpisodeRecord, include_failed: bool = False, run_qa: bool = True) -> Decision:
    """Apply the selection rule to one episode."""
    verdict, reasons, note, ep = verdict_of(ep, run_qa=run_qa)
    why = []
    if verdict == "fail":
        why.append("QA verdict fail" + (f" ({reasons[0]})" if reasons else ""))
    if ep.success is not True:
        why.append("success " + ("false" if ep.success is False else "unknown"))
    deliver = include_failed or not why
    return Decision(deliver=deliver, reason="; ".join(why), verdict=verdict, reasons=reasons, note=note)
