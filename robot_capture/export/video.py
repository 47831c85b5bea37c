"""Video for LeRobot v3.0 with PyAV (FFmpeg): camera messages -> RGB, episode encoding,
and appending encoded episodes to the rolling ``videos/<key>/chunk-XXX/file-XXX.mp4``.

* :func:`message_rgb`: sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) or
  CompressedImage (JPEG/PNG, via OpenCV) -> ``(stamp_ns, (H, W, 3) uint8 RGB)``.
* :class:`EpisodeEncoder`: one episode into a temporary MP4, frame k at pts k / fps.
  Defaults match LeRobot's writer (lerobot v0.4.4 ``datasets/video_utils.py``
  ``encode_video_frames``): libsvtav1, yuv420p, g=2, crf 30, preset 12. For h264/hevc,
  B-frames are off (``bf=0``) so that packets can be appended with a plain pts shift.
* :class:`VideoAppender`: remuxes (no re-encode) the packets of an encoded episode, or a
  frame range of another dataset's file, onto the end of one output file, so frame k of
  an episode sits at ``from_timestamp + k / fps`` exactly (the from_timestamp of an
  episode is the number of frames before it in the file over fps).
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from robot_capture.export import cdr

__all__ = ["message_rgb", "EpisodeEncoder", "ThreadedEncoder", "VideoAppender", "video_info", "decode_frames", "codec_options",
           "VideoError"]


class VideoError(ValueError):
    """An image that cannot be converted, or a video that cannot be written or read."""


def _av():
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only (it prints its banner on stderr)
    import av

    av.logging.set_level(av.logging.ERROR)
    return av


def message_rgb(type_name: str, data) -> tuple[int, np.ndarray]:
    """Decode one camera message to ``(stamp_ns, (H, W, 3) uint8 RGB)``.

    Raises:
        VideoError: an unsupported encoding, or a compressed image that does not decode.
        ValueError: a truncated message.
    """
    if type_name == "sensor_msgs/msg/CompressedImage":
        import cv2

        t, fmt, buf = cdr.compressed_image(data)
        img = cv2.imdecode(np.frombuffer(buf, dtype=np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise VideoError(f"compressed image ({fmt or 'unknown format'}) does not decode")
        return t, img[:, :, ::-1]
    t, h, w, enc, step, _big, px = cdr.image(data)
    a = np.frombuffer(px, dtype=np.uint8, count=step * h).reshape(h, step)
    ch = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8UC3": 3, "8UC1": 1}.get(enc)
    if ch is None:
        raise VideoError(f"image encoding {enc!r} is not supported (rgb8, bgr8, rgba8, bgra8, mono8)")
    a = a[:, :w * ch].reshape(h, w, ch)
    if ch == 1:
        return t, np.repeat(a, 3, axis=2)
    if enc in ("bgr8", "bgra8"):
        return t, a[:, :, 2::-1]
    return t, a[:, :, :3]


def codec_options(codec: str, gop: int, crf: int, preset: int) -> dict[str, str]:
    """FFmpeg options for the codec (LeRobot's ``_get_codec_options``, plus ``bf=0`` for h264/hevc)."""
    opts = {"g": str(gop), "crf": str(crf)}
    if codec == "libsvtav1":
        opts["preset"] = str(preset)
    else:
        opts["bf"] = "0"
    return opts


class EpisodeEncoder:
    """Encode one episode's frames to ``path`` (MP4), frame k at pts k / fps.

    Args:
        width, height: frame size in pixels (even for yuv420p).
        codec: ``libsvtav1`` | ``h264`` | ``hevc``; pix_fmt: ``yuv420p`` | ``yuv444p``.

    Raises:
        VideoError: the codec is not in this FFmpeg build, or the size is odd for yuv420p.
    """

    def __init__(self, path: Path, width: int, height: int, fps: int, codec: str = "libsvtav1",
                 pix_fmt: str = "yuv420p", gop: int = 2, crf: int = 30, preset: int = 12):
        av = _av()
        if pix_fmt == "yuv420p" and (width % 2 or height % 2):
            raise VideoError(f"{width}x{height}: yuv420p needs an even width and height")
        try:
            av.codec.Codec(codec, "w")
        except Exception:  # noqa: BLE001 - av raises UnknownCodecError or ValueError by version
            raise VideoError(f"codec {codec!r} is not in this PyAV/FFmpeg build (try --codec h264)") from None
        self.path = Path(path)
        self.fps = int(fps)
        self._av = av
        self._out = av.open(str(self.path), "w")
        self._st = self._out.add_stream(codec, rate=self.fps, options=codec_options(codec, gop, crf, preset))
        self._st.width, self._st.height, self._st.pix_fmt = width, height, pix_fmt
        self._st.codec_context.time_base = Fraction(1, self.fps)
        self.frames = 0

    def add(self, rgb: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        f = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        f.pts = self.frames
        f.time_base = Fraction(1, self.fps)
        for p in self._st.encode(f):
            self._out.mux(p)
        self.frames += 1

    def close(self) -> int:
        """Flush and close; returns the number of frames written."""
        if self._out is not None:
            for p in self._st.encode():
                self._out.mux(p)
            self._out.close()
            self._out = None
        return self.frames

    def abort(self) -> None:
        try:
            if self._out is not None:
                self._out.close()
        except Exception:  # noqa: BLE001 - best effort on an error path
            pass
        self._out = None
        self.path.unlink(missing_ok=True)


class ThreadedEncoder:
    """An :class:`EpisodeEncoder` fed through a bounded queue by its own thread, so the
    cameras of an episode encode in parallel (FFmpeg's encode runs without the GIL).
    ``add`` blocks when ``depth`` frames wait (bounded memory); an encoder error is raised
    by the next ``add`` or by ``close``. ``busy_s``/``busy_cpu_s``: wall/CPU time the thread
    spent encoding."""

    def __init__(self, path: Path, *args, depth: int = 8, **kwargs):
        import queue
        import threading

        self._enc = EpisodeEncoder(path, *args, **kwargs)
        self.path = self._enc.path
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self.busy_s = 0.0
        self.busy_cpu_s = 0.0   # CPU time of the encoding thread (FFmpeg's own threads not included)
        self._thread = threading.Thread(target=self._run, name=f"encode {self.path.stem}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import time

        while True:
            item = self._q.get()
            if item is None:
                return
            if self._error is not None:
                continue
            t, c = time.perf_counter(), time.thread_time()
            try:
                self._enc.add(item)
            except BaseException as exc:  # noqa: BLE001 - handed to the feeding thread
                self._error = exc
            self.busy_s += time.perf_counter() - t
            self.busy_cpu_s += time.thread_time() - c

    def add(self, rgb: np.ndarray) -> None:
        if self._error is not None:
            raise VideoError(f"{self.path.name}: encoding failed: {self._error}")
        self._q.put(rgb)

    def close(self) -> int:
        self._q.put(None)
        self._thread.join()
        if self._error is not None:
            self._enc.abort()
            raise VideoError(f"{self.path.name}: encoding failed: {self._error}")
        return self._enc.close()

    def abort(self) -> None:
        self._error = self._error or VideoError("aborted")
        self._q.put(None)
        self._thread.join(timeout=30)
        self._enc.abort()


class VideoAppender:
    """Append encoded frame ranges to one output MP4 by remuxing packets.

    ``append(src, start_frame, n_frames)`` copies the packets of frames
    ``[start_frame, start_frame + n_frames)`` of ``src`` (which must start on a keyframe:
    every episode is encoded with a fresh encoder, so its first frame is one) and returns
    ``(from_timestamp, to_timestamp)`` in s of the range in the output file.
    """

    def __init__(self, path: Path, fps: int):
        self.path = Path(path)
        self.fps = int(fps)
        self._tmp = self.path.with_name(self.path.stem + ".partial.mp4")
        self._out = None
        self._st = None
        self.frames = 0

    def append(self, src: Path, start_frame: int = 0, n_frames: int | None = None) -> tuple[float, float]:
        av = _av()
        with av.open(str(src), "r") as inp:
            ist = inp.streams.video[0]
            tb = ist.time_base
            if self._out is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._out = av.open(str(self._tmp), "w", format="mp4", options={"movflags": "faststart"})
                self._st = self._out.add_stream_from_template(template=ist, opaque=True)
                self._st.time_base = tb
            ticks = Fraction(1, self.fps) / tb   # input ticks per frame
            first = None
            count = 0
            for pkt in inp.demux(ist):
                if pkt.dts is None or pkt.pts is None:
                    continue
                k = round(pkt.pts / ticks)
                if k < start_frame or (n_frames is not None and k >= start_frame + n_frames):
                    continue
                if first is None:
                    if not pkt.is_keyframe:
                        raise VideoError(f"{src}: frame {k} is not a keyframe; cannot cut there")
                    first = k
                shift = round((self.frames - start_frame) * ticks)
                pkt.pts += shift
                pkt.dts += shift
                pkt.stream = self._st
                self._out.mux(pkt)
                count += 1
        n = count if n_frames is None else n_frames
        if count != n:
            raise VideoError(f"{src}: {count} frames from frame {start_frame}, expected {n}")
        t_from = self.frames / self.fps
        self.frames += n
        return t_from, self.frames / self.fps

    @property
    def size_bytes(self) -> int:
        return self._tmp.stat().st_size if self._tmp.exists() else 0

    def close(self) -> None:
        """Finish the file (moves it into place); nothing is written when nothing was appended."""
        if self._out is not None:
            self._out.close()
            self._out = None
            os.replace(self._tmp, self.path)


def video_info(path: Path) -> dict:
    """The ``info`` block of a video feature in ``meta/info.json`` (the keys LeRobot's
    ``get_video_info`` writes)."""
    av = _av()
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        has_audio = len(c.streams.audio) > 0
        return {"video.height": st.height, "video.width": st.width, "video.codec": st.codec_context.codec.canonical_name
                if hasattr(st.codec_context.codec, "canonical_name") else st.codec_context.name,
                "video.pix_fmt": st.pix_fmt or st.codec_context.pix_fmt, "video.is_depth_map": False,
                "video.fps": int(st.base_rate or st.average_rate), "video.channels": 3, "has_audio": has_audio}


def decode_frames(path: Path) -> list[tuple[float, np.ndarray]]:
    """Every frame of ``path`` as ``(pts in s, (H, W, 3) uint8 RGB)``, in presentation order."""
    av = _av()
    out = []
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        for f in c.decode(st):
            out.append((float(f.pts * st.time_base), f.to_ndarray(format="rgb24")))
    out.sort(key=lambda x: x[0])
    return out
