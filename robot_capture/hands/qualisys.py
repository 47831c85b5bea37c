"""Qualisys hand-marker recordings -> 26 OpenXR hand joints (approximate), for the hand benchmarks. ROS-free.

Input: a Qualisys Track Manager TSV export (10+ header lines: ``NO_OF_FRAMES``, ``FREQUENCY``,
``MARKER_NAMES`` ...; then a ``Frame  Time  <marker> X  <marker> Y ...`` header row and one row
per frame, millimetres), with the marker layout of dfki-ric/hand_embodiment
(``shared/data/hand_tracking/qualisys_marker_config_20210826_april.yaml``): three markers on the
back of the hand (``hand_top`` toward the knuckles, ``hand_left``/``hand_right`` on either side
of the wrist), and a tip and a middle-phalanx marker per finger.

The markers give no joint centres, so the OpenXR hand is synthesized for retargeting only:

* ``wrist`` = midpoint of ``hand_left`` and ``hand_right``;
* the four knuckles (``<finger>_proximal``) = ``hand_top`` +/- 0.25 and 0.75 of the
  ``hand_left - hand_right`` vector (index on the ``hand_left`` side): their mean is ``hand_top``
  and their index-to-little direction is the wrist's side-to-side axis, which is all the palm
  frame (:func:`robot_capture.hands.model.palm_frame`) uses;
* ``<finger>_tip`` = the tip marker; ``thumb_proximal`` and the finger joints between knuckle and
  tip = the middle-phalanx marker (``<finger>_middle``); the others on the knuckle-tip segment.

A marker lost in a frame (exported as 0 0 0 or empty) makes that frame's joints NaN, so the
retargeter holds (``HandRetargeter.step``). Positions are those of markers on the skin surface
(about 1-2 cm dorsal of the joint centres); the fingertip vectors are what the retargeter tracks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from robot_capture.retarget.pose import OPENXR_HAND_JOINTS

_J = {n: i for i, n in enumerate(OPENXR_HAND_JOINTS)}
_FINGERS = ("index", "middle", "ring", "little")


def load_qualisys_tsv(path) -> tuple[float, dict]:
    """(frequency Hz, {marker: (N, 3) metres, NaN where lost}) from a Qualisys TSV export.

    Raises:
        ValueError: no ``MARKER_NAMES``/``FREQUENCY`` header or no ``Frame`` row (names the file).
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    head = {ln.split("\t", 1)[0]: ln.split("\t")[1:] for ln in lines[:20] if "\t" in ln}
    if "MARKER_NAMES" not in head or "FREQUENCY" not in head:
        raise ValueError(f"{path}: not a Qualisys TSV export (no MARKER_NAMES / FREQUENCY header)")
    names = head["MARKER_NAMES"]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("Frame\t")), None)
    if start is None:
        raise ValueError(f"{path}: no 'Frame' header row")
    rows = [ln.split("\t")[2:2 + 3 * len(names)] for ln in lines[start + 1:] if ln.strip()]
    data = np.array([[float(x) if x.strip() else np.nan for x in r] for r in rows]) * 1e-3
    out = {}
    for i, n in enumerate(names):
        xyz = data[:, 3 * i:3 * i + 3].copy()
        xyz[(xyz == 0.0).all(axis=1)] = np.nan  # QTM writes a lost marker as 0 0 0
        out[n] = xyz
    return float(head["FREQUENCY"][0]), out


def qualisys_to_openxr(markers: dict) -> np.ndarray:
    """(N, 26, 3) synthesized OpenXR hand joints (m, the capture frame) from the markers (module docstring).

    Raises:
        KeyError: a marker of the layout is missing (names it).
    """
    try:
        top, hl, hr = markers["hand_top"], markers["hand_left"], markers["hand_right"]
        tips = {f: markers[f"{f}_tip"] for f in ("thumb",) + _FINGERS}
        mids = {f: markers[f"{f}_middle"] for f in ("thumb",) + _FINGERS}
    except KeyError as e:
        raise KeyError(f"Qualisys hand layout: marker {e.args[0]!r} is missing") from None
    n = len(top)
    out = np.empty((n, len(OPENXR_HAND_JOINTS), 3))
    wrist = 0.5 * (hl + hr)
    side = hl - hr
    out[:, _J["wrist"]] = wrist
    for f, c in zip(_FINGERS, (0.75, 0.25, -0.25, -0.75)):
        knuckle = top + c * side
        out[:, _J[f"{f}_metacarpal"]] = 0.5 * (wrist + knuckle)
        out[:, _J[f"{f}_proximal"]] = knuckle
        out[:, _J[f"{f}_intermediate"]] = mids[f]
        out[:, _J[f"{f}_distal"]] = 0.5 * (mids[f] + tips[f])
        out[:, _J[f"{f}_tip"]] = tips[f]
    out[:, _J["thumb_metacarpal"]] = 0.5 * (wrist + mids["thumb"])
    out[:, _J["thumb_proximal"]] = mids["thumb"]
    out[:, _J["thumb_distal"]] = 0.5 * (mids["thumb"] + tips["thumb"])
    out[:, _J["thumb_tip"]] = tips["thumb"]
    out[:, _J["palm"]] = 0.5 * (out[:, _J["middle_metacarpal"]] + out[:, _J["middle_proximal"]])
    return out
