"""The QA-at-stop worker never outlives its recorder (robot_capture.qa.recorder._worker_init).

A recorder SIGKILLed while its spawned worker was still starting left the worker orphaned for
good (PR_SET_PDEATHSIG armed after the parent had died; blocked on its own task pipe): the
initializer must exit when its parent is no longer the recorder that made it.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")

CHILD = ("import os, sys; from robot_capture.qa.recorder import _worker_init; "
         "_worker_init(0, int(sys.argv[1]) if sys.argv[1] != 'mine' else os.getppid()); print('alive', flush=True)")


def test_worker_exits_when_its_recorder_is_gone():
    gone = subprocess.run([sys.executable, "-c", CHILD, "1"], capture_output=True, text=True, timeout=120, cwd="/")
    assert gone.returncode == 0 and "alive" not in gone.stdout, gone


def test_worker_stays_while_its_recorder_lives():
    ok = subprocess.run([sys.executable, "-c", CHILD, "mine"], capture_output=True, text=True, timeout=120, cwd="/")
    assert ok.returncode == 0 and "alive" in ok.stdout, ok
