"""A native library's ANSI colour codes never reach a piped stdout/stderr (issue 23)."""
from __future__ import annotations

import subprocess
import sys

CHILD = r"""
import os, sys
from robot_capture.cli.plain_stderr import strip_ansi_when_piped
filtered = strip_ansi_when_piped()
# as Fast DDS does: straight to the descriptor, past Python, a code split across writes
os.write(2, b"\x1b[31;1m2026 [RTPS_TRANSPORT_SHM Error] open_and_lock_file failed\x1b[0m\n")
os.write(2, b"half \x1b[3")
os.write(2, b"1mcoloured\x1b[0m done\n")
print("python line", sorted(filtered), flush=True)
sys.stderr.write("\x1b[33mwarned\x1b[0m\n")
"""


def test_piped_output_has_no_ansi_codes():
    p = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert b"\x1b" not in p.stderr and b"\x1b" not in p.stdout
    assert b"[RTPS_TRANSPORT_SHM Error] open_and_lock_file failed\n" in p.stderr
    assert b"half coloured done\n" in p.stderr
    assert b"warned\n" in p.stderr
    assert p.stdout == b"python line [1, 2]\n"


def test_record_verb_filters_its_output():
    """`robot-capture record` installs the filter before the node (and Fast DDS) start."""
    import inspect

    from robot_capture.cli import record

    src = inspect.getsource(record.run)
    assert src.index("strip_ansi_when_piped()") < src.index("recorder_node.run(")
