"""The floor graph starts the xr node (the headset page) on a real station whose retarget source is vr."""
from __future__ import annotations

import copy

from robot_capture.floor import graph


def _cfg(source: str, station: str = ""):
    cfg = copy.deepcopy(graph.load_config(None))
    cfg["retarget"] = dict(cfg.get("retarget") or {}, source=source)
    if station:
        cfg["station"] = station
    return cfg


def test_vr_station_starts_the_xr_node_with_its_recorder():
    specs = graph.build(_cfg("vr", station="a"), sim=False)
    xr = [s for s in specs if s.role == "xr"]
    assert len(xr) == 1 and xr[0].executable == "xr_node" and xr[0].parameters["recorder"] == "/a/recorder"
    assert xr[0].namespace == "/a" and xr[0].required
    assert specs[0].role == "recorder" and specs.index(xr[0]) > [s.role for s in specs].index("retarget")


def test_no_xr_node_for_exo_or_in_sim():
    assert "xr" not in {s.role for s in graph.build(_cfg("exo"), sim=False)}
    assert "xr" not in {s.role for s in graph.build(_cfg("vr"), sim=True)}  # mocap_replay is the headset in sim
