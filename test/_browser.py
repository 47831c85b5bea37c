"""Headless Chromium helpers for the browser tests (Debian's /usr/bin/chromium via Playwright).

* :data:`MISSING` / :func:`require_chromium`: a browser test skips, with the reason, only
  where Chromium is absent and could not be installed (``make test`` installs Debian's
  ``chromium`` as root with apt-get, see the Makefile's ``browser`` target); it never fails for it.
* :func:`launch`: the browser, with flags that keep a starved headless renderer drawing.
* :func:`wait_drawn`: wait until the page has produced fresh frames (page state, not time).
* :func:`screenshot`: a screenshot taken once the page has drawn, never after a fixed sleep.

Every wait here is on page state; none sleeps for a fixed time.
"""
from __future__ import annotations

import os
import shutil
import time

#: Debian's Chromium; ``ROBOT_CAPTURE_CHROMIUM`` names another Chromium build (e.g. a CI runner's)
CHROMIUM = os.environ.get("ROBOT_CAPTURE_CHROMIUM") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 # a loaded machine must not make Chromium throttle or skip the page's work: timers
                 # (SSE reconnects, renders) and frames keep running although nobody looks at the page
                 "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                 "--disable-backgrounding-occluded-windows"]


def _missing() -> str:
    if os.access(CHROMIUM, os.X_OK):
        return ""
    how = ("`make test` installs it when run as root with apt-get; or: sudo apt-get install chromium"
           if shutil.which("apt-get") else "install Debian's chromium package")
    return f"needs Debian's Chromium at {CHROMIUM}, which is not installed ({how})"


#: why the browser tests cannot run here ("" when they can); for ``pytest.mark.skipif``
MISSING = _missing()


def require_chromium() -> None:
    """Skip the calling test, saying why, when Chromium is not installed here."""
    import pytest

    if MISSING:
        pytest.skip(MISSING)


#: Playwright's ``expect`` waits this long by default (its own default, 5 s, is a lucky moment on a
#: starved machine); a bound, never a speed figure
EXPECT_TIMEOUT_MS = 30_000


def launch(playwright):
    """Launch Debian's Chromium headless, with the flags this machine needs; ``expect`` then
    waits up to :data:`EXPECT_TIMEOUT_MS` for page state unless a test says otherwise."""
    from playwright.sync_api import expect

    require_chromium()
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


_TWO_FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"


def wait_drawn(page, timeout_ms: float = 60_000) -> None:
    """Block until the page's fonts are loaded and it has produced two new animation frames.

    A frame callback runs only when the renderer actually draws, so after this the compositor
    has a current frame for ``Page.captureScreenshot`` (page state, not a sleep). ``timeout_ms``
    is a bound for a starved machine, not a speed figure.
    """
    # polled with page.evaluate (DevTools, exempt from the page's CSP), never wait_for_function: that one
    # re-evaluates a string predicate with eval, which the pages' CSP refuses once a first check was false
    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate("() => document.readyState === 'complete'"):
        assert time.monotonic() < deadline, "the page never finished loading"
        page.wait_for_timeout(50)
    page.evaluate("() => document.fonts ? document.fonts.ready.then(() => true) : true")
    page.evaluate(_TWO_FRAMES)


def screenshot(page, path=None, tries: int = 4) -> bytes:
    """``page.screenshot`` once the page has drawn (:func:`wait_drawn`), animations stopped.

    Headless Chromium on a starved machine has answered ``Page.captureScreenshot`` with
    "Unable to capture screenshot" when no compositor frame was ready; each attempt therefore
    first waits for fresh frames, and that error is retried (after new frames, never a sleep)
    up to ``tries`` times. Any other error, or the last attempt's, is raised.
    """
    from playwright.sync_api import Error

    for attempt in range(tries):
        wait_drawn(page)
        try:
            return page.screenshot(path=path, animations="disabled", caret="hide", timeout=60_000)
        except Error as exc:
            if "capture screenshot" not in str(exc) or attempt == tries - 1:
                raise
    raise AssertionError("unreachable")
