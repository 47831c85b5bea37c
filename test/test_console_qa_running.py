"""While the full QA at stop runs (issue 18), the consoles say so: ``QA running…``, then the
verdict, or ``QA error: <reason>``; never a bare "no verdict yet".

The state comes from a real Recorder core and EpisodeManager on a fake clock (as
test_console_state_truth.py); the keys console's text (``console/text.py``) is checked on it
directly, the web page in headless Chromium through the fake bridge (``_console_fake``), every
wait on the page's state (Playwright's ``expect``), never on time.
"""
from __future__ import annotations

import pytest
from _console_fake import READY, FakeBridge, LiveServer

import _browser
from robot_capture.console.commands import load_key_map
from robot_capture.console.manager import EpisodeManager
from robot_capture.console.text import status_lines
from robot_capture.console.web import build_app
from robot_capture.episodes import Finding, Verdict
from robot_capture.record.episode import EpisodeInfo
from robot_capture.record.recorder import Recorder

JS = "sensor_msgs/msg/JointState"
S = 1_000_000_000


class Clock:
    def __init__(self):
        self.t = 1_800_000_000 * S

    def __call__(self):
        return self.t


def _stopped(tmp_path, name="a"):
    """An EpisodeManager whose one episode has just stopped, its full QA running."""
    clock = Clock()
    rec = Recorder(tmp_path / name, disk_min_free_bytes=0)
    rec.add_topic("/a", JS)
    m = EpisodeManager(rec, {"/a": 100.0}, clock=clock)
    m.qa_at_stop = True  # as the recorder node (robot_capture.nodes._recorder_console)
    m.start(EpisodeInfo(task="t", operator="op"), force=True)  # /a unseen: not ready
    for _ in range(50):
        clock.t += S // 100
        rec.on_message("/a", JS, b"\x00\x01\x00\x00", clock.t)
    m.stop(True)
    return m


def test_keys_console_says_qa_running_then_the_verdict_or_the_error(tmp_path):
    m = _stopped(tmp_path)
    name = m.status()["last"]["name"]
    last_line = status_lines(m.status())[-1]
    assert last_line == f"last episode: {name} (success, stopped); QA running…", last_line
    m.verdict_ready(name, Verdict(findings=[Finding("gaps", "warn", "/a: 3 messages missing", "/a")], source="qa"))
    assert status_lines(m.status())[-1].endswith("; QA warn: /a: 3 messages missing")
    m2 = _stopped(tmp_path, "b")
    name2 = m2.status()["last"]["name"]
    m2.verdict_ready(name2, error="bag cannot be read: no footer")
    assert status_lines(m2.status())[-1] == f"last episode: {name2} (success, stopped); QA error: bag cannot be read: " \
                                            "no footer"


@pytest.mark.skipif(bool(_browser.MISSING), reason=_browser.MISSING or "-")
@pytest.mark.timeout(300)
def test_web_page_says_qa_running_then_the_verdict_or_the_error(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    m = _stopped(tmp_path)
    name = m.status()["last"]["name"]
    bridge = FakeBridge(dict(READY, **{k: v for k, v in m.status().items() if k in ("state", "last", "counters")}))
    assert bridge.state["state"] == "review" and bridge.state["last"]["qa"] == "running"
    srv = LiveServer(build_app(bridge, load_key_map()))
    with sync_playwright() as p:
        browser = _browser.launch(p)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            page.goto(srv.url + "/")
            expect(page.locator("#verdict-word")).to_have_text("QA RUNNING…", timeout=20000)
            expect(page.locator("#last")).to_contain_text("QA running…")
            expect(page.locator("#last")).not_to_contain_text("pending")
            m.verdict_ready(name, Verdict(source="qa"))
            bridge.state = dict(bridge.state, last=m.status()["last"])
            expect(page.locator("#verdict-word")).to_have_text("PASS", timeout=20000)
            expect(page.locator("#last")).to_contain_text("QA PASS")
            m.verdict_ready(name, error="QA worker died: MemoryError")
            bridge.state = dict(bridge.state, last=m.status()["last"])
            expect(page.locator("#verdict-word")).to_have_text("QA ERROR", timeout=20000)
            expect(page.locator("#verdict-reasons li")).to_have_text(["QA worker died: MemoryError"])
            expect(page.locator("#last")).to_contain_text("QA error: QA worker died: MemoryError")
        finally:
            browser.close()
            srv.close()

