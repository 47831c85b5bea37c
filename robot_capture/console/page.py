"""The web console's single page (HTML + CSS + JS, no external assets: the floor may be offline).

Everything the server sends is shown with ``textContent`` (never as HTML), so a hostile label
is displayed, not run. Element ids (``tally``, ``btn-<action>``, ``streams``, ``counters``,
``last``, ``reply``) are what the browser test drives.
"""
from __future__ import annotations

import html
import json

__all__ = ["render_page"]

BUTTONS = [("toggle", "Start / Stop"), ("success", "Success"), ("failure", "Failure"), ("discard", "Discard"),
           ("discard_last", "Undo last"), ("next_task", "Next task"), ("start_forced", "Force start")]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>robot_capture console</title>
<style>
 body{font-family:system-ui,sans-serif;margin:0;background:#111;color:#eee}
 #tally{padding:28px 20px;text-align:center;font-size:44px;font-weight:700;transition:background .2s}
 #tally.green{background:#1f8f3a} #tally.red{background:#c62828} #tally.amber{background:#e09b00;color:#111}
 #tally small{display:block;font-size:20px;font-weight:400;margin-top:8px}
 main{display:grid;grid-template-columns:1fr 1fr;gap:14px;padding:14px}
 section{background:#1c1c1c;border-radius:10px;padding:12px}
 h2{font-size:15px;margin:0 0 8px;color:#aaa;text-transform:uppercase;letter-spacing:.05em}
 .buttons{display:flex;flex-wrap:wrap;gap:10px;padding:14px}
 button{font-size:22px;padding:18px 22px;border-radius:10px;border:0;background:#333;color:#fff;cursor:pointer;flex:1 1 150px}
 button kbd{display:block;font-size:13px;color:#bbb}
 #btn-success{background:#1f6f35} #btn-failure{background:#7a2a2a} #btn-toggle{background:#2b4f8a}
 table{width:100%;border-collapse:collapse;font-size:15px} td,th{padding:4px 6px;text-align:left}
 tr.bad td{color:#ffb74d} .big{font-size:26px} #reply{padding:0 14px 14px;color:#ccc;min-height:1.5em}
 input{font-size:18px;padding:6px;width:95%;margin-bottom:6px}
</style></head><body>
<div id="tally" class="amber" data-state="offline">CONNECTING<small id="tally-why"></small></div>
<div class="buttons">__BUTTONS__</div>
<div id="reply"></div>
<main>
 <section><h2>Session</h2><div id="counters" class="big">-</div><div id="rate"></div></section>
 <section><h2>Last episode</h2><div id="last">-</div><ul id="qa"></ul></section>
 <section><h2>Task and operator</h2>
  <form id="labels"><input id="task" name="task" placeholder="task"><input id="operator" name="operator"
  placeholder="operator"><input id="notes" name="notes" placeholder="notes"><button id="btn-labels" type="submit">Set labels</button></form>
  <div id="current"></div></section>
 <section><h2>Streams</h2><table><thead><tr><th>topic</th><th>rate Hz</th><th>expected</th><th>age s</th><th>status</th></tr></thead>
  <tbody id="streams"></tbody></table></section>
</main>
<script>
const KEYS = __KEYS__;
const $ = id => document.getElementById(id);
function text(el, s){ el.textContent = s; }
function pct(x){ return x === null || x === undefined ? "-" : Math.round(100*x) + " %"; }
function render(s){
  const t = $("tally");
  t.className = s.tally || "amber"; t.dataset.state = s.state;
  let head = "NOT READY", why = (s.reasons || []).join("; ");
  if (s.state === "recording") { head = "RECORDING " + Math.round(s.elapsed_s) + " s"; why = s.episode; }
  else if (s.ready) { head = s.state === "review" ? "READY (review last)" : "READY"; }
  else if (s.state === "offline") { head = "NO RECORDER"; }
  t.firstChild.nodeValue = head; text($("tally-why"), why);
  const c = s.counters || {};
  text($("counters"), "kept " + (c.kept||0) + " · discarded " + (c.discarded||0) + " · success rate " + pct(c.success_rate));
  text($("rate"), (c.episodes_per_hour ? Math.round(c.episodes_per_hour) : "-") + " episodes/hour · success " + (c.success||0) + " · failure " + (c.failure||0));
  text($("current"), "task: " + (s.task||"") + " · operator: " + (s.operator||"") + (s.robot ? " · robot: " + s.robot : ""));
  const l = s.last, qa = $("qa"); qa.replaceChildren();
  if (l) {
    const label = l.discarded ? "discarded" : (l.success === true ? "success" : l.success === false ? "failure" : "unlabelled");
    text($("last"), l.name + " — " + label + " (" + (l.stop_reason||"-") + ")");
    const reasons = (l.verdict_reasons && l.verdict_reasons.length) ? l.verdict_reasons : (l.verdict ? [l.verdict] : ["QA: no verdict yet"]);
    for (const r of reasons) { const li = document.createElement("li"); li.textContent = r; qa.appendChild(li); }
  } else text($("last"), "-");
  const tb = $("streams"); tb.replaceChildren();
  for (const x of (s.streams||[])) {
    const tr = document.createElement("tr"); if (x.status !== "ok") tr.className = "bad";
    tr.dataset.topic = x.topic; tr.dataset.status = x.status;
    for (const v of [x.topic, x.rate_hz.toFixed(1), x.expected_hz ? x.expected_hz.toFixed(1) : "-", x.age_s.toFixed(1), x.status]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td); }
    tb.appendChild(tr);
  }
}
async function post(url, body){
  const r = await fetch(url, {method:"POST", headers:{"Content-Type":"application/json"}, body: JSON.stringify(body||{})});
  let j = {}; try { j = await r.json(); } catch(e) {}
  text($("reply"), (j.ok ? "" : "refused: ") + (typeof j.reply === "string" ? j.reply : JSON.stringify(j.reply||r.status)));
  return j;
}
function run(action){ return post("/api/command/" + action); }
document.querySelectorAll("button[data-action]").forEach(b => b.addEventListener("click", () => run(b.dataset.action)));
$("labels").addEventListener("submit", ev => { ev.preventDefault();
  const body = {}; for (const k of ["task","operator","notes"]) { const v = $(k).value; if (v) body[k] = v; }
  post("/api/labels", body); });
document.addEventListener("keydown", ev => {
  if (ev.target.tagName === "INPUT" || ev.ctrlKey || ev.altKey || ev.metaKey) return;
  const a = KEYS[ev.key]; if (!a || a === "quit") return; ev.preventDefault(); run(a); });
function connect(){
  const es = new EventSource("/events");
  es.onmessage = ev => render(JSON.parse(ev.data));
  es.onerror = () => { render({state:"offline", tally:"amber", reasons:["console server unreachable"]}); };
}
connect();
</script></body></html>
"""


def render_page(key_map, recorder: str) -> str:
    """The page, with the key map's shortcuts on the buttons and in the key handler."""
    keys = {k: a for k, a in key_map.keys.items()}
    by_action = {}
    for k, a in keys.items():
        by_action.setdefault(a, "space" if k == " " else k)
    buttons = "".join(
        f'<button id="btn-{a}" data-action="{a}">{html.escape(label)}'
        f'<kbd>{html.escape(by_action.get(a, ""))}</kbd></button>' for a, label in BUTTONS)
    page = _PAGE.replace("__BUTTONS__", buttons).replace("__KEYS__", json.dumps(keys).replace("</", "<\\/"))
    return page.replace("<title>robot_capture console</title>",
                        f"<title>robot_capture console: {html.escape(recorder)}</title>")
