"""The QA verdict of an episode and its sidecar file ``<bag>/qa.json``.

Why a sidecar and not ``metadata.yaml`` ``custom_data``: a verdict carries a list of
findings (check, severity, plain-words message, figures) that does not fit the flat
``str -> str`` map, it is rewritten by QA runs long after the recording (batch, a
newer QA version) while the labels are rewritten by the console, and rosbag2 ignores
unknown files in a bag directory, so neither owner can corrupt the other's data and
``ros2 bag info``/``play`` are unaffected. Labels stay in ``metadata.yaml``
(:mod:`robot_capture.episodes.store`).

Severity order: ``pass`` < ``warn`` < ``fail``. A verdict's ``verdict`` is the worst
finding's severity (``pass`` when there is none); its ``error_cause`` (one of the fixed
:data:`ERROR_CAUSES`) is derived from the worst findings' causes (``""`` for a pass). A file
written before findings carried a ``cause`` (or before ``error_cause``) loads unchanged: the
cause then comes from each finding's check (:data:`CHECK_CAUSES`).

File format (JSON, UTF-8, written atomically)::

    {"format": "robot_capture.qa/1", "verdict": "warn", "error_cause": "stream lost", "source": "qa",
     "qa_version": "2", "config_sha256": "...", "bag_sha256": "...",
     "findings": [{"check": "gaps", "severity": "warn", "topic": "/camera/head/image_raw",
                   "message": "camera head: 3 frames missing (0.2 %), longest gap 70 ms",
                   "figures": {"missing": 3, "longest_gap_s": 0.07}, "cause": "stream lost"}],
     "metrics": {...}, "trim": {"head_s": 0.0, "tail_s": 0.4}}

``source`` is ``qa``: one verdict per episode (issue 18), computed by the QA
(:func:`robot_capture.qa.run.qa_episode`), whether ``robot-capture qa``, batch, export or the
recorder ran it at stop (:mod:`robot_capture.qa.recorder`). Any other source is
**provisional** (:attr:`Verdict.provisional`): ``recorder`` is the quick verdict from the
recorder's own counters that older versions stored at stop. It is shown as provisional
(``info``), and export and batch never select on it: they run the QA first, which replaces it.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from robot_capture.atomic import write_text_atomic

__all__ = ["VERDICT_FILENAME", "SEVERITIES", "FULL_SOURCE", "ERROR_CAUSES", "CHECK_CAUSES", "Finding", "Verdict",
           "worst", "read_verdict", "write_verdict", "labels_finding", "with_current_labels"]

VERDICT_FILENAME = "qa.json"
FORMAT = "robot_capture.qa/1"
SEVERITIES = ("pass", "warn", "fail")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}
#: the source of a full QA verdict; any other is provisional
FULL_SOURCE = "qa"
#: The fixed list of error causes (AgiBot World keeps failed episodes with such a label), in
#: priority order: a verdict's ``error_cause`` is the first of these among the causes of its
#: worst findings (root causes first: a lost stream explains the gaps and the idle tail after it).
ERROR_CAUSES = ("bag damaged", "operator abort", "stream lost", "tracking lost", "robot fault", "decode error",
                "camera dark", "camera overexposed", "camera frozen", "camera blurred", "retarget error", "command error", "stream timing",
                "second source", "duration", "idle", "labels missing", "other")
#: a finding's cause from its check alone, when the QA did not store one (older qa.json files);
#: the QA refines it by topic, figures and the episode's stop reason (robot_capture.qa.causes)
CHECK_CAUSES = {"bag": "bag damaged", "presence": "stream lost", "gaps": "stream lost", "rate": "stream timing",
                "stamps": "stream timing", "sync": "stream timing", "sources": "second source",
                "duration": "duration", "idle": "idle", "retarget": "retarget error", "command": "command error",
                "labels": "labels missing", "decode": "decode error", "exposure": "camera dark",
                "frozen": "camera frozen", "static": "camera frozen", "blur": "camera blurred"}


def worst(severities) -> str:
    """The worst of ``severities`` (``pass`` for none). Raises ValueError on an unknown one."""
    out = "pass"
    for s in severities:
        if s not in _RANK:
            raise ValueError(f"unknown severity {s!r}; expected one of {', '.join(SEVERITIES)}")
        if _RANK[s] > _RANK[out]:
            out = s
    return out


@dataclasses.dataclass
class Finding:
    """One QA finding: a check that warned or failed, in plain words.

    Attributes:
        check: the check's name in ``config/qa.yaml`` (``presence``, ``rate``, ``gaps``, ...).
        severity: ``warn`` or ``fail`` (``pass`` findings are not stored).
        message: one sentence a floor operator understands, with units.
        topic: the topic concerned, or "" for the episode.
        figures: the numbers behind the message (JSON-able).
        cause: one of :data:`ERROR_CAUSES`, set by the QA (robot_capture.qa.causes); "" = from the
            check (:data:`CHECK_CAUSES`, see :attr:`error_cause`).
    """

    check: str
    severity: str
    message: str
    topic: str = ""
    figures: dict = dataclasses.field(default_factory=dict)
    cause: str = ""

    @property
    def error_cause(self) -> str:
        """The stored cause if it is one of :data:`ERROR_CAUSES`, else the check's, else ``other``."""
        return self.cause if self.cause in ERROR_CAUSES else CHECK_CAUSES.get(self.check, "other")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Finding":
        return cls(check=str(d.get("check", "")), severity=str(d.get("severity", "warn")),
                   message=str(d.get("message", "")), topic=str(d.get("topic", "")),
                   figures=dict(d.get("figures") or {}), cause=str(d.get("cause", "") or ""))


@dataclasses.dataclass
class Verdict:
    """The QA verdict of one episode (see the module docstring for the file format)."""

    findings: list = dataclasses.field(default_factory=list)    # list[Finding]
    source: str = "qa"
    qa_version: str = "1"
    config_sha256: str = ""
    bag_sha256: str = ""
    metrics: dict = dataclasses.field(default_factory=dict)
    trim: dict = dataclasses.field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """``pass``, ``warn`` or ``fail``: the worst finding's severity."""
        return worst(f.severity for f in self.findings)

    @property
    def provisional(self) -> bool:
        """True unless the full QA computed it (``source`` ``qa``): e.g. an older recorder's quick
        verdict (``source`` ``recorder``). Never selected on; the QA replaces it."""
        return self.source != FULL_SOURCE

    @property
    def reasons(self) -> list[str]:
        """The findings' messages, failures first."""
        order = sorted(self.findings, key=lambda f: -_RANK.get(f.severity, 0))
        return [f.message for f in order]

    @property
    def error_cause(self) -> str:
        """One of :data:`ERROR_CAUSES` for a verdict that warns or fails, "" for a pass: the first
        in that list's order among the causes of the worst-severity findings. Derived from the
        findings (a relabel that clears the ``labels`` finding clears its cause too); written to
        qa.json for other readers, never read back (a file without it loads the same)."""
        v = self.verdict
        if v == "pass":
            return ""
        causes = {f.error_cause for f in self.findings if f.severity == v}
        return next(c for c in ERROR_CAUSES if c in causes)

    def summary(self) -> str:
        """``"fail: <reason>; <reason>"`` or ``"pass"``, one line."""
        return self.verdict if not self.findings else f"{self.verdict}: " + "; ".join(self.reasons)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "verdict": self.verdict, "error_cause": self.error_cause, "source": self.source,
                "qa_version": self.qa_version,
                "config_sha256": self.config_sha256, "bag_sha256": self.bag_sha256,
                "reasons": self.reasons, "findings": [f.to_dict() for f in self.findings],
                "metrics": self.metrics, "trim": self.trim}

    @classmethod
    def from_dict(cls, d: dict) -> "Verdict":
        """Raises ValueError when ``d`` is not a robot_capture QA verdict."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"not a robot_capture QA verdict (format {d.get('format') if isinstance(d, dict) else d!r})")
        findings = [Finding.from_dict(f) for f in d.get("findings") or [] if isinstance(f, dict)]
        worst(f.severity for f in findings)  # validates
        return cls(findings=findings, source=str(d.get("source", "qa")), qa_version=str(d.get("qa_version", "")),
                   config_sha256=str(d.get("config_sha256", "")), bag_sha256=str(d.get("bag_sha256", "")),
                   metrics=dict(d.get("metrics") or {}), trim=dict(d.get("trim") or {}))


def labels_finding(missing) -> "Finding | None":
    """The ``labels`` finding for the missing required labels (None when none is missing)."""
    missing = list(missing)
    if not missing:
        return None
    return Finding("labels", "fail", f"missing {', '.join(missing)} label{'s' if len(missing) > 1 else ''}: "
                   "cannot be delivered", "", {"missing": missing})


def with_current_labels(verdict: "Verdict | None", missing) -> "Verdict | None":
    """``verdict`` with its ``labels`` finding re-judged from the current ``missing`` labels
    (a relabel after QA is never contradicted by a stale verdict). The file is not rewritten."""
    if verdict is None:
        return None
    f = labels_finding(missing)
    findings = [x for x in verdict.findings if x.check != "labels"] + ([f] if f else [])
    return dataclasses.replace(verdict, findings=findings)


def write_verdict(bag_dir: str | os.PathLike, verdict: Verdict) -> Path:
    """Write ``<bag_dir>/qa.json`` atomically (temp file, fsync, rename). Returns its path.

    Deterministic: the same verdict gives the same bytes (sorted keys, no time stamp),
    so running QA twice leaves the file unchanged.

    Raises:
        OSError: on I/O failure; an existing qa.json is left untouched.
    """
    path = Path(bag_dir) / VERDICT_FILENAME
    text = json.dumps(verdict.to_dict(), indent=1, sort_keys=True, ensure_ascii=False, default=_json_default)
    write_text_atomic(path, text + "\n")
    return path


def _json_default(obj: Any):
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"not JSON-serializable: {type(obj).__name__}")


def read_verdict(bag_dir: str | os.PathLike) -> Verdict | None:
    """The stored verdict of ``bag_dir``, or None when it has none.

    Raises:
        ValueError: when qa.json exists but is not a valid verdict (names the file).
    """
    path = Path(bag_dir) / VERDICT_FILENAME
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return Verdict.from_dict(json.loads(raw))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
