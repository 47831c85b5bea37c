"""Ctrl-C in a terminal reaches the whole foreground process group: `robot-capture record`
must close the episode without a traceback from its QA worker (issue 23: the worker died of a
KeyboardInterrupt and the episode got "no verdict (the QA worker died)")."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ros_util import wait_until


@pytest.mark.ros
@pytest.mark.timeout(300)
def test_ctrl_c_to_the_process_group_closes_the_episode_without_a_traceback(tmp_path, monkeypatch):
    run = Path(tempfile.mkdtemp(prefix="rc_run_"))  # short socket folder
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    out = tmp_path / "rec"
    log = tmp_path / "record.log"
    exe = str(Path(sys.executable).parent / "robot-capture")
    with open(log, "wb") as fh:
        proc = subprocess.Popen([exe, "record", "-o", str(out), "--node-name", "ctrlcrec", "/ctrl_c_topic"],
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            # the worker is what Ctrl-C used to kill: wait until the recorder has spawned it
            def ready():
                kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
                return bool(kids) and "auto_start: recording" in log.read_text(errors="replace")
            assert wait_until(lambda: ready() or proc.poll() is not None, 120), log.read_text()
            assert proc.poll() is None, log.read_text()
            os.killpg(proc.pid, signal.SIGINT)  # as the terminal does
            proc.wait(120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            shutil.rmtree(run, ignore_errors=True)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text
    assert "QA worker died" not in text, text
    assert "episode closed" in text, text
    assert [p for p in out.iterdir() if p.is_dir()], text
