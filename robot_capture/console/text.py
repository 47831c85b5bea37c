"""Plain-text views of the recorder's console state (``EpisodeManager.status()`` JSON).

Used by ``robot-capture episode status``, ``console --keys`` and ``up --status-every``. ROS-free.
"""
from __future__ import annotations

__all__ = ["status_lines", "status_line", "counters_text"]


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.0f} %"


def counters_text(c: dict) -> str:
    eph = c.get("episodes_per_hour")
    return (f"kept {c.get('kept', 0)} (success {c.get('success', 0)}, failure {c.get('failure', 0)}, "
            f"unlabelled {c.get('unlabelled', 0)}), discarded {c.get('discarded', 0)}, "
            f"success rate {_pct(c.get('success_rate'))}, {'-' if eph is None else f'{eph:.0f}'} episodes/h")


def _last(last: dict | None) -> str:
    if not last:
        return "last episode: -"
    label = {True: "success", False: "failure", None: "unlabelled"}[last.get("success")]
    what = "discarded" if last.get("discarded") else label
    q = str(last.get("qa") or "")  # the full QA at stop: "", "running", "done", "error: <why>"
    if last.get("verdict"):
        qa = f"; QA {last['verdict']}"
    elif q.startswith("error"):
        qa = f"; QA error: {q.partition(':')[2].strip() or 'unknown'}"
    else:
        qa = "; QA running…" if q == "running" else ""
    return f"last episode: {last.get('name')} ({what}, {last.get('stop_reason') or '-'}){qa}"


def status_line(s: dict) -> str:
    """One line: state, streams fresh, episode, counters."""
    streams = s.get("streams") or []
    fresh = sum(1 for x in streams if x.get("status") == "ok")
    ep = f" {s['episode']} {s.get('elapsed_s', 0):.0f} s" if s.get("episode") else ""
    why = f" ({s['reasons'][0]}{' +' + str(len(s['reasons']) - 1) if len(s['reasons']) > 1 else ''})" \
        if s.get("reasons") and not s.get("episode") else ""
    c = s.get("counters") or {}
    return (f"{s.get('state', '?').upper()}{ep}{why} | streams {fresh}/{len(streams)} fresh | "
            f"kept {c.get('kept', 0)} discarded {c.get('discarded', 0)} success rate {_pct(c.get('success_rate'))}")


def status_lines(s: dict) -> list[str]:
    """The full status: state and reasons, labels, streams table, counters, last episode."""
    out = [f"{s.get('node', 'recorder')}: {s.get('state', '?').upper()}"
           + (f" {s['episode']} ({s.get('elapsed_s', 0):.1f} s)" if s.get("episode") else "")]
    for r in s.get("reasons") or []:
        out.append(f"  not ready: {r}")
    out.append(f"task {s.get('task', '')!r}  operator {s.get('operator', '')!r}  scene {s.get('scene', '')!r}"
               + (f"  tasks {s['tasks']}" if s.get("tasks") else ""))
    streams = s.get("streams") or []
    if streams:
        w = max(len(x["topic"]) for x in streams)
        out.append(f"  {'stream'.ljust(w)}  {'rate Hz':>8}  {'expected':>8}  {'age s':>6}  status")
        for x in streams:
            exp = "-" if not x.get("expected_hz") else f"{x['expected_hz']:.1f}"
            out.append(f"  {x['topic'].ljust(w)}  {x.get('rate_hz', 0):8.1f}  {exp:>8}  {x.get('age_s', 0):6.1f}  "
                       f"{x.get('status')}{'' if x.get('required', True) else ' (optional)'}")
    else:
        out.append("  no expected streams configured (every start is allowed)")
    out.append(counters_text(s.get("counters") or {}))
    out.append(_last(s.get("last")))
    return out
