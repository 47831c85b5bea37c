"""Stream checks: presence, rate, gaps, header stamps, camera sync skew, duration.

Each check is ``check(ctx: EpisodeContext) -> list[Finding]`` and may add figures to
``ctx.metrics``. Thresholds: ``config/qa.yaml`` (sources there). Definitions of timebase,
period, drops and sustained rate: :mod:`robot_capture.qa.context`.
"""
from __future__ import annotations

import numpy as np

from robot_capture.episodes import Finding
from robot_capture.qa.context import EpisodeContext

__all__ = ["presence", "rate", "gaps", "stamps", "sync", "duration", "CAMERA_SUFFIXES"]

CAMERA_SUFFIXES = ("/image_raw", "/image_raw/compressed", "/compressed")


def _is_camera(topic: str) -> bool:
    return topic.startswith("/camera/") and topic.endswith(CAMERA_SUFFIXES)


def presence(ctx: EpisodeContext) -> list[Finding]:
    """Every expected topic has messages over the whole episode; an optional stream of the
    station contract (``ctx.optional``) that is in the bag does too (its absence is no finding).

    Fails: no messages; or the first/last message more than ``presence.edge_tolerance_s``
    after the start / before the end (the stream started late or stopped).
    """
    out = []
    tol = ctx.config.presence.edge_tolerance_s
    present_optional = {t for t in ctx.optional if t not in ctx.expected and ctx.data.count(t)}
    for topic in sorted(set(ctx.expected) | present_optional):
        n = ctx.data.count(topic)
        if n == 0:
            out.append(Finding("presence", "fail", f"{ctx.name(topic)}: no messages", topic, {"count": 0}))
            continue
        tt = ctx.timing(topic)
        late, early = tt.first_s, ctx.duration_s - tt.last_s
        if early > tol:
            out.append(Finding("presence", "fail", f"{ctx.name(topic)}: stopped {early:.1f} s before the end "
                               f"(last message at {tt.last_s:.1f} s of {ctx.duration_s:.1f} s)", topic,
                               {"stopped_before_end_s": round(early, 3)}))
        if late > tol:
            out.append(Finding("presence", "fail", f"{ctx.name(topic)}: started {late:.1f} s after the start",
                               topic, {"started_after_s": round(late, 3)}))
    return out


def rate(ctx: EpisodeContext) -> list[Finding]:
    """Sustained rate against expected: >= 0.95x passes, 0.84-0.95x warns, < 0.84x fails
    (and > 1.05x warns, > 1.25x fails). Topics without an expected rate are not judged."""
    c = ctx.config.rate
    out = []
    rates = {}
    judged = {**{t: hz for t, hz in ctx.optional.items() if t not in ctx.expected}, **ctx.expected}
    for topic, exp in sorted(judged.items()):  # optional streams: judged when they are in the bag
        if not exp or ctx.data.count(topic) < 3:
            continue
        tt = ctx.timing(topic)
        ratio = tt.rate_hz / exp
        rates[topic] = {"rate_hz": round(tt.rate_hz, 3), "expected_hz": round(exp, 3),
                        "effective_hz": round(tt.effective_hz, 3), "timebase": tt.timebase}
        sev = ("fail" if ratio < c.fail_below or ratio > c.fail_above else
               "warn" if ratio < c.warn_below or ratio > c.warn_above else "")
        if sev:
            out.append(Finding("rate", sev, f"{ctx.name(topic)}: {tt.rate_hz:.1f} Hz where {exp:.4g} Hz is expected "
                               f"({ratio:.2f}x)", topic, {"rate_hz": round(tt.rate_hz, 3), "expected_hz": exp,
                                                          "ratio": round(ratio, 4)}))
    ctx.metrics["rates"] = rates
    return out


def gaps(ctx: EpisodeContext) -> list[Finding]:
    """Drops and long gaps: 1-5 drops warn; > 5, a gap > 100 ms on a >= 100 Hz stream, or a
    gap > 500 ms on any stream fail. Streams slower than ``gaps.min_rate_hz``, streams expected
    without a rate (None), and streams with neither an expected rate nor stamps are skipped."""
    c = ctx.config.gaps
    out = []
    figs = {}
    topics = set(ctx.expected) | {t for t in ctx.data.topics if ctx.data.count(t) >= 2}
    for topic in sorted(topics):
        if ctx.data.count(topic) < 2:
            continue
        if topic in ctx.expected and not ctx.expected[topic]:
            continue  # event-driven or several publishers (e.g. /diagnostics): presence only
        tt = ctx.timing(topic)
        if not tt.expected_hz and tt.timebase != "stamp":
            continue  # no expected rate and no stamps: nothing to measure holes against
        hz = tt.expected_hz or (1.0 / tt.period_s if tt.period_s > 0 else 0.0)
        if hz < c.min_rate_hz:
            continue
        figs[topic] = {"drops": tt.drops, "longest_gap_s": round(tt.longest_gap_s, 4),
                       "longest_gap_at_s": round(tt.longest_gap_at_s, 3)}
        long_fail = tt.longest_gap_s > c.max_gap_s or (hz >= c.fast_rate_hz and tt.longest_gap_s > c.fast_max_gap_s)
        sev = "fail" if tt.drops >= c.fail_drops or long_fail else "warn" if tt.drops >= c.warn_drops else ""
        if sev:
            total = tt.count + tt.drops
            what = "frames" if _is_camera(topic) else "messages"
            out.append(Finding("gaps", sev, f"{ctx.name(topic)}: {tt.drops} {what} missing "
                               f"({100.0 * tt.drops / max(total, 1):.1f} %), longest gap {tt.longest_gap_s * 1e3:.0f} ms "
                               f"at {tt.longest_gap_at_s:.1f} s", topic,
                               {"missing": tt.drops, "longest_gap_s": round(tt.longest_gap_s, 4),
                                "at_s": round(tt.longest_gap_at_s, 3)}))
    ctx.metrics["gaps"] = figs
    return out


def stamps(ctx: EpisodeContext) -> list[Finding]:
    """Header stamps: non-monotonic or duplicated stamps (warn), p99 latency stamp -> receive
    (warn), and a clock offset (stamps ahead of receive time, or all far behind: fail)."""
    c = ctx.config.stamps
    out = []
    figs = {}
    allow_dup = ("/retarget/joint_command", "/retarget/targets")
    for topic in sorted(ctx.data.topics):
        st = ctx.data.stamps(topic)
        if st is None or len(st) < 2 or topic in c.exclude:
            continue
        lt = ctx.data.log_times(topic)
        lat = (lt - st) / 1e9
        d = np.diff(st)
        back, dup = int(np.count_nonzero(d < 0)), int(np.count_nonzero(d == 0))
        p99, lo = float(np.percentile(lat, 99)), float(lat.min())
        figs[topic] = {"latency_p50_s": round(float(np.median(lat)), 4), "latency_p99_s": round(p99, 4),
                       "latency_min_s": round(lo, 4), "backwards": back, "duplicates": dup}
        name = ctx.name(topic)
        if lo < -c.clock_ahead_fail_s:
            out.append(Finding("stamps", "fail", f"{name}: stamps up to {-lo * 1e3:.0f} ms ahead of the receive time "
                               "(the PCs' clocks disagree)", topic, {"clock_offset_s": round(lo, 4)}))
        elif lo > c.clock_behind_fail_s:
            out.append(Finding("stamps", "fail", f"{name}: every stamp at least {lo:.2f} s older than its receive "
                               "time (the PCs' clocks disagree)", topic, {"clock_offset_s": round(lo, 4)}))
        elif p99 > c.latency_p99_warn_s:
            out.append(Finding("stamps", "warn", f"{name}: p99 latency {p99 * 1e3:.0f} ms from stamp to receive",
                               topic, {"latency_p99_s": round(p99, 4)}))
        bad = back + (0 if topic in allow_dup else dup)
        if bad >= c.duplicate_warn:
            out.append(Finding("stamps", "warn", f"{name}: {back} stamps going backwards, {dup} duplicated",
                               topic, {"backwards": back, "duplicates": dup}))
    ctx.metrics["stamps"] = figs
    return out


def _arrival_offset(ctx: EpisodeContext, a: str, b: str) -> np.ndarray | None:
    """Per frame of ``a``: stamp offset to the message of ``b`` received nearest in time, minus the
    receive offset (s) = how much ``a``'s stamps lead ``b``'s for the same arrival."""
    sa, sb = ctx.data.stamps(a), ctx.data.stamps(b)
    if sa is None or sb is None or len(sa) < 2 or len(sb) < 2:
        return None
    la, lb = ctx.data.log_times(a), ctx.data.log_times(b)
    j = np.clip(np.searchsorted(lb, la), 1, len(lb) - 1)
    j = np.where(np.abs(lb[j - 1] - la) < np.abs(lb[j] - la), j - 1, j)
    return ((sa - sb[j]) - (la - lb[j])) / 1e9


def sync(ctx: EpisodeContext) -> list[Finding]:
    """Camera sync skew: at each camera frame, the stamp offset to every other camera and to
    the joint states, net of the arrival offset (a camera whose clock or stamping is off
    shows a steady offset). Judged on the median per pair; the worst frame is a figure."""
    c = ctx.config.sync
    cams = sorted(t for t in ctx.data.topics if _is_camera(t) and ctx.data.count(t) >= 2)
    refs = [(a, b) for i, a in enumerate(cams) for b in cams[i + 1:]]
    if ctx.data.count(c.state_topic) >= 2:
        refs += [(a, c.state_topic) for a in cams]
    out, figs = [], {}
    for a, b in refs:
        off = _arrival_offset(ctx, a, b)
        if off is None:
            continue
        med = float(np.median(off))
        worst = float(off[np.argmax(np.abs(off))])
        figs[f"{a} vs {b}"] = {"median_s": round(med, 4), "worst_s": round(worst, 4)}
        sev = "fail" if abs(med) > c.skew_fail_s else "warn" if abs(med) > c.skew_warn_s else ""
        if sev:
            other = ctx.name(b) if b != c.state_topic or b in ctx.stream_names else "joint states"
            out.append(Finding("sync", sev, f"{ctx.name(a)} is {med * 1e3:+.0f} ms off {other} "
                               f"(worst frame {worst * 1e3:+.0f} ms)", a, {"median_s": round(med, 4),
                                                                           "worst_s": round(worst, 4), "vs": b}))
    ctx.metrics["sync"] = figs
    return out


def duration(ctx: EpisodeContext) -> list[Finding]:
    """Under 1 s fails; outside ``iqr_factor`` IQR of the task's durations in the folder warns
    (Tukey's fences; the IQR is at least ``min_iqr_fraction`` of the median duration)."""
    c = ctx.config.duration
    d = ctx.episode.duration_s or ctx.duration_s  # the recorder's duration, as folder_durations uses
    ctx.metrics["duration_s"] = round(d, 3)
    if d < c.fail_below_s:
        return [Finding("duration", "fail", f"episode is {d:.2f} s long (under {c.fail_below_s:g} s)", "",
                        {"duration_s": round(d, 3)})]
    durs = (ctx.folder_stats or {}).get(ctx.episode.task)
    if durs and len(durs) >= c.min_episodes:
        q1, q3 = (float(x) for x in np.percentile(durs, [25, 75]))
        iqr = max(q3 - q1, c.min_iqr_fraction * float(np.median(durs)))  # equal durations: not a zero band
        lo, hi = q1 - c.iqr_factor * iqr, q3 + c.iqr_factor * iqr
        if not lo <= d <= hi:
            return [Finding("duration", "warn", f"episode is {d:.1f} s long; task {ctx.episode.task!r} episodes "
                            f"are {q1:.1f}-{q3:.1f} s (IQR of {len(durs)})", "",
                            {"duration_s": round(d, 3), "q1_s": round(q1, 3), "q3_s": round(q3, 3)})]
    return []
