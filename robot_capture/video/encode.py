"""Camera frames -> H.264, one frame per message, at record time (PyAV / FFmpeg; ROS-free).

:class:`FrameEncoder` turns each camera frame (a sensor_msgs/Image CDR buffer or an array)
into one Annex B access unit, ready for ``foxglove_msgs/msg/CompressedVideo``:

* low latency: no B-frames, no lookahead (x264 ``tune=zerolatency``), so each frame in gives
  its packet out at once and packets stay in capture order;
* a keyframe (IDR, with SPS/PPS) at least every ``keyframe_interval_s`` (default 1 s: the GOP is
  ``floor(fps * interval)`` frames), so a SIGKILL loses at most 1 s of decodable video, and on
  request (:meth:`FrameEncoder.force_keyframe`: episode start, split);
* codecs: ``h264`` (libx264, ``preset`` default ``ultrafast``, ``crf`` default 23), or a hardware
  encoder (h264_nvenc, h264_vaapi, h264_qsv) when one opens here (``hardware="auto"``; probed once
  per process, a failed probe is one log line and libx264 is used); ``lossless`` = libx264rgb at
  qp 0 (the decoded RGB equals the input exactly; High 4:4:4 profile, which browser decoders and
  so Foxglove may not play).

Bad input, each a clear error or a flagged, logged degradation (:attr:`FrameEncoder.flags`):

* an image encoding outside :data:`PIXEL_FORMATS` -> :class:`UnsupportedPixelFormatError` naming it;
* an odd width or height (x264's 4:2:0 needs even sizes) -> padded by one edge row/column
  (flag ``odd_size_padded``; the decoded frame is that 1 px larger);
* a size change mid-stream -> a new encoder whose first frame is a keyframe (flag ``resolution_change``);
* no usable encoder (libx264 missing from the FFmpeg build, or it fails to open) ->
  :class:`EncoderUnavailableError` from :func:`probe_encoder` / the constructor.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from robot_capture.video.msgdef import parse_image

__all__ = ["CODECS", "HARDWARE_ENCODERS", "PIXEL_FORMATS", "EncoderSettings", "EncodedFrame", "FrameEncoder",
           "EncoderError", "EncoderUnavailableError", "UnsupportedPixelFormatError", "probe_encoder",
           "probe_hardware"]

log = logging.getLogger(__name__)

#: recorder codec settings per camera (station contract ``cameras.<name>.codec``)
CODECS = ("raw", "h264", "lossless")
#: tried in this order when ``hardware="auto"``
HARDWARE_ENCODERS = ("h264_nvenc", "h264_vaapi", "h264_qsv")
#: sensor_msgs/Image encoding -> FFmpeg pixel format of the input frame
PIXEL_FORMATS = {"rgb8": "rgb24", "bgr8": "bgr24", "mono8": "gray", "8UC1": "gray", "8UC3": "bgr24",
                 "rgba8": "rgba", "bgra8": "bgra"}
_CHANNELS = {"rgb24": 3, "bgr24": 3, "gray": 1, "rgba": 4, "bgra": 4}


class EncoderError(RuntimeError):
    """A frame or an encoder that cannot be used."""


class EncoderUnavailableError(EncoderError):
    """No encoder for the codec opens in this FFmpeg build (missing, or fails at start)."""


class UnsupportedPixelFormatError(EncoderError, ValueError):
    """An image encoding the encoder does not take (the message names it)."""


@dataclass(frozen=True)
class EncoderSettings:
    """How one camera is encoded.

    Attributes:
        codec: ``h264`` or ``lossless`` (``raw`` is not encoded at all; see :data:`CODECS`).
        fps: the camera's nominal rate in Hz (sets the GOP; stamps come from the messages).
        keyframe_interval_s: longest time between keyframes (1.0 s: issue 21's SIGKILL bound).
        preset: x264 preset (``ultrafast``: ~2-3 ms a 640x480 frame on one core here).
        crf: x264 constant rate factor for ``h264`` (23: x264's default; lower = better and bigger).
        hardware: ``auto`` (probe :data:`HARDWARE_ENCODERS`), ``off``, or one encoder name.
    """

    codec: str = "h264"
    fps: float = 30.0
    keyframe_interval_s: float = 1.0
    preset: str = "ultrafast"
    crf: int = 23
    hardware: str = "auto"

    @property
    def gop(self) -> int:
        """Frames per GOP: ``floor(fps * keyframe_interval_s)``, at least 1."""
        return max(1, int(self.fps * self.keyframe_interval_s))

    def validate(self) -> None:
        """Raises ValueError naming the bad field."""
        if self.codec not in ("h264", "lossless"):
            raise ValueError(f"video codec {self.codec!r} is not encodable (h264, lossless)")
        if not self.fps > 0:
            raise ValueError(f"video fps must be > 0, got {self.fps}")
        if not self.keyframe_interval_s > 0:
            raise ValueError(f"keyframe_interval_s must be > 0, got {self.keyframe_interval_s}")


@dataclass(frozen=True)
class EncodedFrame:
    """One encoded frame: ``stamp_ns`` (the image's header stamp), ``frame_id``, ``data`` (Annex B
    bytes), ``keyframe`` (an IDR that decodes on its own), ``format`` (``h264``)."""

    stamp_ns: int
    frame_id: str
    data: bytes
    keyframe: bool
    format: str = "h264"


@functools.lru_cache(maxsize=1)
def _av():
    import av

    av.logging.set_level(av.logging.ERROR)
    return av


def _options(name: str, s: EncoderSettings) -> dict[str, str]:
    g = str(s.gop)
    if name == "libx264rgb":
        return {"preset": s.preset, "tune": "zerolatency", "qp": "0", "g": g, "bf": "0", "forced-idr": "1"}
    if name == "libx264":
        return {"preset": s.preset, "tune": "zerolatency", "crf": str(s.crf), "g": g, "bf": "0", "forced-idr": "1"}
    if name == "h264_nvenc":
        return {"preset": "p1", "tune": "ull", "zerolatency": "1", "g": g, "bf": "0", "forced-idr": "1"}
    return {"g": g, "bf": "0"}  # vaapi / qsv: low-latency defaults of the driver


def _open(name: str, width: int, height: int, s: EncoderSettings):
    av = _av()
    cc = av.codec.CodecContext.create(name, "w")
    cc.width, cc.height = width, height
    cc.pix_fmt = "rgb24" if name == "libx264rgb" else ("nv12" if name in ("h264_vaapi", "h264_qsv") else "yuv420p")
    rate = Fraction(s.fps).limit_denominator(1001)
    cc.time_base = 1 / rate
    cc.framerate = rate
    cc.options = _options(name, s)
    cc.open()
    return cc


@functools.lru_cache(maxsize=8)
def probe_hardware(which: str = "auto") -> tuple[str, str]:
    """The first hardware H.264 encoder that opens and encodes a 64x64 frame here.

    Returns ``(name, "")`` or ``("", why)``: one line naming each encoder and its failure.
    Cached per process.
    """
    av = _av()
    names = HARDWARE_ENCODERS if which == "auto" else (which,)
    why = []
    av.logging.set_level(av.logging.PANIC)  # FFmpeg prints each failed device open on stderr otherwise
    try:
        return _probe(av, names, why)
    finally:
        av.logging.set_level(av.logging.ERROR)


def _probe(av, names, why) -> tuple[str, str]:
    for name in names:
        try:
            cc = _open(name, 64, 64, EncoderSettings())
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            frame = frame.reformat(format=cc.pix_fmt)
            frame.pts = 0
            cc.encode(frame)
            cc.encode(None)
            return name, ""
        except Exception as exc:  # noqa: BLE001 - any failure means "not usable here"
            why.append(f"{name}: {str(exc).split(':')[0] if str(exc) else type(exc).__name__}")
    return "", "; ".join(why)


def probe_encoder(settings: EncoderSettings, logger=None) -> str:
    """The FFmpeg encoder name that will encode ``settings`` here (a hardware one when allowed and
    present, else libx264 / libx264rgb); logs the hardware fallback in one line.

    Raises:
        EncoderUnavailableError: the software encoder is missing from this FFmpeg build or fails to open.
        ValueError: bad settings.
    """
    settings.validate()
    lg = logger or log
    if settings.codec == "h264" and settings.hardware != "off":
        name, why = probe_hardware(settings.hardware)
        if name:
            return name
        lg.info(f"video: no hardware H.264 encoder ({why}); using libx264 preset {settings.preset}")
    sw = "libx264rgb" if settings.codec == "lossless" else "libx264"
    try:
        _open(sw, 64, 64, settings)
    except Exception as exc:  # noqa: BLE001 - missing codec (ValueError/UnknownCodecError) or open failure
        raise EncoderUnavailableError(f"video encoder {sw} for codec {settings.codec!r} is not usable in this "
                                      f"FFmpeg build ({exc}); record this camera raw (codec: raw)") from None
    return sw


class FrameEncoder:
    """Encode one camera's frames, one Annex B access unit per frame.

    Args:
        settings: :class:`EncoderSettings`.
        name: camera name for log lines.
        encoder: FFmpeg encoder name (None: :func:`probe_encoder`).
        logger: object with ``info``/``warning``.

    Raises:
        EncoderUnavailableError, ValueError: see :func:`probe_encoder`.
    """

    def __init__(self, settings: EncoderSettings | None = None, name: str = "camera", encoder: str | None = None,
                 logger=None):
        self.settings = settings or EncoderSettings()
        self.name = name
        self.log = logger or log
        self.encoder = encoder or probe_encoder(self.settings, self.log)
        self.flags: set[str] = set()
        self.frames = 0
        self.keyframes = 0
        self._cc = None
        self._size: tuple[int, int] | None = None  # (height, width) as received
        self._pts = 0
        self._stamps: dict[int, tuple[int, str]] = {}
        self._force = False

    def force_keyframe(self) -> None:
        """Make the next frame a keyframe (episode start, file split)."""
        self._force = True

    def encode_message(self, data) -> list[EncodedFrame]:
        """A sensor_msgs/Image CDR buffer -> its encoded frame(s) (one, or none while a hardware
        encoder buffers).

        Raises:
            UnsupportedPixelFormatError: an encoding not in :data:`PIXEL_FORMATS`.
            ValueError: a truncated or malformed message.
        """
        img = parse_image(data)
        fmt = PIXEL_FORMATS.get(img.encoding)
        if fmt is None:
            raise UnsupportedPixelFormatError(f"camera {self.name}: image encoding {img.encoding!r} is not "
                                              f"supported for video (supported: {', '.join(PIXEL_FORMATS)})")
        ch = _CHANNELS[fmt]
        a = np.frombuffer(img.pixels, np.uint8, count=img.step * img.height).reshape(img.height, img.step)
        a = a[:, :img.width * ch].reshape(img.height, img.width, ch) if ch > 1 else a[:, :img.width]
        return self.encode(a, fmt, img.stamp_ns, img.frame_id)

    def encode(self, pixels: np.ndarray, pixel_format: str, stamp_ns: int, frame_id: str = "") -> list[EncodedFrame]:
        """Encode one frame: ``pixels`` (H, W, C) or (H, W) uint8 in FFmpeg ``pixel_format``
        (``rgb24``, ``bgr24``, ``gray``, ``rgba``, ``bgra``); ``stamp_ns`` int ns.

        Raises:
            UnsupportedPixelFormatError: another pixel format, or an array that does not match it.
        """
        if pixel_format not in _CHANNELS:
            raise UnsupportedPixelFormatError(f"camera {self.name}: pixel format {pixel_format!r} is not supported")
        a = np.asarray(pixels)
        if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != _CHANNELS[pixel_format]):
            raise UnsupportedPixelFormatError(f"camera {self.name}: a {a.dtype} array of shape {a.shape} is not "
                                              f"{pixel_format}")
        h, w = a.shape[:2]
        if h == 0 or w == 0:
            raise ValueError(f"camera {self.name}: empty {w}x{h} frame")
        if self._size != (h, w):
            self._reopen(h, w)
        if (h % 2 or w % 2) and self.encoder != "libx264rgb":
            pad = ((0, h % 2), (0, w % 2)) + (((0, 0),) if a.ndim == 3 else ())
            a = np.pad(a, pad, mode="edge")
        av = _av()
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format=pixel_format)
        if frame.format.name != self._cc.pix_fmt:
            frame = frame.reformat(format=self._cc.pix_fmt)
        frame.pts = self._pts
        if self._force:
            frame.pict_type = av.video.frame.PictureType.I
            self._force = False
        self._stamps[self._pts] = (int(stamp_ns), frame_id)
        self._pts += 1
        return self._packets(self._cc.encode(frame))

    def flush(self) -> list[EncodedFrame]:
        """Frames still inside the encoder (none for libx264 zerolatency); the encoder is then closed."""
        if self._cc is None:
            return []
        out = self._packets(self._cc.encode(None))
        self._cc, self._size = None, None
        return out

    def _reopen(self, h: int, w: int) -> None:
        old = self._size
        pending = self.flush() if self._cc is not None else []
        if pending:
            self.log.warning(f"camera {self.name}: {len(pending)} frame(s) dropped at a size change")
        if old is not None:
            self.flags.add("resolution_change")
            self.log.warning(f"camera {self.name}: frame size changed {old[1]}x{old[0]} -> {w}x{h}; "
                             "new encoder, next frame is a keyframe (episode flagged resolution_change)")
        if (h % 2 or w % 2) and self.encoder != "libx264rgb" and "odd_size_padded" not in self.flags:
            self.flags.add("odd_size_padded")
            self.log.warning(f"camera {self.name}: odd frame size {w}x{h}; padded to {w + w % 2}x{h + h % 2} "
                             "(H.264 4:2:0 needs even sizes)")
        eh, ew = (h, w) if self.encoder == "libx264rgb" else (h + h % 2, w + w % 2)
        try:
            self._cc = _open(self.encoder, ew, eh, self.settings)
        except Exception as exc:  # noqa: BLE001
            raise EncoderUnavailableError(f"camera {self.name}: encoder {self.encoder} does not open at "
                                          f"{ew}x{eh}: {exc}") from None
        self._size = (h, w)
        self._force = False  # the first frame of a new encoder is an IDR anyway

    def _packets(self, packets) -> list[EncodedFrame]:
        out = []
        for p in packets:
            stamp, frame_id = self._stamps.pop(p.pts, (0, ""))
            key = bool(p.is_keyframe)
            self.frames += 1
            self.keyframes += key
            out.append(EncodedFrame(stamp, frame_id, bytes(p), key))
        return out
