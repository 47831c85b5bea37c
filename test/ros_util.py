"""Helpers for tests that use DDS (import only inside tests marked ``ros``)."""
from __future__ import annotations

import time

DISCOVERY_TIMEOUT_S = 10.0  # discovery sometimes takes ~3 s here; never wait less than 5 s


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
