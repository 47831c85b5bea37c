"""Helpers for tests that use DDS (import only inside tests marked ``ros``)."""
from __future__ import annotations

import time

# a bound, not a speed figure: a node starting on a starved machine (imports, URDF, discovery)
# has taken over 10 s here; a test that waits for a node must not fail for that
DISCOVERY_TIMEOUT_S = 30.0


def spin_until(executor, predicate, timeout: float = DISCOVERY_TIMEOUT_S, step: float = 0.02) -> bool:
    """Spin ``executor`` until ``predicate()`` is true or ``timeout`` s pass. Returns predicate()."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=step)
    return bool(predicate())


def wait_until(predicate, timeout: float = DISCOVERY_TIMEOUT_S, step: float = 0.02) -> bool:
    """Sleep-poll ``predicate()`` (for work spinning in other threads/processes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def start_node(module: str, params: dict | None = None, *extra_args: str):
    """Start ``<module>.main()`` of the installed package with ``--ros-args -p k:=v ...`` as a
    child process (same env/domain), through ``robot_capture/floor/_child.py``.

    Returns the ``subprocess.Popen``; stop it with :func:`stop_node` in teardown.
    """
    import subprocess
    import sys

    from robot_capture.floor import _child

    # the installed package's _child.py, not `python -m`: -m puts the working directory (a source
    # checkout without built C extensions) first on sys.path
    args = [sys.executable, _child.__file__, module, "--ros-args"]
    for k, v in (params or {}).items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        args += ["-p", f"{k}:={v}"]
    args += list(extra_args)
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_node(proc, sig=None, timeout: float = 10.0) -> tuple[int, str]:
    """Signal a node process (SIGINT by default), wait, kill on timeout; returns (returncode, output)."""
    import signal
    import subprocess

    if proc.poll() is None:
        proc.send_signal(sig if sig is not None else signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out or ""


def loose_mapping(directory, robot: str = "g1", stale_after_s: float = 30.0, **overrides):
    """A copy of ``config/robots/<robot>.yaml`` whose stale-input limit no loaded machine reaches.

    For tests of what the retarget node computes (stamps, flags, live == offline): on a starved
    2-core machine a fresh input may be handled more than the shipped 0.1 s after its stamp and
    be held as 'stale', which is the staleness rule working, not the behaviour under test (that
    rule has its own tests with inputs stamped in the past). ``overrides``: other top-level keys
    to replace (e.g. ``velocity_limits``). Returns the YAML path.
    """
    from pathlib import Path

    import yaml

    from robot_capture.paths import config_dir

    doc = yaml.safe_load((config_dir() / "robots" / f"{robot}.yaml").read_text())
    if "stale_after_s" in doc:
        doc["stale_after_s"] = float(stale_after_s)
    doc.update(overrides)
    path = Path(directory) / f"{robot}_loose.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
