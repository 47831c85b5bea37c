"""The console's command set, and the keyboard and VR-controller (``sensor_msgs/Joy``) maps.

ROS-free. Every way of driving an episode (CLI verbs, ``console --keys``, Joy buttons, the
web console) names the same commands, and each command is one recorder service
(``<recorder>/<service>``, std_srvs/Trigger; :data:`SERVICES`):

==================  ============================  =============================================
command             service                       effect
==================  ============================  =============================================
start               start_episode                 start, refused while a required stream is not fresh
start_forced        start_episode_forced          start anyway; the episode is flagged ``forced``
toggle              toggle_episode                start when not recording, else stop unlabelled
stop                stop_episode                  stop, label from parameter ``episode_success``
success             stop_episode_success          stop, labelled success
failure             stop_episode_failure          stop, labelled failure
discard             discard_episode               stop and move the bag to ``<output_dir>/discarded/``
discard_last        discard_last                  move the last kept episode to ``discarded/`` (REVIEW)
relabel             relabel_last                  relabel the last episode from ``relabel_*`` parameters
relabel_success     relabel_last_success          relabel the last episode: success
relabel_failure     relabel_last_failure          relabel the last episode: failure
next_task           next_task                     the next task of parameter ``tasks``
status              status                        JSON of the state, streams and counters
==================  ============================  =============================================

Key and Joy maps are YAML files validated by pydantic models (``config_schema``):
``config/console_keys.yaml`` and ``config/console_joy.yaml``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from robot_capture.config_schema import STRICT_KEYS, ConfigError, RosTopic, load_yaml, suggest, validate

__all__ = ["COMMANDS", "SERVICES", "CommandError", "KeyMap", "JoyMap", "JoyMapper", "check_command",
           "load_key_map", "load_joy_map", "key_name"]

SERVICES = {
    "start": "start_episode", "start_forced": "start_episode_forced", "toggle": "toggle_episode",
    "stop": "stop_episode", "success": "stop_episode_success", "failure": "stop_episode_failure",
    "discard": "discard_episode", "discard_last": "discard_last", "relabel": "relabel_last",
    "relabel_success": "relabel_last_success", "relabel_failure": "relabel_last_failure",
    "next_task": "next_task", "status": "status",
}
COMMANDS = tuple(SERVICES)
Command = Literal["start", "start_forced", "toggle", "stop", "success", "failure", "discard", "discard_last",
                  "relabel", "relabel_success", "relabel_failure", "next_task", "status"]
KeyAction = Literal["start", "start_forced", "toggle", "stop", "success", "failure", "discard", "discard_last",
                    "relabel_success", "relabel_failure", "next_task", "status", "quit"]
JoyAction = Literal["start", "start_forced", "toggle", "stop", "success", "failure", "discard", "discard_last",
                    "relabel_success", "relabel_failure", "next_task"]

#: key names accepted in a key map besides single characters
KEY_NAMES = {"space": " ", "enter": "\r", "return": "\r", "tab": "\t", "escape": "\x1b", "esc": "\x1b",
             "backspace": "\x7f"}


class CommandError(ValueError):
    """An unknown command, or a command that does not fit the episode state; ``str()`` is the reply."""


def check_command(name: str) -> str:
    """``name`` (dashes allowed: ``discard-last``) -> the command; raises CommandError naming the closest."""
    cmd = str(name).strip().lower().replace("-", "_")
    if cmd not in SERVICES:
        raise CommandError(f"unknown command {name!r}{suggest(cmd, COMMANDS)}; commands: {', '.join(COMMANDS)}")
    return cmd


def key_name(key: str) -> str:
    """A key map entry (``space``, ``s``, ``F``) -> the character the terminal sends."""
    k = str(key)
    if len(k) == 1:
        return k
    ch = KEY_NAMES.get(k.lower())
    if ch is None:
        raise ValueError(f"key {key!r}: a single character or one of {', '.join(sorted(KEY_NAMES))}")
    return ch


class KeyMap(BaseModel):
    """``console --keys`` and the web console's shortcuts: key -> action (a command or ``quit``).

    A USB foot pedal presents itself as a keyboard: map the key it sends.
    """

    model_config = STRICT_KEYS
    keys: dict[str, KeyAction] = Field(default_factory=lambda: dict(DEFAULT_KEYS))

    @field_validator("keys")
    @classmethod
    def _keys(cls, v: dict) -> dict:
        out = {}
        for k, action in v.items():
            ch = key_name(k)
            if ch in out:
                raise ValueError(f"key {k!r} is mapped twice")
            out[ch] = action
        return out

    def action(self, ch: str) -> str | None:
        return self.keys.get(ch)

    def legend(self) -> list[tuple[str, str]]:
        """(printable key, action) pairs for help lines."""
        names = {v: k for k, v in KEY_NAMES.items() if k not in ("return", "esc")}
        return [(names.get(k, k), a) for k, a in self.keys.items()]


DEFAULT_KEYS = {"space": "toggle", "s": "success", "f": "failure", "d": "discard", "u": "discard_last",
                "n": "next_task", "F": "start_forced", "y": "relabel_success", "x": "relabel_failure",
                "q": "quit"}


class JoyMap(BaseModel):
    """VR controller buttons (``sensor_msgs/Joy`` on ``topic``): button index -> command, on press."""

    model_config = STRICT_KEYS
    topic: RosTopic = "/vr/buttons"   # a ROS topic name (relative: in the recorder's namespace)
    buttons: dict[int, JoyAction] = Field(default_factory=lambda: {0: "toggle", 1: "success", 2: "failure",
                                                                    3: "discard_last"})

    @field_validator("buttons")
    @classmethod
    def _buttons(cls, v: dict) -> dict:
        bad = [b for b in v if b < 0 or b > 127]
        if bad:
            raise ValueError(f"button indices must be within 0..127, got {bad}")
        return v

    @property
    def needed_buttons(self) -> int:
        return max(self.buttons, default=-1) + 1


def _load(model, path, default_name: str):
    if path in (None, ""):
        from robot_capture.paths import config_dir

        path = config_dir() / default_name
        if not Path(path).is_file():
            return model()
    p = Path(os.path.expanduser(str(path)))
    data = load_yaml(p)
    return validate(model, data, str(p))


def load_key_map(path=None) -> KeyMap:
    """Read a key map YAML (default: the shipped ``config/console_keys.yaml``).

    Raises:
        FileNotFoundError; ConfigError (one line per problem, e.g. an unknown action with "did you mean").
    """
    return _load(KeyMap, path, "console_keys.yaml")


def load_joy_map(path=None) -> JoyMap:
    """Read a Joy map YAML (default: the shipped ``config/console_joy.yaml``). Raises as :func:`load_key_map`
    (an invalid ROS topic name, unknown command or button index is a ConfigError naming the file and key)."""
    return _load(JoyMap, path, "console_joy.yaml")


class JoyMapper:
    """Turn ``sensor_msgs/Joy`` button arrays into commands, one per press (0 -> 1 edge).

    The first message only sets the baseline (a button held at start-up fires nothing).
    A message with fewer buttons than the map needs changes nothing: :meth:`on_buttons`
    returns no command and :attr:`problem` says why (the node logs it once).
    """

    def __init__(self, joy_map: JoyMap):
        self.map = joy_map
        self._last: list[int] | None = None
        self.problem = ""
        self.ignored = 0

    def on_buttons(self, buttons) -> list[str]:
        b = [1 if int(x) else 0 for x in buttons]
        need = self.map.needed_buttons
        if len(b) < need:
            self.ignored += 1
            self.problem = (f"Joy message on {self.map.topic} has {len(b)} buttons, the map needs {need} "
                            f"(button {need - 1} -> {self.map.buttons[need - 1]}); ignored")
            return []
        last, self._last = self._last, b
        if last is None or len(last) != len(b):
            return []
        return [cmd for i, cmd in sorted(self.map.buttons.items()) if b[i] and not last[i]]


__all__ += ["ConfigError"]
