"""Headless Chromium helpers for the browser tests (Debian's /usr/bin/chromium via Playwright)."""
from __future__ import annotations

import time

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def launch(playwright):
    """Launch Debian's Chromium headless, with the flags this machine needs."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def screenshot(page, path=None, tries: int = 4) -> bytes:
    """``page.screenshot`` with retries.

    Headless Chromium on a starved machine sometimes answers ``Page.captureScreenshot`` with
    "Unable to capture screenshot" (a compositor frame that did not arrive in time); the page is
    fine and the next attempt succeeds. Any other error, or the last attempt's, is raised.
    """
    from playwright.sync_api import Error

    for attempt in range(tries):
        try:
            return page.screenshot(path=path)
        except Error as exc:
            if "capture screenshot" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")
