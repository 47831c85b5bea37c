"""The station contract names each camera's codec and preset; the recorder node's encoder settings
come from it; a bad codec is a clear config error."""
from __future__ import annotations

import copy

import pytest

from robot_capture.config_schema import ConfigError
from robot_capture.floor.config import validate_floor
from robot_capture.floor.contract import build_contract, streams_from_params
from robot_capture.floor.graph import build, load_config
from robot_capture.video.stage import settings_from_streams


def _cfg(**cam):
    cfg = copy.deepcopy(load_config(None))
    cfg["cameras"] = {"head": {"source": "0", "width": 640, "height": 480, **cam}}
    return cfg


def test_default_is_raw_and_h264_reaches_the_recorder():
    raw = build_contract(_cfg()).by_topic()["/camera/head/image_raw"]
    assert (raw.codec, raw.message_bytes) == ("raw", 640 * 480 * 3)
    h264 = build_contract(_cfg(codec="h264", preset="veryfast")).by_topic()["/camera/head/image_raw"]
    assert (h264.codec, h264.preset) == ("h264", "veryfast")
    assert h264.message_bytes == 640 * 480 * 3 // 50  # the disk estimate (station check, hours left)
    specs = build(_cfg(codec="h264", preset="veryfast"), sim=True)
    rec = next(s for s in specs if s.role == "recorder")
    streams = streams_from_params(rec.parameters["expected_streams"], rec.parameters.get("optional_streams") or ())
    settings = settings_from_streams(streams)
    assert list(settings) == ["/camera/head/image_raw"]
    s = settings["/camera/head/image_raw"]
    assert (s.codec, s.preset, s.fps, s.gop) == ("h264", "veryfast", 30.0, 30)
    assert settings_from_streams(build_contract(_cfg()).streams) == {}


def test_a_jpeg_camera_is_recorded_as_it_arrives():
    s = build_contract(_cfg(compressed=True, codec="h264")).by_topic()["/camera/head/image_raw/compressed"]
    assert s.codec == "" and settings_from_streams([s]) == {}


@pytest.mark.parametrize("cam,msg", [({"codec": "h265"}, "codec"), ({"preset": "quick"}, "preset")])
def test_a_bad_codec_or_preset_is_a_config_error(cam, msg):
    with pytest.raises(ConfigError, match=msg):
        validate_floor(_cfg(**cam))
