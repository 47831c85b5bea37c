"""A fresh machine without Chromium (issue 18, "Fresh machine").

``make test`` installs Debian's chromium as root with apt-get (the Makefile's ``browser``
target); where it cannot, it says so and the browser tests skip with that reason: none fails,
and none records a floor first only to fail at the browser launch.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BROWSER_TESTS = ["test/test_qa_defects.py::test_report_of_a_day_in_headless_chromium",
                 "test/test_console_floor.py::test_web_console_in_headless_chromium",
                 "test/test_console_web_page.py"]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_browser_without_chromium_or_apt_says_the_tests_will_skip(tmp_path):
    bin_dir = tmp_path / "bin"  # a PATH with `id` but no apt-get: a machine where we cannot install
    bin_dir.mkdir()
    (bin_dir / "id").symlink_to(shutil.which("id"))
    p = subprocess.run([shutil.which("make"), "-s", "-C", str(REPO), "browser", f"CHROMIUM={tmp_path}/no-chromium"],
                       capture_output=True, text=True, timeout=60, env={"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    assert "browser tests will skip" in p.stdout and "root and apt-get" in p.stdout, p.stdout


@pytest.mark.timeout(600)
def test_browser_tests_skip_with_the_reason_when_chromium_is_missing(tmp_path):
    env = dict(os.environ, ROBOT_CAPTURE_CHROMIUM=str(tmp_path / "no-chromium"))
    p = subprocess.run([str(Path(sys.executable).parent / "pytest"), "-p", "no:xdist", "-p", "no:cacheprovider",
                        "-rs", "-q", *BROWSER_TESTS], cwd=REPO, env=env, capture_output=True, text=True, timeout=540)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    assert re.search(r"\b\d+ skipped\b", out) and " passed" not in out, out[-3000:]
    assert "failed" not in out and "error" not in out.lower(), out[-3000:]
    assert "needs Debian's Chromium at" in out, out[-3000:]
