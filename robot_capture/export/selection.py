"""Which episodes go into the delivered dataset, which to the rejects, which nowhere.

First the gate (issue 23, :func:`gate`): an incomplete bag (a crashed recording: files
metadata.yaml does not list, a file without footer) is an ``error``, a damaged one (a chunk
failing its checks, CRC included) is ``skipped``, each with the line that says to run
``robot-capture recover``; neither goes anywhere, whatever the options.

Default rule (issue 10): an episode is delivered when its QA verdict is not ``fail`` and
its ``success`` label is true. ``include_failed`` delivers every episode.

The verdict selected on is always the full QA's (issue 18): a stored ``qa.json`` of source
``qa``; otherwise (no verdict, or a provisional one such as an older recorder's quick
verdict, :attr:`robot_capture.episodes.Verdict.provisional`) the QA job runs first
(``robot_capture.qa.run.qa_episode``, which stores its verdict). Without the QA job (not
installed, or ``run_qa=False``) there is no verdict: it counts as not failed and the decision
says so. :attr:`Decision.source` says which verdict was used; the export stores it per episode.
"""
from __future__ import annotations

from dataclasses import dataclass

from robot_capture.episodes import EpisodeRecord, load_episode

__all__ = ["Decision", "decide", "gate", "verdict_of", "SOURCE_STORED", "SOURCE_RUN", "SOURCE_NONE"]

#: Decision.source: the bag's stored full QA verdict / the QA run by the export now / no verdict
SOURCE_STORED, SOURCE_RUN, SOURCE_NONE = "qa.json", "qa run by export", "none"


@dataclass
class Decision:
    """``deliver``: into the dataset; else ``reason`` says why not (for the rejects).
    ``source``: which verdict ``verdict`` is (``SOURCE_STORED``, ``SOURCE_RUN``, ``SOURCE_NONE``)."""

    deliver: bool
    reason: str = ""
    verdict: str = "-"
    reasons: tuple = ()
    note: str = ""
    source: str = SOURCE_NONE
    error_cause: str = ""     # Verdict.error_cause of the verdict used ("" for a pass or none)


def gate(bag) -> tuple[str, str] | None:
    """``(status, reason)`` of a bag that must not be exported at all, else None.

    ``("error", reason)`` for an incomplete bag, ``("skipped", reason)`` for a damaged one or
    one being recorded; ``reason`` is :attr:`robot_capture.bag.completeness.BagCheck.reason`
    (``incomplete: run `robot-capture recover BAG` (what is wrong)``; the result line names the
    bag). Reads every byte of the bag (chunk CRCs).
    """
    from robot_capture.bag.completeness import DAMAGED, INCOMPLETE, RECORDING, check_bag
    from robot_capture.bag.errors import NotABagError

    try:
        whole = check_bag(bag, verify_chunks=True)
    except (NotABagError, OSError) as exc:
        return "error", str(exc).splitlines()[0]
    if whole.status == INCOMPLETE:
        return "error", whole.reason
    if whole.status in (DAMAGED, RECORDING):
        return "skipped", whole.reason
    return None


def _qa_job():
    try:
        from robot_capture.qa.run import qa_episode  # built by the QA subsystem (issue 9)
    except ImportError:
        return None
    return qa_episode


def verdict_of(ep: EpisodeRecord, run_qa: bool = True) -> tuple[str, tuple, str, EpisodeRecord, str]:
    """``(verdict text, reasons, note, episode, source)``: the stored full QA verdict, else the QA
    job's (run now; a provisional stored verdict is never used), else ``-`` with a note. The
    episode is re-read after a QA run (it writes qa.json)."""
    if ep.verdict is not None and not ep.verdict.provisional:
        return ep.verdict.verdict, tuple(ep.verdict.reasons), "", ep, SOURCE_STORED
    had = f"{ep.verdict.source} verdict is provisional" if ep.verdict is not None else "no QA verdict"
    ran = f"{had}: QA run now" if ep.verdict is not None else "QA run now"
    job = _qa_job() if run_qa else None
    if job is None:
        why = "QA job not installed" if run_qa else "QA not run (--no-qa)"
        return "-", (), f"{had} ({why}): counted as not failed", ep, SOURCE_NONE
    try:
        out = job(ep.path)
    except Exception as exc:  # noqa: BLE001 - QA failing must not stop the export
        return "-", (), f"{had}; QA run failed ({exc}): counted as not failed", ep, SOURCE_NONE
    v = getattr(out, "verdict", out)
    if hasattr(v, "verdict") and hasattr(v, "reasons"):  # a Verdict (or an object holding one)
        ep2 = load_episode(ep.path)
        v = ep2.verdict if ep2.verdict is not None and not ep2.verdict.provisional else v  # current labels
        return v.verdict, tuple(v.reasons), ran, ep2, SOURCE_RUN
    ep2 = load_episode(ep.path)
    if ep2.verdict is not None and not ep2.verdict.provisional:
        return ep2.verdict.verdict, tuple(ep2.verdict.reasons), ran, ep2, SOURCE_RUN
    return "-", (), "QA produced no verdict: counted as not failed", ep2, SOURCE_NONE


def decide(ep: EpisodeRecord, include_failed: bool = False, run_qa: bool = True) -> Decision:
    """Apply the selection rule to one episode."""
    verdict, reasons, note, ep, source = verdict_of(ep, run_qa=run_qa)
    why = []
    if verdict == "fail":
        why.append("QA verdict fail" + (f" ({reasons[0]})" if reasons else ""))
    if ep.success is not True:
        why.append("success " + ("false" if ep.success is False else "unknown"))
    deliver = include_failed or not why
    v = ep.verdict
    cause = v.error_cause if v is not None and not v.provisional and v.verdict == verdict else ""
    return Decision(deliver=deliver, reason="; ".join(why), verdict=verdict, reasons=reasons, note=note,
                    source=source, error_cause=cause)
