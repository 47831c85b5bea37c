"""Per-camera encoder threads between the recorder node's subscriptions and the :class:`Recorder`.

The recorder's receive path stays as it was for every topic but the encoded cameras: for those,
the subscription callback only puts the CDR buffer on the camera's bounded queue
(:meth:`VideoStage.submit`, no copy, no encoding) and returns; one thread per camera encodes
(:class:`robot_capture.video.encode.FrameEncoder`, whose FFmpeg calls release the GIL) and hands
each ``foxglove_msgs/msg/CompressedVideo`` message to :meth:`Recorder.on_message` under the
camera's own topic name, with the frame's receive time, source time, sequence number and
publisher, so drop detection, rates and the QA's expectations keep working per topic.

* Keyframes: the first frame of every episode and of every file is an IDR. A split through
  :meth:`Recorder.split` waits for the frame being encoded (``Recorder.split_guard``); a split by
  size or duration happens inside the writer's ``write``: a frame that is not a keyframe is
  written with the :attr:`Recorder.segment` it was encoded in, and when the file changed since,
  or this write would start the next file (``BagWriter.split_due``), nothing is written and the
  same picture is encoded again as a keyframe (one extra encode per split). So every split file
  starts with a keyframe and decodes on its own.
* Stop: :meth:`drain` (``Recorder.before_close``) waits up to ``drain_timeout_s`` for the queued
  frames, so the frames received before the stop are in the bag.
* Idle: nothing is encoded; the message only updates the topic's receive statistics.
* Problems (counted per topic by :meth:`Recorder.problem`, stored in the bag's ``recorder_problems``
  record, warned once): ``encoder_unavailable`` (the camera is refused, never recorded raw
  silently), ``pixel_format``, ``bad_image``, ``resolution_change``, ``odd_size_padded``,
  ``encoder_overrun`` (the queue of ``queue_frames`` was full: that frame is dropped).
"""
from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from typing import Mapping

from robot_capture.video.encode import (EncoderError, EncoderSettings, EncoderUnavailableError, FrameEncoder,
                                        UnsupportedPixelFormatError)
from robot_capture.video.msgdef import COMPRESSED_VIDEO, serialize_compressed_video

__all__ = ["VideoStage", "settings_from_streams"]

log = logging.getLogger(__name__)


def settings_from_streams(streams) -> dict[str, EncoderSettings]:
    """``{topic: EncoderSettings}`` of the station contract's sensor_msgs/Image streams whose
    ``codec`` is ``h264`` or ``lossless`` (fps = the stream's ``rate_hz``, else 30; preset = its
    ``preset``, else ``ultrafast``). Streams with another codec ("", ``raw``) are left out."""
    out = {}
    for s in streams:
        codec = getattr(s, "codec", "") or ""
        if codec in ("h264", "lossless") and s.type in ("sensor_msgs/msg/Image", ""):
            out[s.topic] = EncoderSettings(codec=codec, fps=float(s.rate_hz or 30.0),
                                           preset=getattr(s, "preset", "") or "ultrafast")
    return out


class _Camera:
    def __init__(self, stage: "VideoStage", topic: str, settings: EncoderSettings, queue_frames: int):
        self.stage, self.topic, self.settings = stage, topic, settings
        self.q: queue.Queue = queue.Queue(maxsize=max(1, queue_frames))
        self.lock = threading.Lock()       # held while one frame is encoded and written
        self.error = ""
        self.encoder: FrameEncoder | None = None
        self._segment = None
        self._flags: set[str] = set()
        try:
            self.encoder = FrameEncoder(settings, name=topic, logger=stage.log)
        except (EncoderUnavailableError, ValueError) as exc:
            self.error = f"{topic}: {exc}"
            stage.log.error(f"video: {self.error}; this camera is NOT recorded")
            return
        self.thread = threading.Thread(target=self._run, name=f"video{topic.replace('/', '_')}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        rec = self.stage.recorder
        while True:
            item = self.q.get()
            try:
                if item is None:
                    return
                with self.lock:
                    self._one(rec, *item)
            except Exception as exc:  # noqa: BLE001 - never let one frame end the camera's thread
                rec.problem(self.topic, "video_encode", f"video {self.topic}: frame not encoded: {exc}")
            finally:
                self.q.task_done()

    def _one(self, rec, data, recv_ns, source_ns, seq, publisher) -> None:
        seg = rec.segment
        if seg is None:  # stopped meanwhile: statistics only
            rec.on_message(self.topic, COMPRESSED_VIDEO, data, recv_ns, source_ns, seq, publisher)
            return
        enc = self.encoder
        if seg != self._segment:
            self._segment = seg
            enc.force_keyframe()
        try:
            frames = enc.encode_message(data)
        except UnsupportedPixelFormatError as exc:
            rec.problem(self.topic, "pixel_format", f"video: {exc}; frames dropped")
            return
        except EncoderError as exc:
            rec.problem(self.topic, "encoder_unavailable", f"video: {exc}; frames dropped")
            return
        except ValueError as exc:
            rec.problem(self.topic, "bad_image", f"video {self.topic}: bad image message ({exc}); dropped")
            return
        for flag in enc.flags - self._flags:
            rec.problem(self.topic, flag, f"video {self.topic}: {flag.replace('_', ' ')} (see the recorder log)")
        if "resolution_change" in enc.flags:
            enc.flags.discard("resolution_change")   # count every change, not only the first
        self._flags = set(enc.flags)
        for f in frames:
            msg = serialize_compressed_video(f.stamp_ns, f.frame_id, f.data, f.format)
            if rec.on_message(self.topic, COMPRESSED_VIDEO, msg, recv_ns, source_ns, seq, publisher,
                              None if f.keyframe else seg) is None:
                # the file changed while this frame was encoded, or this write starts the next file
                # (max_bag_size / max_bag_duration_s): the same picture again, as the new file's keyframe
                enc.force_keyframe()
                for k in enc.encode_message(data):
                    rec.on_message(self.topic, COMPRESSED_VIDEO,
                                   serialize_compressed_video(k.stamp_ns, k.frame_id, k.data, k.format), recv_ns,
                                   source_ns, seq, publisher)
                self._segment = rec.segment


class VideoStage:
    """Encode the given camera topics for ``recorder`` (see the module docstring).

    Args:
        recorder: a :class:`robot_capture.record.recorder.Recorder` (its ``before_close`` and
            ``split_guard`` hooks are set here).
        cameras: ``{image topic: EncoderSettings}``; the topic keeps its name in the bag, with the
            type ``foxglove_msgs/msg/CompressedVideo``.
        logger: object with ``info``/``warning``/``error``.
        queue_frames: frames waiting per camera before new ones are dropped (8: 0.27 s at 30 Hz).
        drain_timeout_s: how long a stop waits for the queued frames.

    A camera whose encoder does not open is listed in :attr:`errors` and logged; its frames are
    refused (``encoder_unavailable``), never recorded raw.
    """

    def __init__(self, recorder, cameras: Mapping[str, EncoderSettings], logger=None, queue_frames: int = 8,
                 drain_timeout_s: float = 2.0):
        self.recorder = recorder
        self.log = logger or log
        self.drain_timeout_s = float(drain_timeout_s)
        self.cameras = {t: _Camera(self, t, s, queue_frames) for t, s in cameras.items()}
        self.errors = {t: c.error for t, c in self.cameras.items() if c.error}
        recorder.before_close = self.drain
        recorder.split_guard = self.pause

    def handles(self, topic: str) -> bool:
        """True for a camera topic this stage encodes (or refuses: its encoder failed)."""
        return topic in self.cameras

    def add_topic(self, topic: str, offered_qos_profiles: list | None = None) -> bool:
        """Register the camera topic with the recorder as CompressedVideo."""
        return self.recorder.add_topic(topic, COMPRESSED_VIDEO, offered_qos_profiles)

    def submit(self, topic: str, data, recv_ns: int, source_ns: int | None = None, seq: int | None = None,
               publisher: bytes | None = None) -> None:
        """One received sensor_msgs/Image (CDR) of a camera topic; returns at once."""
        cam = self.cameras[topic]
        rec = self.recorder
        if cam.error:
            rec.problem(topic, "encoder_unavailable", f"video: {cam.error}; camera not recorded")
            return
        if rec.segment is None:
            rec.on_message(topic, COMPRESSED_VIDEO, data, recv_ns, source_ns, seq, publisher)  # statistics only
            return
        try:
            cam.q.put_nowait((data, recv_ns, source_ns, seq, publisher))
        except queue.Full:
            rec.problem(topic, "encoder_overrun", f"video {topic}: encoder behind by {cam.q.maxsize} frames; "
                        "frames dropped (a slower preset, fewer cameras, or a hardware encoder)")
            rec.on_lost(topic, 1)

    def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued frame is encoded and written (at most ``timeout_s``, default
        ``drain_timeout_s``); True if all were."""
        deadline = time.monotonic() + (self.drain_timeout_s if timeout_s is None else timeout_s)
        for cam in self.cameras.values():
            while cam.q.unfinished_tasks and time.monotonic() < deadline:
                time.sleep(0.005)
        left = sum(c.q.unfinished_tasks for c in self.cameras.values())
        if left:
            self.log.warning(f"video: {left} frame(s) still encoding at stop; not in this episode")
        return not left

    @contextlib.contextmanager
    def pause(self):
        """Hold every camera between two frames (a split: the next frame is a keyframe in the new file)."""
        with contextlib.ExitStack() as stack:
            for cam in self.cameras.values():
                stack.enter_context(cam.lock)
            yield

    def close(self) -> None:
        """Finish the queued frames and stop the threads."""
        for cam in self.cameras.values():
            if not cam.error:
                cam.q.put(None)
        for cam in self.cameras.values():
            if not cam.error:
                cam.thread.join(timeout=self.drain_timeout_s)
