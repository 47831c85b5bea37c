"""The recorder's cheap verdict at stop, from its own counters (no bag is read).

:func:`recorder_verdict` judges presence, rates, drops and gaps from the per-topic
:class:`robot_capture.record.stats.TopicStats` of the episode, with the same thresholds
as ``robot-capture qa`` (config/qa.yaml) where the counters allow:

* presence: an expected topic with no message in the episode fails;
* rate: ``messages / episode duration`` (the recorder cannot see stamps, so holes lower it
  too) against the expected rate, 0.95x / 0.84x;
* drops: the recorder's lost-message counter (DDS lost samples, publisher sequence gaps):
  1-5 warn, more fail;
* gaps: the longest interval between receptions: over 500 ms on any stream, or over
  100 ms on a >= 100 Hz stream, fails.

Stored as ``source: recorder``; a later ``robot-capture qa`` verdict replaces it. Labels
are judged from the labels the recorder wrote. ROS-free.
"""
from __future__ import annotations

from robot_capture.episodes import Finding, Verdict
from robot_capture.episodes.verdict import labels_finding
from robot_capture.qa.context import short_name

__all__ = ["recorder_verdict"]


def recorder_verdict(stats: dict, duration_s: float, expected: dict | None = None, labels: dict | None = None,
                     config=None) -> Verdict:
    """Verdict from recorder counters.

    Args:
        stats: ``{topic: TopicStats}`` (or dicts with messages, drops, max_gap_s) of the episode.
        duration_s: episode length, s.
        expected: ``{topic: Hz | None}``: topics that must be present and their rates;
            None = presence not judged, rates not judged.
        labels: ``{task, operator, success}`` text as recorded (success ``unknown`` = missing).
        config: QA config (None = config/qa.yaml; a broken config falls back to the defaults:
            the recorder must never fail to close an episode over QA).
    """
    from robot_capture.qa.config import QAConfig, as_config

    try:
        cfg = as_config(config)
    except Exception:  # noqa: BLE001 - never fail the stop over a config problem
        cfg = QAConfig()
    g, r = cfg.gaps, cfg.rate
    out = []
    metrics = {"duration_s": round(duration_s, 3), "topics": {}}

    def val(s, k):
        return s.get(k, 0) if isinstance(s, dict) else getattr(s, k, 0)

    expected = dict(expected or {})
    for topic in sorted(set(stats) | set(expected)):
        s = stats.get(topic, {})
        n, drops, gap = int(val(s, "messages")), int(val(s, "drops")), float(val(s, "max_gap_s"))
        exp = expected.get(topic)
        metrics["topics"][topic] = {"messages": n, "drops": drops, "longest_gap_s": round(gap, 4)}
        name = short_name(topic)
        if topic in expected and n == 0:
            out.append(Finding("presence", "fail", f"{name}: no messages", topic, {"count": 0}))
            continue
        if n == 0:
            continue
        if exp and duration_s > 0:
            ratio = n / duration_s / exp
            sev = "fail" if ratio < r.fail_below else "warn" if ratio < r.warn_below else ""
            if sev:
                out.append(Finding("rate", sev, f"{name}: {n / duration_s:.1f} Hz where {exp:.4g} Hz is expected "
                                   f"({ratio:.2f}x)", topic, {"rate_hz": round(n / duration_s, 3), "expected_hz": exp,
                                                              "ratio": round(ratio, 4)}))
        hz = exp or (n / duration_s if duration_s > 0 else 0.0)
        if hz < g.min_rate_hz:
            continue
        long_fail = gap > g.max_gap_s or (hz >= g.fast_rate_hz and gap > g.fast_max_gap_s)
        sev = "fail" if drops >= g.fail_drops or long_fail else "warn" if drops >= g.warn_drops else ""
        if sev:
            what = "frames" if topic.startswith("/camera/") else "messages"
            out.append(Finding("gaps", sev, f"{name}: longest gap {gap * 1e3:.0f} ms between receptions, {drops} {what} "
                               f"lost ({100.0 * drops / max(n + drops, 1):.1f} %)", topic, {"missing": drops, "longest_gap_s": round(gap, 4)}))
    if labels is not None:
        missing = [k for k in cfg.labels.required if str(labels.get(k, "")).strip() in ("", "unknown")]
        f = labels_finding(missing)
        if f:
            out.append(f)
    return Verdict(findings=out, source="recorder", qa_version="1", config_sha256=cfg.sha256, metrics=metrics)
