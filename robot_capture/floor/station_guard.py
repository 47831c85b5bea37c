"""One station per ROS domain and namespace: checked before any node of a station publishes.

Two floors on one domain mix their data: a second ``robot-capture up`` once published its
robot_sim, retarget and mocap_replay streams into the first floor's running episode for
about 4 s (29-joint ``/joint_states`` among the 23-joint robot's, and a second retarget
node commanding the robot). So before a bring-up (``up``, and both launch files through
:func:`claim_station`) starts a node, two checks run:

1. **This host**: an exclusive ``flock`` on ``<lock dir>/station-d<domain>-<namespace>.lock``,
   held for the life of the bring-up process. The kernel drops it when that process dies
   (even by SIGKILL), so a crash never leaves a stale claim. The file names the holder.
2. **Any host on the domain**: a short DDS probe (a child process, with the floor's DDS
   settings) looks for a node named ``recorder`` or ``retarget`` in the station's
   namespace. A node found there is asked for its parameter list: a live node answers; the
   graph entry of a SIGKILLed node (it lingers for the DDS lease, about 20 s here) does not
   and is reported as stale, not as a station.

Either finding raises :class:`StationBusyError` with one line naming the other station.
A duplicate that appears later is the nodes' business (``nodes/_duplicate.py``: a node
that sees another node of its own name stops publishing at once).

ROS-free: the probe's rclpy code runs in ``floor/_station_probe.py``, a child process.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["StationBusyError", "StationClaim", "claim_station", "claim_for_specs", "lock_dir", "probe_domain",
           "PROBE_NODES", "DEFAULT_PROBE_S"]

#: node names (in the station's namespace) that make a station: another one of these means another station
PROBE_NODES = ("recorder", "retarget")
#: default DDS probe window, s: covers Fast DDS's initial announcements (5 x 0.1 s) with margin
DEFAULT_PROBE_S = 2.0


class StationBusyError(RuntimeError):
    """Another station runs on this ROS domain and namespace; the message says which, in one line."""


def lock_dir() -> Path:
    """Where station locks live: ``$ROBOT_CAPTURE_LOCK_DIR``, else ``<tmp>/robot_capture-locks``."""
    env = os.environ.get("ROBOT_CAPTURE_LOCK_DIR")
    return Path(env) if env else Path(tempfile.gettempdir()) / "robot_capture-locks"


def _domain() -> str:
    return os.environ.get("ROS_DOMAIN_ID", "").strip() or "0"


def _ns_label(namespace: str) -> str:
    return "/" + namespace.strip("/") if namespace.strip("/") else "/"


@dataclass
class StationClaim:
    """A held station lock; :meth:`release` (or process exit) frees it."""

    path: Path
    fd: int | None

    def release(self) -> None:
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None

    def __enter__(self) -> "StationClaim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _lock(namespace: str, what: str) -> StationClaim:
    d = lock_dir()
    d.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(d, 0o1777)  # shared by every user of the host, like /tmp
    except OSError:
        pass
    ns = namespace.strip("/").replace("/", "_") or "root"
    path = d / f"station-d{_domain()}-{ns}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
        except ValueError:
            holder = {}
        os.close(fd)
        since = time.strftime("%H:%M:%S", time.localtime(holder.get("since", 0))) if holder.get("since") else "?"
        raise StationBusyError(
            f"another station is up on ROS_DOMAIN_ID {_domain()}, namespace {_ns_label(namespace)}: "
            f"{holder.get('what', 'a robot_capture bring-up')} (pid {holder.get('pid', '?')}, since {since}); "
            "stop it, or give this station its own ROS_DOMAIN_ID") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "what": what,
                              "since": time.time()}).encode(), 0)
    return StationClaim(path, fd)


def probe_domain(namespace: str, wait_s: float = DEFAULT_PROBE_S, env: dict | None = None,
                 timeout_s: float = 60.0) -> list[dict]:
    """Look for :data:`PROBE_NODES` in ``namespace`` on this ROS domain, through DDS.

    Runs ``floor/_station_probe.py`` in a child process (so this module stays ROS-free and
    the probe gets the floor's DDS settings ``env``), listening for ``wait_s`` seconds.

    Returns ``[{"node": "/recorder", "alive": bool}]`` (alive: it answered a parameter
    request). An empty list when none was seen, or when the probe could not run (no rclpy:
    the lock still guards this host; the reason goes to stderr).
    """
    from robot_capture.floor import _station_probe

    argv = [sys.executable, str(Path(_station_probe.__file__).resolve()), namespace, str(float(wait_s)),
            ",".join(PROBE_NODES)]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                             env={**os.environ, "RCUTILS_COLORIZED_OUTPUT": "0", **(env or {})})
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"[up] station probe did not run ({exc}); only this host is checked", file=sys.stderr)
        return []
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("PROBE "):
            try:
                return list(json.loads(line[6:]))
            except ValueError:
                break
    err = (out.stderr.strip().splitlines() or ["no output"])[-1]
    print(f"[up] station probe failed ({err}); only this host is checked", file=sys.stderr)
    return []


def claim_station(namespace: str = "", what: str = "robot-capture up", probe_s: float = DEFAULT_PROBE_S,
                  env: dict | None = None, log=None) -> StationClaim:
    """Claim the station slot of this domain and ``namespace`` before any node starts.

    Args:
        namespace: the station namespace (config ``station``; '' = the root namespace).
        what: how the holder is named to a second bring-up ("robot-capture up", "ros2 launch ...").
        probe_s: DDS probe window in s (0 = this host's lock only).
        env: the floor's DDS environment (``NodeSpec.env`` of its nodes) for the probe.
        log: ``str -> None`` for the one-line notes (stale entries seen).

    Returns the held :class:`StationClaim` (keep it for the life of the bring-up).

    Raises:
        StationBusyError: another station holds this host's lock, or a live recorder or
            retarget node answers in the namespace on this domain.
    """
    claim = _lock(namespace, what)
    if probe_s <= 0:
        return claim
    found = probe_domain(namespace, probe_s, env)
    live = [f["node"] for f in found if f.get("alive")]
    stale = [f["node"] for f in found if not f.get("alive")]
    if stale and log is not None:
        log(f"ignoring {', '.join(stale)} on ROS_DOMAIN_ID {_domain()}: a stale DDS entry (it did not answer; "
            "a node killed in the last ~20 s)")
    if live:
        claim.release()
        raise StationBusyError(
            f"another station is up on ROS_DOMAIN_ID {_domain()}, namespace {_ns_label(namespace)}: "
            f"{' and '.join(live)} answer{'s' if len(live) == 1 else ''} there (another PC or user); stop it, "
            "or give this station its own ROS_DOMAIN_ID")
    return claim


def default_probe_s() -> float:
    """``$ROBOT_CAPTURE_STATION_PROBE_S`` (s, >= 0), else :data:`DEFAULT_PROBE_S`."""
    try:
        v = float(os.environ.get("ROBOT_CAPTURE_STATION_PROBE_S", DEFAULT_PROBE_S))
    except ValueError:
        return DEFAULT_PROBE_S
    return v if v >= 0 and v == v and v != float("inf") else DEFAULT_PROBE_S


def claim_for_specs(specs, what: str, probe_s: float | None = None, log=None) -> StationClaim:
    """:func:`claim_station` for a floor graph (its namespace and its nodes' DDS settings).

    ``probe_s`` None = :func:`default_probe_s`. Raises :class:`StationBusyError`.
    """
    specs = list(specs)
    namespace = next((s.namespace for s in specs if s.role == "recorder"), specs[0].namespace if specs else "")
    env = next((dict(s.env) for s in specs if s.env), {})
    return claim_station(namespace or "", what, default_probe_s() if probe_s is None else probe_s, env, log)
