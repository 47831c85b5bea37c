"""The web console page shows the truth (issue 18), in headless Chromium, without DDS.

A fake bridge (``_console_fake``) serves recorder states a real session produces; the page
in Debian's Chromium must show: the verdict word large after a stop (PASS / WARN / FAIL with
its reasons, ``provisional`` until the full QA's verdict replaces it, without a reload); a
forced recording as forced; no recorder as greyed streams and counters and disabled buttons;
the current labels in the label fields; no episodes/hour from one episode; and a page that
fits a 412 px phone. Every wait is on the page's state (Playwright's ``expect``), never on time.
"""
from __future__ import annotations

import copy

import pytest
from _console_fake import READY, FakeBridge, LiveServer

import _browser
from robot_capture.console.commands import load_key_map
from robot_capture.console.web import build_app

pytestmark = [pytest.mark.skipif(bool(_browser.MISSING), reason=_browser.MISSING or "-"), pytest.mark.timeout(300)]

STREAMS = [
    {"topic": "/joint_states", "name": "robot joint state", "expected_hz": 500.0, "rate_hz": 498.7, "age_s": 0.0,
     "required": True, "status": "ok", "received": 1000},
    {"topic": "/camera/head/image_raw", "name": "head camera", "expected_hz": 30.0, "rate_hz": 29.9, "age_s": 0.02,
     "required": True, "status": "ok", "received": 60},
    {"topic": "/retarget/joint_command_with_a_long_topic_name_from_a_driver", "expected_hz": 100.0,
     "rate_hz": 99.1, "age_s": 0.01, "required": True, "status": "ok", "received": 200},
    {"topic": "/diagnostics", "expected_hz": None, "rate_hz": 1.0, "age_s": 0.4, "required": False, "status": "ok",
     "received": 2},
]
LAST = {"name": "20260107-101500_pour_water_0003", "path": "/home/floor/recordings/20260107-101500_pour_water_0003",
        "task": "pour water", "success": True, "stop_reason": "stopped", "forced": False, "discarded": False,
        "verdict": "fail: /joint_states: 29 messages missing (0.7 %); /camera/head/image_raw: 12 frames missing",
        "verdict_reasons": ["/joint_states: 29 messages missing (0.7 %)", "/camera/head/image_raw: 12 frames missing"],
        "verdict_source": "recorder"}


def state(**kw) -> dict:
    s = copy.deepcopy(dict(READY, streams=STREAMS, task="pour water", operator="ana", scene="kitchen a",
                           notes="left hand", robot="g1",
                           counters={"kept": 1, "discarded": 0, "success": 1, "failure": 0, "success_rate": 1.0,
                                     "episodes_per_hour": None, "forced": 0}))
    s.update(kw)
    return s


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = _browser.launch(p)
        yield b
        b.close()


@pytest.fixture
def console(browser):
    bridge = FakeBridge(state())
    srv = LiveServer(build_app(bridge, load_key_map()))
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    page.goto(srv.url + "/")
    yield bridge, page
    page.close()
    srv.close()


def test_verdict_word_large_after_stop_and_replaced_without_reload(console):
    from playwright.sync_api import expect

    bridge, page = console
    bridge.state = state(state="review", last=LAST)
    word = page.locator("#verdict-word")
    expect(word).to_have_text("FAIL", timeout=20000)
    expect(page.locator("#verdict")).to_have_class("fail")
    expect(page.locator("#verdict-provisional")).to_be_visible()
    expect(page.locator("#verdict-reasons li")).to_have_text(LAST["verdict_reasons"])
    expect(page.locator("#tally-head")).to_have_text("READY")  # readiness for the next one, apart from the verdict
    size = float(word.evaluate("e => parseFloat(getComputedStyle(e).fontSize)"))
    assert size >= 40, size  # the word is large, not small grey text
    # the full QA's verdict replaces the quick one: the page follows without a reload
    full = dict(LAST, verdict="warn: /camera/head/image_raw: 12 frames missing",
                verdict_reasons=["/camera/head/image_raw: 12 frames missing"], verdict_source="qa")
    bridge.state = state(state="review", last=full)
    expect(word).to_have_text("WARN", timeout=20000)
    expect(page.locator("#verdict")).to_have_class("warn")
    expect(page.locator("#verdict-provisional")).to_be_hidden()
    expect(page.locator("#verdict-reasons li")).to_have_text(full["verdict_reasons"])
    bridge.state = state(state="review", last=dict(full, verdict="pass", verdict_reasons=[]))
    expect(word).to_have_text("PASS", timeout=20000)
    # the next start hides the last verdict
    bridge.state = state(state="recording", tally="red", episode="20260107-101900_pour_water_0004", elapsed_s=3.2,
                         last=dict(full, verdict="pass"))
    expect(page.locator("#verdict")).to_be_hidden(timeout=20000)


def test_forced_recording_is_marked(console):
    from playwright.sync_api import expect

    bridge, page = console
    bridge.state = state(state="recording", tally="red", ready=False, episode="20260107-102000_pour_water_0005",
                         elapsed_s=4.0, forced=True, reasons=["/camera/head/image_raw silent for 3.1 s"])
    expect(page.locator("#tally-head")).to_contain_text("FORCED", timeout=20000)
    expect(page.locator("#tally-why")).to_contain_text("forced while not ready: /camera/head/image_raw silent")
    last = dict(LAST, forced=True, verdict="pass", verdict_reasons=[], verdict_source="qa")
    bridge.state = state(state="review", last=last)
    expect(page.locator("#verdict-forced")).to_be_visible(timeout=20000)
    expect(page.locator("#last")).to_contain_text("forced")


def test_no_recorder_greys_streams_and_disables_buttons(console):
    from playwright.sync_api import expect

    from robot_capture.console.bridge import RecorderBridge

    bridge, page = console
    expect(page.locator("#btn-toggle")).to_be_enabled(timeout=20000)
    expect(page.locator('#streams tr[data-status="ok"]')).to_have_count(len(STREAMS))
    # the bridge's own offline state from a recorder that went quiet with every stream "ok"
    gone = object.__new__(RecorderBridge)
    gone.recorder, gone._state, gone._state_t = "/recorder", state(), 1.0  # monotonic 1.0: long ago
    offline = gone.latest()
    assert offline["state"] == "offline" and {x["status"] for x in offline["streams"]} == {"unknown"}
    bridge.state = offline
    expect(page.locator("#tally-head")).to_have_text("NO RECORDER", timeout=20000)
    for b in page.locator("button").all():
        expect(b).to_be_disabled()
    expect(page.locator('#streams tr[data-status="ok"]')).to_have_count(0)
    rows = page.locator("#streams tr")
    expect(rows).to_have_count(len(STREAMS))
    for i in range(len(STREAMS)):
        expect(rows.nth(i).locator("td").nth(1)).to_have_text("-")  # no rate from a gone recorder
    expect(page.locator("#streams-box")).to_have_class("stale")
    expect(page.locator("#session")).to_have_class("stale")
    expect(page.locator("#counters")).to_contain_text("last known")
    grey = page.locator("#counters").evaluate("e => getComputedStyle(e).color")
    assert grey == "rgb(119, 119, 119)", grey
    page.keyboard.press(" ")  # the shortcut does nothing either
    assert bridge.calls == []
    bridge.state = state()  # the recorder is back
    expect(page.locator("#btn-toggle")).to_be_enabled(timeout=20000)


def test_label_fields_show_the_current_labels(console):
    from playwright.sync_api import expect

    bridge, page = console
    for k, v in (("task", "pour water"), ("operator", "ana"), ("scene", "kitchen a"), ("notes", "left hand")):
        expect(page.locator(f"#{k}")).to_have_value(v, timeout=20000)
    bridge.state = state(task="pick cup")  # e.g. next_task from the pedal
    expect(page.locator("#task")).to_have_value("pick cup", timeout=20000)
    page.fill("#operator", "ben")  # what the operator types is not overwritten by the next state
    bridge.state = state(task="pick cup", notes="x")
    expect(page.locator("#notes")).to_have_value("x", timeout=20000)
    expect(page.locator("#operator")).to_have_value("ben")
    page.click("#btn-labels")
    expect(page.locator("#reply")).to_contain_text("operator=ben", timeout=20000)
    assert bridge.labels == {"operator": "ben"}  # only the edited field was sent
    expect(page.locator("#operator")).to_have_value("ben")


def test_episodes_per_hour_not_extrapolated(console):
    from playwright.sync_api import expect

    bridge, page = console
    expect(page.locator("#rate")).to_contain_text("episodes/hour: after 2 episodes and 10 min", timeout=20000)
    bridge.state = state(counters={"kept": 24, "discarded": 1, "success": 20, "failure": 4, "success_rate": 0.83,
                                   "episodes_per_hour": 41.6, "forced": 0})
    expect(page.locator("#rate")).to_contain_text("42 episodes/hour", timeout=20000)


def test_page_fits_a_phone(browser):
    """412 px wide (a common Android phone), with long topic names, reasons and labels."""
    from playwright.sync_api import expect

    long_reason = "/retarget/joint_command_with_a_long_topic_name_from_a_driver silent for 12.3 s (nothing received yet)"
    bridge = FakeBridge(state(state="review", ready=False, tally="amber", reasons=[long_reason], last=LAST,
                              task="pour_water_into_the_cup_on_the_mark_with_the_left_hand_" * 3))
    srv = LiveServer(build_app(bridge, load_key_map()))
    page = browser.new_page(viewport={"width": 412, "height": 915}, device_scale_factor=2.6, is_mobile=True,
                            has_touch=True)
    try:
        page.goto(srv.url + "/")
        expect(page.locator("#streams tr")).to_have_count(len(STREAMS), timeout=20000)  # the state is drawn
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 412, f"the page is {width} px wide on a 412 px phone"
        expect(page.locator("#verdict-word")).to_have_text("FAIL")
    finally:
        page.close()
        srv.close()


def test_hostile_page_in_the_same_browser_cannot_drive_the_console(browser):
    """A page from another origin, open in the operator's browser, posts to the console as a
    ``text/plain`` fetch (no preflight), as a form, and with the JSON a page would send."""
    from playwright.sync_api import expect
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    bridge = FakeBridge(state())
    srv = LiveServer(build_app(bridge, load_key_map()))
    target = srv.url
    hostile = f"""<!doctype html><html><body><form id="f" method="post" action="{target}/api/command/toggle"
      enctype="text/plain" target="sink"><input name='{{"task":"x' value='"}}'></form><iframe name="sink"></iframe>
    <script>
    (async () => {{
      const tries = [
        fetch("{target}/api/command/start", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
                                            body: "{{}}"}}),
        fetch("{target}/api/labels", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
                                      body: JSON.stringify({{task: "pwned"}})}}),
        fetch("{target}/api/command/discard_last", {{method: "POST", headers: {{"Content-Type": "application/json",
                                                   "X-RC-CSRF": "guess.guess"}}, body: "{{}}"}}),
        fetch("{target}/api/state").then(r => r.text()),
      ];
      const out = await Promise.allSettled(tries);
      document.getElementById("f").submit();
      document.title = "done " + out.map(o => o.status).join(",");
    }})();
    </script></body></html>"""
    evil = LiveServer(Starlette(routes=[Route("/", lambda _r: HTMLResponse(hostile))]))
    page = browser.new_page()
    seen = []
    page.on("request", lambda r: seen.append(r.url) if r.url.startswith(target) else None)
    try:
        with page.expect_response(lambda r: r.url == f"{target}/api/command/toggle", timeout=30000) as form:
            page.goto(evil.url + "/")
        expect(page).to_have_title("done fulfilled,fulfilled,rejected,rejected", timeout=30000)
        assert form.value.status == 403
        assert len(seen) >= 4, seen  # the requests did leave the browser
        assert bridge.calls == [] and bridge.labels == {}
    finally:
        page.close()
        evil.close()
        srv.close()
