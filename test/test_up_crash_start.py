"""`up` after a crash (issue 23): the supervisor removes dead processes' Fast DDS shared-memory
files before it starts the nodes, says so in one line, and no terminal colour code of a node
(Fast DDS colours its log lines) reaches `up`'s output or logs."""
from __future__ import annotations

import io
import os
import sys
import time

from robot_capture import dds_shm
from robot_capture.floor import launcher
from robot_capture.floor.graph import NodeSpec

COLOURED = ("print('\\x1b[31;1m2026-12-07 [RTPS_TRANSPORT_SHM Error] Failed init_port fastdds_port7411: "
            "open_and_lock_file failed\\x1b[0m -> Function open_port_internal\\x1b[m', flush=True)")


def _spec(name="recorder"):
    return NodeSpec(role="recorder", name=name, executable="recorder_node", module="robot_capture.nodes.recorder_node",
                    parameters={}, shutdown_timeout_s=5.0)


def _run(tmp_path, code: str) -> str:
    out = io.StringIO()
    sup = launcher.Supervisor([_spec()], workdir=tmp_path / "w", out=out,
                              command=lambda spec, pfile: [sys.executable, "-c", code])
    (tmp_path / "w").mkdir(exist_ok=True)
    sup.start()
    end = time.monotonic() + 30
    while sup.alive() and time.monotonic() < end:
        time.sleep(0.05)
    sup.shutdown()
    return out.getvalue()


def test_no_terminal_colour_codes_in_up_output(tmp_path):
    text = _run(tmp_path, COLOURED)
    assert "[recorder] 2026-12-07 [RTPS_TRANSPORT_SHM Error] Failed init_port fastdds_port7411" in text
    assert "\x1b" not in text, repr(text)


def test_up_removes_dead_processes_shm_files_first(tmp_path, monkeypatch):
    shm = tmp_path / "shm"
    shm.mkdir()
    dead = ["fastdds_port7411", "fastdds_port7411_el", "sem.fastdds_port7411_mutex"]
    for n in dead:
        (shm / n).write_bytes(b"")
        os.utime(shm / n, (time.time() - 10,) * 2)
    monkeypatch.setattr(dds_shm, "SHM_DIR", shm)
    text = _run(tmp_path, "print('up', flush=True)")
    first = text.splitlines()[0]
    assert first == "[up] cleaned 3 stale Fast DDS shared-memory files of dead processes (kept 0 in use)", text
    assert os.listdir(shm) == []
    assert "[recorder] up" in text
