"""Motion checks: idle head and tail, retargeting, frozen or jumping command, labels.

Each check is ``check(ctx: EpisodeContext) -> list[Finding]``. Joint data is read from
sensor_msgs/JointState CDR bytes (:func:`robot_capture.qa.bagdata.parse_joint_state`),
only for the topics a check names in ``config/qa.yaml``. Units: rad, s, m.
"""
from __future__ import annotations

import math
import re

import numpy as np

from robot_capture.episodes import Finding
from robot_capture.qa.bagdata import parse_joint_state
from robot_capture.qa.context import EpisodeContext

__all__ = ["joints", "idle", "retarget", "command", "labels", "wrist_errors"]


def joints(ctx: EpisodeContext, topic: str):
    """``(log times ns (N,), names, positions (N, n) float64)`` of a JointState topic, or None.

    Names are those of the first message; later messages are mapped by name (absent -> NaN).
    Cached on the context.
    """
    key = ("joints", topic)
    if key in ctx._timing:
        return ctx._timing[key]
    res = None
    if ctx.data.topics.get(topic) == "sensor_msgs/msg/JointState" and ctx.data.count(topic):
        names, rows, keep = None, [], []
        for i, b in enumerate(ctx.data.payloads(topic)):
            try:
                _st, nm, pos = parse_joint_state(b)
            except ValueError:
                continue
            if names is None:
                names = nm
            if nm != names:
                m = dict(zip(nm, pos))
                pos = np.array([m.get(n, np.nan) for n in names])
            elif len(pos) != len(names):
                continue
            rows.append(pos)
            keep.append(i)
        if rows:
            res = (ctx.data.log_times(topic)[keep], names, np.vstack(rows))
            ctx._timing[("joints_idx", topic)] = np.asarray(keep)
    ctx._timing[key] = res
    return res


def _still_until(t_ns: np.ndarray, q: np.ndarray, start_ns: int, window_s: float, tol: float, reverse=False) -> float:
    """Seconds from the start (or back from the end) during which ``q`` stays within ``tol`` of
    its value at the edge, judged per ``window_s`` window."""
    if len(t_ns) < 2:
        return 0.0
    t = (t_ns - start_ns) / 1e9
    if reverse:
        t, q = t[-1] - t[::-1], q[::-1]
    finite = np.isfinite(q)
    ref = q[0]
    dev = np.where(finite, np.abs(q - ref), 0.0).max(axis=1)
    moving = np.nonzero(dev > tol)[0]
    if not len(moving):
        return float(t[-1])
    # round down to whole windows: a still window is one with no sample beyond tolerance
    return float(math.floor(t[moving[0]] / window_s) * window_s)


def idle(ctx: EpisodeContext) -> list[Finding]:
    """Idle head and tail: where both the robot (``idle.robot_topic``) and the human input
    (the first of ``idle.input_topics`` present) are still. Reports ``ctx.trim`` (head_s,
    tail_s: what an export may cut; the bag is not cut); a head or tail of ``idle.warn_s``
    or more warns."""
    c = ctx.config.idle
    series = [joints(ctx, c.robot_topic)]
    inp = next((t for t in c.input_topics if ctx.data.count(t)), None)
    if inp is not None:
        series.append(joints(ctx, inp))
    series = [s for s in series if s is not None]
    if not series:
        return []
    head = min(_still_until(t, q, ctx.start_ns, c.window_s, c.tolerance_rad) for t, _n, q in series)
    tail = min(_still_until(t, q, ctx.stop_ns, c.window_s, c.tolerance_rad, reverse=True) + max(
        0.0, (ctx.stop_ns - int(t[-1])) / 1e9) for t, _n, q in series)
    head = min(head, ctx.duration_s)  # measured from the episode start: a late first sample is already in it
    ctx.trim.update(head_s=round(head, 3), tail_s=round(min(tail, ctx.duration_s), 3))
    out = []
    for edge, s in (("start", head), ("end", tail)):
        if s >= c.warn_s:
            out.append(Finding("idle", "warn", f"robot and operator idle for the first {s:.1f} s" if edge == "start"
                               else f"robot and operator idle for the last {s:.1f} s", "",
                               {f"{'head' if edge == 'start' else 'tail'}_s": round(s, 3)}))
    return out


_FLAG = re.compile(r"([a-z_]+):(\d+)")


def wrist_errors(ctx: EpisodeContext):
    """Retarget diagnostics: ``(times ns, wrist error window max m (N,), outputs (N,), failures (N,))``."""
    key = ("diag",)
    if key in ctx._timing:
        return ctx._timing[key]
    t, err, outs, fails = [], [], [], []
    if ctx.data.count("/diagnostics"):
        for lt, m in zip(ctx.data.log_times("/diagnostics"), ctx.data.decoded("/diagnostics")):
            for st in getattr(m, "status", None) or []:
                if not st.name.startswith("retarget"):
                    continue
                vals = {kv.key: kv.value for kv in st.values}
                wr = []
                for k, v in vals.items():
                    if "wrist" in k and "position_error" in k:
                        try:
                            wr.append(float(v))
                        except ValueError:
                            pass
                flags = dict((k, int(n)) for k, n in _FLAG.findall(vals.get("flags", "")))
                try:
                    n_out = int(float(vals.get("outputs", 0)))
                except ValueError:
                    n_out = 0
                t.append(int(lt))
                err.append(max(wr) if wr else np.nan)
                outs.append(n_out)
                fails.append(flags.get("ik_failure", 0) + flags.get("ik_invalid", 0))
    res = (np.array(t, np.int64), np.array(err, float), np.array(outs), np.array(fails))
    ctx._timing[key] = res
    return res


def _kept(ctx, topic: str, n: int):
    """Indices of the messages :func:`joints` kept (all, unless some were malformed)."""
    return ctx._timing.get(("joints_idx", topic), np.arange(n))


def _state_at(state, t_ns: np.ndarray, names: list[str]):
    ts, snames, sq = state
    idx = [snames.index(n) if n in snames else -1 for n in names]
    k = np.clip(np.searchsorted(ts, t_ns), 0, len(ts) - 1)
    out = np.full((len(t_ns), len(names)), np.nan)
    for j, i in enumerate(idx):
        if i >= 0:
            out[:, j] = sq[k, i]
    return out


def retarget(ctx: EpisodeContext) -> list[Finding]:
    """Retargeting: NaN in the command or state fails; the fraction of frames with an IK failure
    (retarget diagnostics ``ik_failure``: wrist target out of reach) warns/fails; wrist IK
    error p95 warns and max fails; command vs measured state beyond ``tracking_limit_rad``
    for longer than ``tracking_min_s`` on a joint warns."""
    c = ctx.config.retarget
    out = []
    cmd = joints(ctx, c.command_topic)
    state = joints(ctx, ctx.config.idle.robot_topic)
    for name, s in (("command", cmd), ("measured state", state)):
        if s is not None:
            bad = ~np.isfinite(s[2])
            if bad.any():
                rows = int(bad.any(axis=1).sum())
                j = s[1][int(np.nonzero(bad.any(axis=0))[0][0])]
                out.append(Finding("retarget", "fail", f"{name}: NaN or inf in {rows} messages (first joint {j})",
                                   c.command_topic if name == "command" else ctx.config.idle.robot_topic,
                                   {"nonfinite_messages": rows}))
    t, err, outs, fails = wrist_errors(ctx)
    m = ctx.metrics.setdefault("retarget", {})
    if outs.sum() > 0:
        frac = float(fails.sum() / outs.sum())
        m["ik_failure_fraction"] = round(frac, 4)
        sev = "fail" if frac > c.failure_fail else "warn" if frac > c.failure_warn else ""
        if sev:
            out.append(Finding("retarget", sev, f"IK failed on {100 * frac:.1f} % of frames (wrist target out of "
                               "reach)", c.command_topic, {"ik_failure_fraction": round(frac, 4)}))
    fe = err[np.isfinite(err)]
    if fe.size:
        p95, mx = float(np.percentile(fe, 95)), float(fe.max())
        m.update(wrist_error_p95_m=round(p95, 4), wrist_error_max_m=round(mx, 4))
        if mx > c.wrist_max_fail_m:
            out.append(Finding("retarget", "fail", f"IK wrist error up to {mx * 1e3:.0f} mm (p95 {p95 * 1e3:.0f} mm)",
                               c.command_topic, {"wrist_error_max_m": round(mx, 4), "wrist_error_p95_m": round(p95, 4)}))
        elif p95 > c.wrist_p95_warn_m:
            out.append(Finding("retarget", "warn", f"IK wrist error p95 {p95 * 1e3:.0f} mm", c.command_topic,
                               {"wrist_error_p95_m": round(p95, 4)}))
    if cmd is not None and state is not None and len(cmd[0]) >= 2:
        tc, names, qc = cmd
        qs = _state_at(state, tc, names)
        e = np.abs(qc - qs)
        e[~np.isfinite(e)] = 0.0
        above = e > c.tracking_limit_rad
        worst, worst_j = 0.0, ""
        for j in range(len(names)):
            w = _longest_run_s(tc, above[:, j])
            if w > worst:
                worst, worst_j = w, names[j]
        m["tracking_error_max_rad"] = round(float(e.max()), 4) if e.size else 0.0
        if worst > c.tracking_min_s:
            out.append(Finding("retarget", "warn", f"{worst_j}: measured state off the command by more than "
                               f"{c.tracking_limit_rad:g} rad for {worst * 1e3:.0f} ms", c.command_topic,
                               {"joint": worst_j, "duration_s": round(worst, 3)}))
    return out


def _longest_run_s(t_ns: np.ndarray, mask: np.ndarray) -> float:
    best, start = 0.0, None
    for i, v in enumerate(mask):
        if v and start is None:
            start = i
        if (not v or i == len(mask) - 1) and start is not None:
            end = i if v else i - 1
            best = max(best, (int(t_ns[min(end + 1, len(t_ns) - 1)]) - int(t_ns[start])) / 1e9 if end > start else 0.0)
            start = None
    return best


def command(ctx: EpisodeContext) -> list[Finding]:
    """Frozen or jumping command, within the active part (idle head and tail excluded):
    an identical command for >= ``frozen_fraction`` of it in a row warns; a velocity step
    of more than ``jump_sigma`` standard deviations of the steps (per joint), and at least
    ``jump_min_rad_s`` in size, warns (the floor keeps a nearly still joint, whose steps have a
    tiny deviation, from reporting a twitch of 0.0 rad/s as a jump).
    Non-finite samples are the retarget check's finding and are skipped here."""
    c = ctx.config.command
    cmd = joints(ctx, ctx.config.retarget.command_topic)
    if cmd is None or len(cmd[0]) < 10:
        return []
    t, names, q = cmd
    topic = ctx.config.retarget.command_topic
    base, tb = ctx.timebase(topic)
    # velocities on the stamps (the samples' own times); on receive times (bursty under load) per sample
    ts = tb[_kept(ctx, topic, len(t))] if base == "stamp" else None
    edge = ctx.config.idle.window_s  # the first/last window of motion after/before an idle edge is a start, not a jump
    lo = ctx.start_ns + int((ctx.trim.get("head_s", 0.0) + (edge if ctx.trim.get("head_s") else 0.0)) * 1e9)
    hi = ctx.stop_ns - int((ctx.trim.get("tail_s", 0.0) + (edge if ctx.trim.get("tail_s") else 0.0)) * 1e9)
    sel = (t >= lo) & (t <= hi) & np.all(np.isfinite(q), axis=1)
    t, q = t[sel], q[sel]
    if len(t) < 10:
        return []
    tt = ts[sel] if ts is not None and len(ts) == len(sel) else None
    out = []
    active = (int(t[-1]) - int(t[0])) / 1e9
    same = np.all(np.diff(q, axis=0) == 0, axis=1)
    run = _longest_run_s(t[1:], same) if same.any() else 0.0
    ctx.metrics.setdefault("command", {})["longest_frozen_s"] = round(run, 3)
    if active > 0 and run >= c.frozen_fraction * active:
        out.append(Finding("command", "warn", f"command frozen for {run:.2f} s in a row "
                           f"({100 * run / active:.0f} % of the active episode)", ctx.config.retarget.command_topic,
                           {"frozen_s": round(run, 3)}))
    dt = np.diff(tt) / 1e9 if tt is not None else np.ones(len(t) - 1)
    ok = dt > 0
    v = np.diff(q, axis=0)[ok] / dt[ok, None]           # rad/s between samples
    tv = t[1:][ok]
    acc = np.diff(v, axis=0)                            # velocity steps
    med = np.mean(acc, axis=0)
    sd = np.std(acc, axis=0)
    sd = np.where(sd > 1e-9, sd, np.inf)
    dev = np.abs(acc - med)
    z = np.where(dev >= c.jump_min_rad_s, dev / sd, 0.0)
    zmax = float(z.max()) if z.size else 0.0
    ctx.metrics["command"]["max_jump_sigma"] = round(zmax, 2) if math.isfinite(zmax) else None
    if zmax > c.jump_sigma:
        i, j = np.unravel_index(int(np.argmax(z)), z.shape)
        at = (int(tv[i + 1]) - ctx.start_ns) / 1e9
        out.append(Finding("command", "warn", f"{names[j]}: command velocity jumps by {abs(acc[i, j]):.1f} rad/s "
                           f"({zmax:.0f} sigma) at {at:.1f} s", ctx.config.retarget.command_topic,
                           {"joint": names[j], "sigma": round(zmax, 1), "at_s": round(at, 3)}))
    return out


def labels(ctx: EpisodeContext) -> list[Finding]:
    """A missing required label (task, operator, success) means the episode cannot be delivered.
    Judged from the current labels (metadata.yaml), so a relabel is reflected at once."""
    from robot_capture.episodes.verdict import labels_finding

    ep = ctx.episode
    missing = [k for k in ctx.config.labels.required if
               (ep.success is None if k == "success" else not str(getattr(ep, k, "") or "").strip())]
    f = labels_finding(missing)
    return [f] if f else []
