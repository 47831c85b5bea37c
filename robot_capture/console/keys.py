"""``robot-capture console --keys``: single keys (no Enter) drive the episodes.

A terminal in cbreak mode; each key of the key map (``config/console_keys.yaml``) is one
command sent through the :class:`~robot_capture.console.bridge.RecorderBridge`. A USB
foot pedal is a keyboard, so it works through the same keys. The state line is reprinted
whenever the recorder's state changes. ``q`` (action ``quit``) or Ctrl-C ends.
"""
from __future__ import annotations

import json
import os
import select
import sys
import termios
import tty

from robot_capture.console.text import status_line

__all__ = ["run_keys"]


def run_keys(bridge, key_map, stdin=None, out=None, reply_timeout_s: float = 20.0) -> int:
    """Read keys from ``stdin`` (a tty, or a pipe in tests) until ``quit``/EOF. Returns 0."""
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    fd = stdin.fileno()
    old = termios.tcgetattr(fd) if os.isatty(fd) else None

    def say(line: str) -> None:
        out.write(line.replace("\n", " | ") + "\r\n")
        out.flush()

    legend = ", ".join(f"{'space' if k == ' ' else k}={a}" for k, a in key_map.legend())
    say(f"console on {bridge.recorder}: {legend}")
    last_key = None
    try:
        if old is not None:
            tty.setcbreak(fd)
        while True:
            s = bridge.latest()
            key = (s.get("state"), s.get("episode"), tuple(s.get("reasons") or ()), json.dumps(s.get("counters")))
            if key != last_key:  # a new line when the state changes, not every second of an episode
                say(status_line(s))
                last_key = key
            r, _, _ = select.select([fd], [], [], 0.2)
            if not r:
                continue
            data = os.read(fd, 32)
            if not data:
                return 0
            for ch in data.decode("utf-8", "replace"):
                action = key_map.action(ch)
                if action is None:
                    if ch not in "\r\n":
                        say(f"key {ch!r}: not mapped ({legend})")
                    continue
                if action == "quit":
                    say("bye")
                    return 0
                try:
                    reply = bridge.command(action).result(reply_timeout_s)
                    say(f"{action}: {reply if action != 'status' else 'ok'}")
                except Exception as exc:  # noqa: BLE001 - a refused command is a reply, not a crash
                    say(f"{action}: {exc}")
    except KeyboardInterrupt:
        return 0
    finally:
        if old is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)
