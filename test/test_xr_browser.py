"""The headset page in a real browser: Debian's headless Chromium runs the page's own WebXR frame loop on
an emulated Meta Quest 3 (iwer, Meta's WebXR emulation runtime), fed the shipped Quest hand poses; the
ROS-free server checks and converts every frame. Also: a controller trigger press turns the tally red
(the fake station starts "recording" on the Joy toggle button, as the recorder's Joy map does), and closing
the page mid-episode is flagged as a drop.

iwer comes from npm, never from this repository: ``make test`` installs it under ``build/iwer`` (``make
iwer``); ``ROBOT_CAPTURE_IWER`` names another ``node_modules/iwer/build`` folder.
The server serves that folder at ``/emulator/`` only because this test builds the app so, and the page
loads it only for ``?emulate=quest3``.
"""
from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from _browser import launch, require_chromium

IWER = Path(os.environ.get("ROBOT_CAPTURE_IWER")
            or Path(__file__).resolve().parents[1] / "build/iwer/node_modules/iwer/build")
POSES = (0, 12, 33)  # recorded poses fed one after the other (of 55 per hand)
WAIT_MS = 120_000  # a bound for page state on a starved machine (Playwright's own default is 30 s), not a speed


def _wait_js(page, expr: str) -> None:
    """Wait until ``expr`` (an expression, or an arrow function's text) is truthy in the page.

    Polled with ``page.evaluate`` (DevTools, exempt from the page's CSP), not ``wait_for_function``:
    that one re-evaluates a string predicate with eval, which the page's CSP (script-src 'self')
    refuses once the first check was false, i.e. on a slow machine."""
    call = f"({expr})()" if expr.lstrip().startswith("()") else expr
    deadline = time.monotonic() + WAIT_MS / 1000
    while not page.evaluate(call):
        assert time.monotonic() < deadline, f"page never reached: {expr}"
        page.wait_for_timeout(50)


def _need_iwer():
    if not (IWER / "iwer.module.js").is_file():
        pytest.skip(f"needs iwer (npm install iwer; ROBOT_CAPTURE_IWER): {IWER}/iwer.module.js not found")


@pytest.fixture
def station(tmp_path):
    """The xr app on https://127.0.0.1:<port>/ (uvicorn thread) with a fake station state."""
    pytest.importorskip("uvicorn")
    import socket

    import uvicorn

    from robot_capture.xr.certs import ensure_certificate
    from robot_capture.xr.server import WS_MAX_SIZE, build_app
    from robot_capture.xr.session import XrHub

    _need_iwer()
    require_chromium()
    cert, key, _ = ensure_certificate(tmp_path / "xr", dns=["localhost"], ips=["127.0.0.1"])
    st = {"state": "ready", "tally": "green", "episode": "", "elapsed_s": 0.0}
    samples = []

    def sink(s):
        samples.append(s)
        if s.buttons and s.buttons[0] == 1 and st["state"] == "ready":  # config/console_joy.yaml: 0 = toggle
            st.update(state="recording", tally="red", episode="xr_browser_0000")

    hub = XrHub(sink, state=lambda: dict(st))
    app = build_app(hub, state=lambda: dict(st), cert=cert, emulator_dir=IWER)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="auto",
                                           ws_max_size=WS_MAX_SIZE, ssl_certfile=str(cert), ssl_keyfile=str(key)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:  # state: bound, or the thread died
        assert thread.is_alive(), "the xr server did not start"
        thread.join(0.05)
    yield {"url": f"https://127.0.0.1:{port}/", "hub": hub, "samples": samples, "state": st}
    server.should_exit = True
    thread.join(30)


_FEED = """([side, name, positions]) => {
  const dev = window.xrDevice, P = window.iwer.P_HAND_INPUT;
  const hand = dev.hands[side];
  const jt = {};
  positions.forEach((p, i) => {
    // iwer mirrors right-hand poses in x (its poses are left hands): hand it the right data pre-mirrored
    const x = side === "right" ? -p[0] : p[0];
    jt[JOINTS_[i]] = { offsetMatrix: new Float32Array([1,0,0,0, 0,1,0,0, 0,0,1,0, x,p[1],p[2],1]), radius: 0.008 };
  });
  hand[P].poses[name] = { jointTransforms: jt };  // one poses table for both hands: names per side
  hand.poseId = name;
  return true;
}"""


def _describe(samples, poses, k) -> str:
    from robot_capture.retarget.hand_tracking import webxr_to_openxr

    if not samples:
        return "none"
    s = samples[-1]
    out = f"hands {sorted(s.hands)} wrists {sorted(s.wrists)}"
    for side, h in s.hands.items():
        want = webxr_to_openxr(poses[side][k].positions, s.wrists[side], side)
        out += f"; {side} max error {np.abs(h - want).max():.3g} m, pos {np.abs(h[:, :3, 3] - want[:, :3, 3]).max():.3g}"
    return out


def test_page_streams_emulated_quest_hands_and_controllers(station):
    from playwright.sync_api import expect, sync_playwright

    from robot_capture.retarget.hand_tracking import (WEBXR_HAND_JOINTS, load_webxr_hand_poses, webxr_sample_path,
                                                      webxr_to_openxr)
    from ros_util import wait_until

    poses = {s: load_webxr_hand_poses(webxr_sample_path(s)) for s in ("left", "right")}
    feed = _FEED.replace("JOINTS_", repr(list(WEBXR_HAND_JOINTS)))
    samples, hub = station["samples"], station["hub"]

    def hands_match(k: int) -> bool:
        for s in reversed(samples[-20:]):
            if set(s.hands) == {"left", "right"} and all(np.allclose(
                    s.hands[side], webxr_to_openxr(poses[side][k].positions, s.wrists[side], side), atol=1e-4)
                    for side in ("left", "right")):
                return True
        return False

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_context(ignore_https_errors=True).new_page()
            page.goto(station["url"] + "?emulate=quest3")
            _wait_js(page, "window.xrReady === true")
            expect(page.locator("#tally")).to_have_class("green")
            expect(page.locator("#enter")).to_be_enabled()
            page.click("#enter")
            _wait_js(page, "window.xrStats && window.xrStats.session === true")
            page.evaluate("""() => { const d = window.xrDevice; d.primaryInputMode = 'hand';
                d.hands.left.position.set(-0.25, 1.5, -0.4); d.hands.left.quaternion.set(0, 0, 0, 1);
                d.hands.right.position.set(0.25, 1.5, -0.4); d.hands.right.quaternion.set(0, 0, 0, 1); }""")
            for k in POSES:
                for side in ("left", "right"):
                    page.evaluate(feed, [side, f"rc{k}_{side}", (poses[side][k].positions).tolist()])
                assert wait_until(lambda: hands_match(k), timeout=60), (
                    f"pose {k} never arrived as sent: {len(samples)} frames, last {_describe(samples, poses, k)}, "
                    f"page {page.evaluate('() => JSON.stringify(window.xrStats)')}")
            # REP-103 by hand: WebXR (x right, y up, -z forward) -> x = -z, y = -x, z = y; a WebXR joint frame at
            # identity is, in vr_world, -z toward the fingers = forward, and x toward the thumb: -y (left
            # hand's thumb points right) / +y (right hand, a half turn about z)
            last = samples[-1]
            np.testing.assert_allclose(last.wrists["left"][:3, 3], [0.4, 0.25, 1.5], atol=1e-5)
            np.testing.assert_allclose(last.wrists["right"][:3, 3], [0.4, -0.25, 1.5], atol=1e-5)
            np.testing.assert_allclose(last.wrists["left"][:3, :3], [[0, 0, -1], [-1, 0, 0], [0, 1, 0]], atol=1e-5)
            np.testing.assert_allclose(last.wrists["right"][:3, :3], [[0, 0, -1], [1, 0, 0], [0, -1, 0]], atol=1e-5)
            page.evaluate("() => { window.xrDevice.primaryInputMode = 'controller'; }")
            assert wait_until(lambda: samples[-1].buttons is not None, timeout=60)
            assert station["state"]["state"] == "ready"
            page.evaluate("() => window.xrDevice.controllers.right.updateButtonValue('trigger', 1)")
            expect(page.locator("#tally")).to_have_class("red")
            expect(page.locator("#tally")).to_contain_text("REC xr_browser_0000")
            expect(page.locator("#latency")).to_contain_text(re.compile(r"station round trip \d+\.\d ms \| XR \d+ fps"))
            # the same words in the headset's panel (a texture drawn in each eye's view, no GL error)
            _wait_js(page, "() => (window.xrStats.vrTally || '').startsWith('REC xr_browser_0000')")
            _wait_js(page, "() => (window.xrStats.vrLatency || '').startsWith('station round trip')")
            assert page.evaluate("() => window.xrStats.glError || 0") == 0
            shot = os.environ.get("ROBOT_CAPTURE_XR_SCREENSHOT")  # docs/xr_headset.png was made so
            if shot:
                from _browser import screenshot

                screenshot(page, path=shot)
            errors = page.evaluate("() => window.xrStats.errors")
            page.close()  # the headset's page goes away mid-episode: the loss is flagged, never silent
            assert wait_until(lambda: hub.drops, timeout=60)
            assert hub.drops[0]["episode"] == "xr_browser_0000"
        finally:
            browser.close()
    assert errors == [], errors
    assert hub.latency.refused_total == 0
    assert len(samples) >= 10
    for s in samples:
        assert np.isfinite(s.head).all() and all(h.shape == (26, 4, 4) for h in s.hands.values())
    seqs = [s.seq for s in samples]
    assert seqs == sorted(seqs)
