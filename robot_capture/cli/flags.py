"""Checks of flag values that name the flag, not the config file the value would have replaced.

``up --robot g2`` used to answer ``floor.yaml: robot: unknown robot 'g2'``: the check ran on
the config after the override, so the message named a file the user had not touched. The
verbs that take ``--robot`` (up, demo, retarget) check it here first.
"""
from __future__ import annotations

import difflib

__all__ = ["did_you_mean", "robot_flag_problem"]


def did_you_mean(word: str, choices, cutoff: float = 0.5) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices`` (difflib ratio >= ``cutoff``:
    0.5 lets a one-character slip in a two-letter name through, ``g2`` -> ``g1``), else ``""``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""


def robot_flag_problem(robot: str, flag: str = "--robot") -> str:
    """'' when ``robot`` names a known robot or an existing mapping YAML, else the one-line
    error: ``--robot g2: unknown robot 'g2' (did you mean 'g1'?); known: g1, h1, kuavo ...``."""
    from robot_capture.paths import known_robots, resolve_robot

    if not robot:
        return ""
    try:
        resolve_robot(robot)
    except FileNotFoundError as exc:  # a path: "robot mapping X: no such file"
        return f"{flag}: {exc}"
    except KeyError:
        known = known_robots()
        return (f"{flag} {robot}: unknown robot {robot!r}{did_you_mean(robot, known)}; "
                f"known: {', '.join(known)} (or a mapping YAML path)")
    return ""
