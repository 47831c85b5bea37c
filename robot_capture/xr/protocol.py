"""The headset page's WebSocket pose protocol: one JSON text message per XR frame, checked strictly.

Page -> station (one JSON object per WebSocket text message):

* ``{"type": "frame", "seq": int >= 0, "t": float, "head": POSE, "controllers": {"left": CTRL|null,
  "right": CTRL|null}, "hands": {"left": HAND|null, "right": HAND|null}}``, one per XR frame.
  ``t``: the headset's sample time of the frame, milliseconds on the headset clock
  (``performance.timeOrigin + XRFrame`` time, i.e. Unix-epoch ms as the headset knows it).
  ``POSE`` = ``[px, py, pz, qx, qy, qz, qw]``: metres and a unit quaternion in the WebXR
  ``local-floor`` reference space (x right, y up, -z forward). ``CTRL`` = ``{"pose": POSE,
  "buttons": [0|1, ...], "axes": [float, ...]}`` (grip pose, ``xr-standard`` gamepad order, at
  most :data:`MAX_BUTTONS` / :data:`MAX_AXES`). ``HAND`` = 25 ``POSE`` in ``XRHandJoint`` order
  (:data:`robot_capture.retarget.hand_tracking.WEBXR_HAND_JOINTS`). ``controllers``/``hands`` and
  either side may be absent or null (not tracked).
* ``{"type": "pong", "id": int, "t1": float, "t2": float}``: the answer to a station ``ping``;
  ``t1`` headset receive time, ``t2`` headset send time (ms, headset clock, as ``t``).

Station -> page: ``hello`` (``role``: ``driver``), ``refused`` (``reason``), ``ping`` (``id``,
``t0``), ``error`` (``reason``: one line, the message was dropped, nothing published), ``tally``
(the station state: ``tally`` green|red|amber, ``text``, ``elapsed_s``, ``verdict``).

Every check failure raises :class:`ProtocolError` (a ValueError) whose message names the element,
e.g. ``"hands.left: 24 joints, expected 25 (WebXR XRHandJoint order)"``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["MAX_AXES", "MAX_BUTTONS", "MAX_MESSAGE_BYTES", "QUAT_NORM_TOL", "Controller", "Frame", "Pong",
           "ProtocolError", "parse_message"]

#: a frame with two hands is ~8 KiB of JSON; anything 8x that is not a frame (oversized -> refused)
MAX_MESSAGE_BYTES = 64 * 1024
#: WebXR ``xr-standard`` gamepads have 6-7 buttons and 4 axes; more is not a headset controller
MAX_BUTTONS = 16
MAX_AXES = 8
#: the same bound as the ROS input path (``nodes/_convert.QUAT_NORM_TOL``): a float32 headset is
#: within ~1e-6 of unit norm, a garbage or unnormalised quaternion is not
QUAT_NORM_TOL = 0.05
N_WEBXR_JOINTS = 25
SIDES = ("left", "right")
_FRAME_KEYS = {"type", "seq", "t", "head", "controllers", "hands"}


class ProtocolError(ValueError):
    """A message that is not a valid protocol message; the text is the one-line reply."""


@dataclass(frozen=True)
class Controller:
    """One controller: ``pose`` (7,) WebXR grip pose, ``buttons`` pressed flags, ``axes`` in [-1, 1]."""

    pose: np.ndarray
    buttons: tuple = ()
    axes: tuple = ()


@dataclass(frozen=True)
class Frame:
    """One checked XR frame (WebXR reference space, see module docstring).

    ``t_ms``: headset sample time (ms, headset clock). ``head``: (7,). ``controllers``/``hands``:
    side -> :class:`Controller` / (25,7) array, only the sides tracked in this frame.
    """

    seq: int
    t_ms: float
    head: np.ndarray
    controllers: dict = field(default_factory=dict)
    hands: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Pong:
    """A clock round trip's headset half: ``t1_ms`` receive, ``t2_ms`` send (headset clock)."""

    id: int
    t1_ms: float
    t2_ms: float


def _number(v, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ProtocolError(f"{where}: expected a number, got {type(v).__name__}")
    if not math.isfinite(v):
        raise ProtocolError(f"{where}: not a finite number")
    return float(v)


def _int(v, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ProtocolError(f"{where}: expected an integer >= 0")
    return v


def _poses(v, n: int | None, where: str) -> np.ndarray:
    """List of POSE (or one POSE when ``n`` is None) -> (n,7) / (7,) float64, checked."""
    try:
        a = np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        raise ProtocolError(f"{where}: expected {'a pose' if n is None else 'a list of poses'} "
                            "[px, py, pz, qx, qy, qz, qw] of numbers") from None
    shape = (7,) if n is None else (n, 7)
    if a.shape != shape:
        if n is not None and a.ndim == 2 and a.shape[1] == 7:
            raise ProtocolError(f"{where}: {a.shape[0]} joints, expected {n} (WebXR XRHandJoint order)")
        raise ProtocolError(f"{where}: expected shape {list(shape)} ([px, py, pz, qx, qy, qz, qw]), got {list(a.shape)}")
    if not np.isfinite(a).all():
        raise ProtocolError(f"{where}: NaN or infinite value")
    norms = np.linalg.norm(a.reshape(-1, 7)[:, 3:], axis=1)
    bad = np.flatnonzero(np.abs(norms - 1.0) > QUAT_NORM_TOL)
    if bad.size:
        i = int(bad[0])
        at = "" if n is None else f" joint {i}"
        raise ProtocolError(f"{where}{at}: quaternion norm {norms[i]:.3g}, expected 1 +/- {QUAT_NORM_TOL}")
    return a


def _side_map(v, where: str) -> dict:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ProtocolError(f"{where}: expected an object with 'left'/'right'")
    extra = set(v) - set(SIDES)
    if extra:
        raise ProtocolError(f"{where}: unknown key(s) {', '.join(sorted(map(str, extra)))} (left, right)")
    return {s: v[s] for s in SIDES if v.get(s) is not None}


def _controller(v, where: str) -> Controller:
    if not isinstance(v, dict) or "pose" not in v:
        raise ProtocolError(f"{where}: expected an object with 'pose', 'buttons', 'axes'")
    extra = set(v) - {"pose", "buttons", "axes"}
    if extra:
        raise ProtocolError(f"{where}: unknown key(s) {', '.join(sorted(map(str, extra)))}")
    buttons, axes = v.get("buttons") or [], v.get("axes") or []
    if not isinstance(buttons, list) or len(buttons) > MAX_BUTTONS:
        raise ProtocolError(f"{where}.buttons: expected a list of at most {MAX_BUTTONS} flags")
    if not isinstance(axes, list) or len(axes) > MAX_AXES:
        raise ProtocolError(f"{where}.axes: expected a list of at most {MAX_AXES} numbers")
    b = tuple(int(_number(x, f"{where}.buttons[{i}]") != 0) for i, x in enumerate(buttons))
    a = tuple(_number(x, f"{where}.axes[{i}]") for i, x in enumerate(axes))
    if any(abs(x) > 1.0 + 1e-6 for x in a):
        raise ProtocolError(f"{where}.axes: values must be in [-1, 1]")
    return Controller(_poses(v["pose"], None, f"{where}.pose"), b, a)


def _frame(d: dict) -> Frame:
    extra = set(d) - _FRAME_KEYS
    if extra:
        raise ProtocolError(f"frame: unknown key(s) {', '.join(sorted(map(str, extra)))} "
                            f"(keys: {', '.join(sorted(_FRAME_KEYS))})")
    for key in ("seq", "t", "head"):
        if key not in d:
            raise ProtocolError(f"frame: missing {key!r}")
    seq = _int(d["seq"], "seq")
    t = _number(d["t"], "t")
    head = _poses(d["head"], None, "head")
    ctrls = {s: _controller(c, f"controllers.{s}") for s, c in _side_map(d.get("controllers"), "controllers").items()}
    hands = {s: _poses(h, N_WEBXR_JOINTS, f"hands.{s}") for s, h in _side_map(d.get("hands"), "hands").items()}
    return Frame(seq, t, head, ctrls, hands)


def parse_message(text) -> Frame | Pong:
    """One WebSocket message -> :class:`Frame` or :class:`Pong`.

    Args:
        text: the message (str; bytes are refused: the protocol is text).
    Raises:
        ProtocolError: oversized (> :data:`MAX_MESSAGE_BYTES`), not JSON, not an object, an unknown
            ``type``, or any element failing its check (see module docstring); the message names it.
    """
    if not isinstance(text, str):
        raise ProtocolError("binary message: the pose protocol is JSON text")
    if len(text) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(text)} bytes, at most {MAX_MESSAGE_BYTES}")
    try:
        d = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"not valid JSON ({exc})") from None
    if not isinstance(d, dict):
        raise ProtocolError(f"expected a JSON object, got {type(d).__name__}")
    kind = d.get("type")
    if kind == "frame":
        return _frame(d)
    if kind == "pong":
        if set(d) - {"type", "id", "t1", "t2"}:
            raise ProtocolError("pong: unknown keys (type, id, t1, t2)")
        pong = Pong(_int(d.get("id"), "pong.id"), _number(d.get("t1"), "pong.t1"), _number(d.get("t2"), "pong.t2"))
        if pong.t2_ms < pong.t1_ms:
            raise ProtocolError("pong: t2 (send) before t1 (receive)")
        return pong
    raise ProtocolError(f"unknown message type {kind!r} (frame, pong)")
