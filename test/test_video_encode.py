"""The ROS-free video core (robot_capture.video): encode/decode round trip, keyframes, bad input."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from _video_frames import frame, image_msg, psnr
from robot_capture.video import encode as enc_mod
from robot_capture.video.decode import VideoDecoder, VideoDecodeError, decode_frames, is_keyframe
from robot_capture.video.encode import (EncoderSettings, EncoderUnavailableError, FrameEncoder,
                                        UnsupportedPixelFormatError, probe_encoder)
from robot_capture.video.msgdef import (parse_compressed_video, serialize_compressed_video)

T0 = 1_700_000_000_000_000_000


def _encode(enc: FrameEncoder, msgs) -> list[bytes]:
    out = []
    for m in msgs:
        out += [serialize_compressed_video(f.stamp_ns, f.frame_id, f.data, f.format) for f in enc.encode_message(m)]
    return out


def test_round_trip_psnr_stamps_and_frame_id():
    enc = FrameEncoder(EncoderSettings(hardware="off"), "head")
    msgs = _encode(enc, [image_msg(i) for i in range(45)])
    assert len(msgs) == 45  # one message per frame: no B-frames, no lookahead
    stamp, frame_id, _data, fmt = parse_compressed_video(msgs[3])
    assert (stamp, frame_id, fmt) == (T0 + int(3 * 1e9 / 30), "head_optical", "h264")
    out = list(decode_frames(msgs))
    assert [s for s, _ in out] == [T0 + int(i * 1e9 / 30) for i in range(45)]
    worst = min(psnr(img, frame(i)) for i, (_s, img) in enumerate(out))
    assert out[0][1].shape == (240, 320, 3)
    assert worst >= 30.0, worst  # crf 23 on smooth content: ~40 dB here


@pytest.mark.parametrize("encoding", ["bgr8", "mono8"])
def test_other_encodings_decode_to_rgb(encoding):
    enc = FrameEncoder(EncoderSettings(hardware="off"), "head")
    out = list(decode_frames(_encode(enc, [image_msg(i, encoding=encoding) for i in range(3)])))
    ref = frame(2)
    if encoding == "mono8":
        ref = np.repeat(ref[..., 1:2], 3, axis=2)
    assert psnr(out[2][1], ref) >= 30.0


def test_lossless_is_exact():
    enc = FrameEncoder(EncoderSettings(codec="lossless"), "head")
    assert enc.encoder == "libx264rgb"
    out = list(decode_frames(_encode(enc, [image_msg(i) for i in range(5)])))
    assert all(np.array_equal(img, frame(i)) for i, (_s, img) in enumerate(out))
    assert len(out) == 5


def test_keyframe_at_least_once_per_second_and_on_request():
    enc = FrameEncoder(EncoderSettings(fps=30.0, hardware="off"), "head")
    keys = []
    for i in range(100):
        if i == 47:
            enc.force_keyframe()
        keys += [f.keyframe for f in enc.encode_message(image_msg(i))]
    idx = [i for i, k in enumerate(keys) if k]
    assert idx[0] == 0 and 47 in idx
    assert max(np.diff(idx + [len(keys)])) <= 30  # GOP <= fps: a keyframe within every second
    # the flag agrees with the bitstream's own NAL types (an IDR carries SPS/PPS)
    enc2 = FrameEncoder(EncoderSettings(hardware="off"), "head")
    fr = [f for i in range(31) for f in enc2.encode_message(image_msg(i))]
    assert [is_keyframe(f.data) for f in fr] == [f.keyframe for f in fr]


def test_decoding_from_mid_gop_skips_to_the_next_keyframe():
    enc = FrameEncoder(EncoderSettings(hardware="off"), "head")
    msgs = _encode(enc, [image_msg(i) for i in range(40)])
    dec = VideoDecoder()
    out = list(decode_frames(msgs[5:], dec))   # the first keyframe after 5 is frame 30
    assert dec.skipped == 25 and [s for s, _ in out][0] == T0 + int(30 * 1e9 / 30)


def test_unsupported_pixel_format_is_named():
    enc = FrameEncoder(EncoderSettings(hardware="off"), "head")
    msg = image_msg(0)
    bad = msg.replace(b"rgb8\x00", b"yuv4\x00")  # same length: a valid message with another encoding
    with pytest.raises(UnsupportedPixelFormatError, match="'yuv4'"):
        enc.encode_message(bad)


def test_truncated_image_is_a_value_error():
    enc = FrameEncoder(EncoderSettings(hardware="off"), "head")
    with pytest.raises(ValueError, match="truncated|bytes of pixels"):
        enc.encode_message(image_msg(0)[:-1000])


def test_odd_size_is_padded_and_flagged(caplog):
    enc = FrameEncoder(EncoderSettings(hardware="off"), "head")
    with caplog.at_level(logging.WARNING):
        out = list(decode_frames(_encode(enc, [image_msg(i, h=241, w=321) for i in range(3)])))
    assert "odd_size_padded" in enc.flags and "321x241" in caplog.text
    assert out[0][1].shape == (242, 322, 3)
    assert psnr(out[1][1][:241, :321], frame(1, 241, 321)) >= 30.0


def test_resolution_change_starts_a_keyframe_and_flags():
    enc = FrameEncoder(EncoderSettings(hardware="off"), "head")
    frames = [f for i in range(10) for f in enc.encode_message(image_msg(i))]
    assert "resolution_change" not in enc.flags
    frames += [f for i in range(10, 15) for f in enc.encode_message(image_msg(i, h=480, w=640))]
    assert "resolution_change" in enc.flags and frames[10].keyframe
    out = list(decode_frames([serialize_compressed_video(f.stamp_ns, "", f.data) for f in frames]))
    assert [img.shape for _s, img in out] == [(240, 320, 3)] * 10 + [(480, 640, 3)] * 5


def test_missing_encoder_is_a_clear_error(monkeypatch):
    real = enc_mod._open

    def no_x264(name, *a, **k):
        if name.startswith("libx264"):
            raise ValueError(f"unknown codec {name!r}")  # what PyAV raises for a codec not in the build
        return real(name, *a, **k)

    monkeypatch.setattr(enc_mod, "_open", no_x264)
    with pytest.raises(EncoderUnavailableError, match="libx264.*not usable.*codec: raw"):
        FrameEncoder(EncoderSettings(hardware="off"), "head")


def test_hardware_probe_falls_back_in_one_log_line(caplog):
    with caplog.at_level(logging.INFO, logger="robot_capture.video.encode"):
        name = probe_encoder(EncoderSettings(hardware="auto"))
    lines = [r.getMessage() for r in caplog.records if "hardware" in r.getMessage()]
    hw, _why = enc_mod.probe_hardware("auto")
    if hw:  # a machine with a working GPU encoder uses it
        assert name == hw
    else:
        assert name == "libx264" and len(lines) == 1
        assert all(n in lines[0] for n in ("h264_nvenc", "h264_vaapi", "h264_qsv", "libx264"))


def test_bad_settings_and_unknown_format():
    with pytest.raises(ValueError, match="codec 'vp8'"):
        FrameEncoder(EncoderSettings(codec="vp8"))
    with pytest.raises(VideoDecodeError, match="'mjpeg'"):
        VideoDecoder().decode(serialize_compressed_video(0, "", b"\x00\x00\x01\x65", "mjpeg"))
