"""The web console's single page (HTML + CSS + JS, no external assets: the floor may be offline).

Everything the server sends is shown with ``textContent`` (never as HTML), so a hostile label
is displayed, not run. Element ids (``tally``, ``tally-head``, ``verdict``, ``btn-<action>``,
``streams``, ``counters``, ``rate``, ``last``, ``reply``, the label inputs ``task``,
``operator``, ``scene``, ``notes``) are what the browser tests drive.

What the page shows from the recorder's state (``EpisodeManager.status()`` JSON), issue 18:

* the tally: READY (green) / NOT READY (amber) with the reasons / RECORDING (red), FORCED when
  the open episode was force-started; NO RECORDER (grey) when the bridge has no fresh state;
* after a stop (state ``review``), the last episode's verdict word large, PASS / WARN / FAIL with
  its reasons (``last.verdict``, ``last.verdict_reasons``), tagged ``provisional`` unless
  ``last.verdict_source`` is ``qa`` (the full QA); it is redrawn whenever the state changes, so a
  full verdict that replaces the quick one shows without a reload;
* before the verdict, what the full QA at stop is doing (``last.qa``): ``QA RUNNING…``, or
  ``QA ERROR`` with its reason (``error: <why>``), in the verdict box and the last-episode line;
* with no recorder, the streams table and counters are greyed, rates and ages blank, and every
  button disabled;
* the label fields show the recorder's current labels (unless the operator is editing one);
* episodes per hour only when the recorder gives it (not extrapolated from one episode).

The page carries a per-page CSRF token (``<meta name="rc-csrf">``) that every POST sends as
``X-RC-CSRF`` (:mod:`robot_capture.console.web_guard`). Fits a 412 px wide phone.
"""
from __future__ import annotations

import html
import json

__all__ = ["render_page"]

BUTTONS = [("toggle", "Start / Stop"), ("success", "Success"), ("failure", "Failure"), ("discard", "Discard"),
           ("discard_last", "Undo last"), ("next_task", "Next task"), ("start_forced", "Force start")]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="rc-csrf" content="__CSRF__">
<title>robot_capture console</title>
<style nonce="__NONCE__">
 *{box-sizing:border-box}
 body{font-family:system-ui,sans-serif;margin:0;background:#111;color:#eee;overflow-wrap:anywhere}
 #tally{padding:22px 16px;text-align:center;transition:background .2s}
 #tally-head{font-size:44px;font-weight:700}
 #tally.green{background:#1f8f3a} #tally.red{background:#c62828} #tally.amber{background:#e09b00;color:#111}
 #tally.grey{background:#555;color:#ddd}
 #tally small{display:block;font-size:20px;font-weight:400;margin-top:8px}
 #verdict{margin:14px auto 0;max-width:900px;border-radius:10px;padding:10px 14px;color:#fff;border:4px solid #fff}
 [hidden]{display:none !important}
 #verdict-word{font-size:52px;font-weight:800;letter-spacing:.04em}
 #verdict.pass{background:#0d5c22} #verdict.warn{background:#8a5a00} #verdict.fail{background:#7f0000}
 #verdict.pending{background:#333}
 .tag{display:inline-block;font-size:18px;font-weight:700;vertical-align:middle;margin-left:10px;padding:2px 8px;
  border-radius:6px;background:#fff;color:#111;letter-spacing:0}
 #verdict ul{margin:6px 0 0;padding-left:20px;text-align:left;font-size:18px}
 main{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,420px),1fr));gap:14px;padding:14px}
 section{background:#1c1c1c;border-radius:10px;padding:12px;min-width:0}
 h2{font-size:15px;margin:0 0 8px;color:#aaa;text-transform:uppercase;letter-spacing:.05em}
 .buttons{display:flex;flex-wrap:wrap;gap:10px;padding:14px}
 button{font-size:22px;padding:16px 18px;border-radius:10px;border:0;background:#333;color:#fff;cursor:pointer;
  flex:1 1 150px;min-width:0}
 button:disabled{opacity:.35;cursor:not-allowed}
 button kbd{display:block;font-size:13px;color:#bbb}
 #btn-success{background:#1f6f35} #btn-failure{background:#7a2a2a} #btn-toggle{background:#2b4f8a}
 table{width:100%;border-collapse:collapse;font-size:15px;table-layout:fixed} td,th{padding:4px 6px;text-align:left}
 th:first-child{width:44%} th{font-size:13px;color:#aaa;overflow-wrap:normal} td small{display:block;color:#999;font-size:12px}
 tr.bad td{color:#ffb74d} .big{font-size:26px} #reply{padding:0 14px 14px;color:#ccc;min-height:1.5em}
 .stale, .stale td, .stale tr.bad td{color:#777 !important}
 input{font-size:18px;padding:6px;width:100%;margin-bottom:6px}
 @media (max-width:520px){#tally-head{font-size:32px} #verdict-word{font-size:40px} button{font-size:18px;padding:12px;flex-basis:40%}
  table{font-size:13px} main{padding:8px;gap:8px}}
</style></head><body>
<div id="tally" class="grey" data-state="offline"><div id="tally-head">CONNECTING</div><small id="tally-why"></small>
 <div id="verdict" hidden><div><span id="verdict-word"></span><span id="verdict-provisional" class="tag" hidden>provisional</span><span
 id="verdict-forced" class="tag" hidden>forced</span></div><ul id="verdict-reasons"></ul></div></div>
<div class="buttons">__BUTTONS__</div>
<div id="reply"></div>
<main>
 <section id="session"><h2>Session</h2><div id="counters" class="big">-</div><div id="rate"></div></section>
 <section><h2>Last episode</h2><div id="last">-</div></section>
 <section><h2>Task and operator</h2>
  <form id="labels"><input id="task" name="task" placeholder="task" autocomplete="off"><input id="operator"
  name="operator" placeholder="operator" autocomplete="off"><input id="scene" name="scene" placeholder="scene"
  autocomplete="off"><input id="notes" name="notes" placeholder="notes" autocomplete="off"><button id="btn-labels"
  type="submit">Set labels</button></form>
  <div id="current"></div></section>
 <section id="streams-box"><h2>Streams</h2><table><thead><tr><th>stream</th><th>rate Hz</th><th>exp. Hz</th><th>age s</th>
  <th>status</th></tr></thead><tbody id="streams"></tbody></table></section>
</main>
<script nonce="__NONCE__">
const KEYS = __KEYS__;
const LABELS = ["task", "operator", "scene", "notes"];
const CSRF = document.querySelector('meta[name="rc-csrf"]').content;
const $ = id => document.getElementById(id);
const dirty = new Set(), pending = {};  // edited fields; set ones not yet in the recorder's state
let offline = true;
if (location.search.includes("token=")) history.replaceState(null, "", location.pathname);  // keep it out of history
function text(el, s){ el.textContent = s; }
function pct(x){ return x === null || x === undefined ? "-" : Math.round(100*x) + "\u00a0%"; }
function num(x, d){ return typeof x === "number" ? x.toFixed(d) : "-"; }
function verdictWord(v){ const w = String(v || "").split(":")[0].trim().toLowerCase();
  return ["pass", "warn", "fail"].includes(w) ? w : ""; }
function qaError(l){ const q = String(l.qa || ""); return q.startsWith("error") ? q.replace(/^error:?/, "").trim() || "unknown" : null; }
function qaNote(l){  // no verdict yet: what the full QA at stop is doing (l.qa: "", "running", "done", "error: <why>")
  const e = qaError(l);
  return e !== null ? "QA error: " + e : l.qa === "running" ? "QA running\u2026" : "QA pending"; }
function renderVerdict(s){
  const box = $("verdict"), l = s.last;
  if (s.state !== "review" || !l || l.discarded) { box.hidden = true; return; }
  const w = verdictWord(l.verdict), e = qaError(l);
  const cls = w || (e !== null ? "error" : l.qa === "running" ? "running" : "pending");
  box.hidden = false; box.className = w || "pending"; box.dataset.verdict = cls;
  text($("verdict-word"), w ? w.toUpperCase() : e !== null ? "QA ERROR" : l.qa === "running" ? "QA RUNNING\u2026" : "QA PENDING");
  $("verdict-provisional").hidden = !w || l.verdict_source === "qa";
  $("verdict-forced").hidden = !l.forced;
  const ul = $("verdict-reasons"); ul.replaceChildren();
  const reasons = w ? (l.verdict_reasons || []) : e !== null ? [e] : [];
  for (const r of reasons) { const li = document.createElement("li"); li.textContent = r; ul.appendChild(li); }
}
function render(s){
  offline = s.state === "offline";
  const t = $("tally");
  t.className = offline ? "grey" : (s.tally || "amber"); t.dataset.state = s.state;
  let head = s.ready ? "READY" : "NOT READY", why = (s.reasons || []).join("; ");
  if (s.state === "recording") {
    head = "RECORDING " + Math.round(s.elapsed_s || 0) + " s" + (s.forced ? " · FORCED" : "");
    why = s.episode + (s.forced && why ? " · forced while not ready: " + why : "");
  } else if (offline) { head = "NO RECORDER"; }
  t.dataset.forced = s.state === "recording" && s.forced ? "true" : "false";
  text($("tally-head"), head); text($("tally-why"), why);
  renderVerdict(s);
  document.querySelectorAll("button").forEach(b => { b.disabled = offline; });
  const c = s.counters || {};
  $("session").classList.toggle("stale", offline); $("streams-box").classList.toggle("stale", offline);
  text($("counters"), (offline ? "last known: " : "") + "kept " + (c.kept||0) + " · discarded " + (c.discarded||0)
       + " · success rate " + pct(c.success_rate));
  const eph = typeof c.episodes_per_hour === "number" ? Math.round(c.episodes_per_hour) + " episodes/hour"
            : "episodes/hour: after 2 episodes and 10 min";
  text($("rate"), eph + " · success " + (c.success||0) + " · failure " + (c.failure||0)
       + (c.forced ? " · forced " + c.forced : ""));
  text($("current"), "task: " + (s.task||"") + " · operator: " + (s.operator||"") + (s.robot ? " · robot: " + s.robot : ""));
  for (const k of LABELS) { const el = $(k), p = pending[k];
    if (p && (s[k] === p.value || Date.now() > p.until)) delete pending[k];  // the recorder has it now (or never will)
    if (!offline && !dirty.has(k) && !pending[k] && document.activeElement !== el && typeof s[k] === "string") el.value = s[k]; }
  const l = s.last;
  if (l) {
    const label = l.discarded ? "discarded" : (l.success === true ? "success" : l.success === false ? "failure" : "unlabelled");
    const w = verdictWord(l.verdict);
    text($("last"), l.name + " — " + label + " (" + (l.stop_reason||"-") + ")" + (l.forced ? " · forced" : "")
         + " · " + (w ? "QA " + w.toUpperCase() + (l.verdict_source === "qa" ? "" : " (provisional)") : qaNote(l)));
  } else text($("last"), "-");
  const tb = $("streams"); tb.replaceChildren();
  for (const x of (s.streams||[])) {
    const tr = document.createElement("tr"); if (x.status !== "ok") tr.className = "bad";
    tr.dataset.topic = x.topic; tr.dataset.status = x.status;
    const name = document.createElement("td"); name.textContent = x.name || x.topic;
    if (x.name) { const sm = document.createElement("small"); sm.textContent = x.topic; name.appendChild(sm); }
    tr.appendChild(name);
    for (const v of [num(x.rate_hz, 1), num(x.expected_hz, 1), num(x.age_s, 1), x.status + (x.required === false ? " (optional)" : "")]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td); }
    tb.appendChild(tr);
  }
}
async function post(url, body){
  let r, j = {};
  try {
    r = await fetch(url, {method:"POST", headers:{"Content-Type":"application/json", "X-RC-CSRF": CSRF},
                          body: JSON.stringify(body||{})});
    try { j = await r.json(); } catch(e) {}
  } catch(e) { j = {ok:false, reply:"console server unreachable"}; }
  const said = typeof j.reply === "string" ? (j.ok ? j.reply.split("\\n")[0] : j.reply) : JSON.stringify(j.reply||(r && r.status));
  text($("reply"), (j.ok ? "" : "refused: ") + said);  // a stop's "QA ..." line is in the tally
  return j;
}
function run(action){ if (!offline) return post("/api/command/" + action); }
document.querySelectorAll("button[data-action]").forEach(b => b.addEventListener("click", () => run(b.dataset.action)));
for (const k of LABELS) $(k).addEventListener("input", () => dirty.add(k));
$("labels").addEventListener("submit", async ev => { ev.preventDefault();
  const body = {}; for (const k of LABELS) { if (dirty.has(k)) body[k] = $(k).value; }
  const j = await post("/api/labels", body);
  if (j.ok) for (const k of Object.keys(body)) { pending[k] = {value: body[k].trim(), until: Date.now() + 5000}; dirty.delete(k); } });
document.addEventListener("keydown", ev => {
  if (ev.target.tagName === "INPUT" || ev.ctrlKey || ev.altKey || ev.metaKey) return;
  const a = KEYS[ev.key]; if (!a || a === "quit") return; ev.preventDefault(); run(a); });
let es = null;
function connect(){
  es = new EventSource("/events");
  es.onmessage = ev => render(JSON.parse(ev.data));
  es.onerror = () => {
    render({state:"offline", tally:"grey", reasons:["console server unreachable (or too many consoles open): retrying"]});
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 3000);  // a refusal (503) is not retried by the browser
  };
}
connect();
</script></body></html>
"""


def render_page(key_map, recorder: str, csrf: str = "", nonce: str = "") -> str:
    """The page, with the key map's shortcuts on the buttons and in the key handler.

    ``csrf``: this page's token (``web_guard.PageTokens.issue``); ``nonce``: the CSP nonce of its
    ``<script>`` and ``<style>`` (both URL-safe base64 text).
    """
    keys = {k: a for k, a in key_map.keys.items()}
    by_action = {}
    for k, a in keys.items():
        by_action.setdefault(a, "space" if k == " " else k)
    buttons = "".join(
        f'<button id="btn-{a}" data-action="{a}" disabled>{html.escape(label)}'
        f'<kbd>{html.escape(by_action.get(a, ""))}</kbd></button>' for a, label in BUTTONS)
    page = (_PAGE.replace("__BUTTONS__", buttons).replace("__KEYS__", json.dumps(keys).replace("</", "<\\/"))
            .replace("__CSRF__", html.escape(csrf)).replace("__NONCE__", html.escape(nonce)))
    return page.replace("<title>robot_capture console</title>",
                        f"<title>robot_capture console: {html.escape(recorder)}</title>")
