"""``robot-capture report DIR --out report.html``: one self-contained HTML file (images inline).

* **The day:** episodes, hours, success rate and QA verdicts per task, per operator and
  per hour (UTC, from the episodes' start times), the error causes ranked (episodes per
  ``Verdict.error_cause``, :mod:`robot_capture.qa.causes`), and the failure reasons ranked (by the
  number of episodes with a warn/fail finding of that check on that stream).
* Streams are shown by the station contract's name where the bag has one (custom_data
  ``stream/<topic>``, :func:`robot_capture.floor.contract.streams_from_custom_data`).
* **Per episode** (linked from the day table): the verdict with its reasons, a thumbnail
  strip of each camera, command vs measured state of the arm joints, the IK wrist error
  over time, stream rates against expected (:mod:`robot_capture.qa.plots`).

Verdicts: the stored ``qa.json`` of source ``qa`` when there is one (labels re-judged from
the current labels), else computed now (not written). An incomplete or damaged bag
(:func:`robot_capture.qa.run.open_episode`'s gate) is always judged now: ``fail``, with the
line that says to run ``robot-capture recover``, in the row's ``problem``. Success rate = successes / episodes
labelled true or false. Hours = sum of episode durations.
"""
from __future__ import annotations

import base64
import html
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from robot_capture.episodes import find_bags, load_episode
from robot_capture.qa.causes import rank as rank_causes
from robot_capture.qa.config import as_config

__all__ = ["build_report", "day_summary"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1280px}
h1{font-size:22px} h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc} h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0 16px} td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}
th{background:#f0f0f0} td.l,th.l{text-align:left}
.pass{color:#087f23;font-weight:600} .warn{color:#b26a00;font-weight:600} .fail{color:#c62828;font-weight:600}
.ep{border:1px solid #ddd;border-radius:6px;padding:8px 14px;margin:14px 0} .strip{margin:4px 0}
.cam{font-size:12px;color:#555} img{max-width:100%} ul{margin:4px 0}
"""


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return f'<span class="cam">({html.escape(alt)}: no decodable frame)</span>'
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _group(rows, key) -> list[tuple[str, dict]]:
    g: dict[str, dict] = defaultdict(lambda: {"episodes": 0, "seconds": 0.0, "success": 0, "labelled": 0,
                                              "pass": 0, "warn": 0, "fail": 0})
    for r in rows:
        s = g[key(r)]
        s["episodes"] += 1
        s["seconds"] += r["duration_s"]
        if r["success"] is not None:
            s["labelled"] += 1
            s["success"] += bool(r["success"])
        s[r["verdict"]] += 1
    return sorted(g.items())


def day_summary(rows: list[dict]) -> dict:
    """Numbers of the day table from per-episode rows (name, task, operator, success, duration_s,
    start_ns, verdict, error_cause, findings): totals, per task / operator / hour, ranked error causes
    ``[(cause, episodes, example episode name)]`` and ranked reasons."""
    total = _group(rows, lambda r: "all")
    reasons: Counter = Counter()
    example: dict = {}
    for r in rows:
        seen = set()
        for f in r["findings"]:
            k = (f.check, f.topic)
            if k not in seen:
                seen.add(k)
                reasons[k] += 1
                example.setdefault(k, f.message)
    hour = lambda r: time.strftime("%Y-%m-%d %H:00", time.gmtime(r["start_ns"] / 1e9)) if r["start_ns"] else "-"
    cause_example: dict = {}
    for r in rows:
        if r.get("error_cause"):
            cause_example.setdefault(r["error_cause"], r["name"])
    ranked = rank_causes(r.get("error_cause", "") for r in rows)
    return {"causes": [(c, n, cause_example[c]) for c, n in ranked],
            "total": total[0][1] if total else _group([], str), "task": _group(rows, lambda r: r["task"] or "-"),
            "operator": _group(rows, lambda r: r["operator"] or "-"), "hour": _group(rows, hour),
            "reasons": [(k[0], k[1], n, example[k]) for k, n in sorted(reasons.items(), key=lambda x: (-x[1], x[0]))]}


def _stream(topic: str | None, names: dict) -> str:
    """A stream as the report shows it: ``robot joint state (/joint_states)`` when a bag's station
    contract names it, else the topic; ``-`` for a finding about no stream."""
    if not topic:
        return "-"
    return f"{names[topic]} ({topic})" if names.get(topic) else topic


def _stats_table(title: str, groups) -> str:
    out = [f'<table><tr><th class="l">{html.escape(title)}</th><th>episodes</th><th>hours</th><th>success</th>'
           '<th>pass</th><th>warn</th><th>fail</th></tr>']
    for name, s in groups:
        rate = f"{100.0 * s['success'] / s['labelled']:.0f} %" if s["labelled"] else "-"
        out.append(f'<tr><td class="l">{html.escape(str(name))}</td><td>{s["episodes"]}</td>'
                   f'<td>{s["seconds"] / 3600:.3f}</td><td>{rate}</td><td class="pass">{s["pass"]}</td>'
                   f'<td class="warn">{s["warn"]}</td><td class="fail">{s["fail"]}</td></tr>')
    return "".join(out) + "</table>"


def build_report(paths, out, config=None, expected=None, progress: bool = True, thumbnails: int = 6) -> dict:
    """Write the report of the episodes in ``paths`` to ``out`` (HTML). Returns the day summary
    (see :func:`day_summary`) plus ``rows``.

    Raises:
        FileNotFoundError: a path does not exist. ValueError: no bag found.
        robot_capture.config_schema.ConfigError: an invalid config.
    """
    from robot_capture.floor.contract import streams_from_custom_data
    from robot_capture.qa.plots import cameras, episode_figure, thumbnail_strip
    from robot_capture.qa.run import folder_durations, open_episode

    cfg = as_config(config)
    bags = find_bags([Path(p) for p in paths])
    if not bags:
        raise ValueError(f"no bags found in {', '.join(str(p) for p in paths)}")
    stats = folder_durations(bags)
    it = bags
    if progress:
        from tqdm import tqdm

        it = tqdm(bags, desc="report", unit="bag", file=sys.stderr)
    rows, sections = [], []
    for i, b in enumerate(it):
        ep = load_episode(b)
        ctx, v = open_episode(b, cfg, expected, stats)
        stored = ep.verdict
        bad = [f.message for f in v.findings if f.check == "bag"]  # incomplete, damaged, unreadable: now
        if stored is not None and stored.source == "qa" and not bad and \
                not any(f.check == "bag" for f in stored.findings):  # (a stored one may predate `recover`)
            v = stored
            if ctx is not None:
                ctx.metrics = dict(stored.metrics)  # rates against the expected rates it was judged with
        parts = []
        try:
            if ctx is not None:
                for cam in cameras(ctx):
                    parts.append(f'<div class="strip"><div class="cam">{html.escape(cam)}</div>'
                                 f'{_img(thumbnail_strip(ctx, cam, thumbnails), cam)}</div>')
                parts.append(_img(episode_figure(ctx), "command, IK error, rates"))
        finally:
            if ctx is not None:
                ctx.data.close()
        row = {"anchor": f"ep{i + 1}", "name": ep.name, "path": str(ep.path), "task": ep.task,
               "operator": ep.operator, "success": ep.success,
               "duration_s": ep.duration_s or (ctx.duration_s if ctx is not None else 0.0),
               "start_ns": ep.start_ns, "verdict": v.verdict, "error_cause": v.error_cause, "findings": list(v.findings),
               "problem": bad[0] if bad else "",
               "streams": {t: s["name"] for t, s in streams_from_custom_data(ep.custom_data).items() if s["name"]}}
        rows.append(row)
        reasons = "".join(f'<li class="{f.severity}">{html.escape(f.message)}</li>' for f in
                          sorted(v.findings, key=lambda f: f.severity != "fail"))
        trim = v.trim or {}
        sections.append(
            f'<div class="ep" id="{row["anchor"]}"><h3>{html.escape(ep.name)} '
            f'<span class="{v.verdict}">{v.verdict.upper()}</span>'
            f'{" · " + html.escape(v.error_cause) if v.error_cause else ""}</h3>'
            f'<div>task <b>{html.escape(ep.task or "-")}</b> · operator <b>{html.escape(ep.operator or "-")}</b> · '
            f'success <b>{ {True: "true", False: "false", None: "unknown"}[ep.success]}</b> · '
            f'{row["duration_s"]:.1f} s · idle head {trim.get("head_s", 0):.1f} s, tail {trim.get("tail_s", 0):.1f} s</div>'
            f'<ul>{reasons or "<li class=pass>no findings</li>"}</ul>{"".join(parts)}</div>')
    day = day_summary(rows)
    ep_rows = "".join(
        f'<tr><td class="l"><a href="#{r["anchor"]}">{html.escape(r["name"])}</a></td>'
        f'<td class="l">{html.escape(r["task"] or "-")}</td><td class="l">{html.escape(r["operator"] or "-")}</td>'
        f'<td>{ {True: "true", False: "false", None: "unknown"}[r["success"]]}</td><td>{r["duration_s"]:.1f}</td>'
        f'<td class="{r["verdict"]}">{r["verdict"]}</td></tr>' for r in rows)
    names = {t: n for r in rows for t, n in sorted(r.get("streams", {}).items())}  # the contract's names
    reasons = "".join(f'<tr><td>{n}</td><td class="l">{html.escape(c)}</td><td class="l">{html.escape(_stream(t, names))}</td>'
                      f'<td class="l">{html.escape(m)}</td></tr>' for c, t, n, m in day["reasons"])
    causes = "".join(f'<tr><td>{n}</td><td class="l">{html.escape(c)}</td><td class="l">{html.escape(e)}</td></tr>'
                     for c, n, e in day["causes"])
    tot = day["total"]
    rate = f"{100.0 * tot['success'] / tot['labelled']:.0f} %" if tot["labelled"] else "-"
    doc = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Episode report</title><style>{_CSS}</style>'
           f'</head><body><h1>Episode report: {len(rows)} episodes</h1>'
           f'<p id="totals">episodes <b>{tot["episodes"]}</b> · hours <b>{tot["seconds"] / 3600:.3f}</b> · '
           f'success rate <b>{rate}</b> · verdicts <span class="pass">{tot["pass"]} pass</span>, '
           f'<span class="warn">{tot["warn"]} warn</span>, <span class="fail">{tot["fail"]} fail</span></p>'
           f'<h2>The day</h2>{_stats_table("task", day["task"])}{_stats_table("operator", day["operator"])}'
           f'{_stats_table("hour (UTC)", day["hour"])}'
           f'<h2>Error causes, ranked</h2><table id="causes"><tr><th>episodes</th><th class="l">cause</th>'
           f'<th class="l">example episode</th></tr>{causes}</table>'
           f'<h2>Failure reasons, ranked</h2><table id="reasons"><tr><th>episodes</th><th class="l">check</th>'
           f'<th class="l">stream</th><th class="l">example</th></tr>{reasons}</table>'
           f'<h2>Episodes</h2><table id="episodes"><tr><th class="l">episode</th><th class="l">task</th>'
           f'<th class="l">operator</th><th>success</th><th>duration s</th><th>verdict</th></tr>{ep_rows}</table>'
           f'{"".join(sections)}<p class="cam">QA config {cfg.sha256[:12]} · robot_capture</p></body></html>')
    Path(out).write_text(doc, encoding="utf-8")
    day["rows"] = rows
    return day
