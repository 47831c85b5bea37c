"""Video QA on a REAL recorded bag from the simulated floor, with planted camera defects.

One clean episode (4 s; head camera raw rgb8, front camera JPEG, both the synthetic camera of
robot_capture/sim drawing the moving robot) is recorded once per module on the sim floor
(test/_qa_floor.py). Each defect is a rewritten copy of it (test/_qa_defects.py load/save):
a black stretch, a frozen stretch while the joints move, a blurred stretch, a corrupted raw
frame, a truncated JPEG. Each must be caught by its own video check and by nothing else (every
finding the clean episode lacks is of that check); the clean episode must pass.
"""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from robot_capture.episodes import load_episode
from robot_capture.qa.run import qa_episode, qa_paths

import _qa_defects as D
from _qa_floor import record_clean_episode

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.xdist_group("sim_floor"), pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """(clean bag, expected rates, its verdict, attempts): re-recorded (up to 3 times) when a
    loaded machine lost data, as in test_qa_defects, or when a floor node had to be killed at
    shutdown (robot_sim SIGKILLed after SIGTERM on a loaded machine: not what this test judges)."""
    root = tmp_path_factory.mktemp("qa_video_clean")
    best, error = None, None
    for attempt in range(3):
        try:
            bag, exp = record_clean_episode(root / f"rec{attempt}", seconds=4.0)
        except RuntimeError as exc:  # "floor node exit codes ...": the bag is not trusted, record again
            error = exc
            continue
        v = qa_episode(bag, expected=exp, write=False)
        if best is None or len(v.findings) < len(best[2].findings):
            best = (bag, exp, v, attempt + 1)
        if v.verdict == "pass":
            break
    if best is None:
        raise error
    return best


def _pixels(data: bytes) -> tuple[int, int, int, int, int]:
    """(height, width, step, data length, data offset) of raw Image CDR bytes (rgb8)."""
    from robot_capture.qa.frames import _raw_fields

    h, w, enc, step, n, off = _raw_fields(data)
    assert enc == "rgb8"
    return h, w, step, n, off


def _with_pixels(data: bytes, img: np.ndarray) -> bytes:
    h, w, step, n, off = _pixels(data)
    return data[:off] + np.ascontiguousarray(img, np.uint8).tobytes() + data[off + n:]


def _image(data: bytes) -> np.ndarray:
    h, w, step, n, off = _pixels(data)
    return np.frombuffer(data, np.uint8, n, off).reshape(h, w, 3)


def _edit_span(src, dst, edit_frame, topic=D.HEAD, at_s=1.0, length_s=2.0):
    """Rewrite the frames of ``topic`` stamped in [at_s, at_s + length_s) from the episode start:
    ``edit_frame(data, first data of the span) -> data``."""
    def edit(topics, msgs, custom):
        t0 = D.start_ns(custom) + int(at_s * 1e9)
        span = [m for m in msgs[topic] if t0 <= D.stamp(m[2]) < t0 + int(length_s * 1e9)]
        first = span[0][2]
        for m in span:
            m[2] = edit_frame(m[2], first)
    return D._copy(src, dst, edit)


def black_stretch(src, dst):
    """2 s of black head-camera frames (all pixels 0), as a lens cap or a dead sensor gives."""
    return _edit_span(src, dst, lambda d, _f: _with_pixels(d, np.zeros_like(_image(d))))


def frozen_stretch(src, dst):
    """2 s of the head camera repeating one frame (stamps advance) while the robot moves."""
    return _edit_span(src, dst, lambda d, f: _with_pixels(d, _image(f)))


def blurred_stretch(src, dst):
    """1.2 s of head-camera frames out of focus (Gaussian blur, sigma 2 px)."""
    import cv2

    return _edit_span(src, dst, lambda d, _f: _with_pixels(d, cv2.GaussianBlur(_image(d), (0, 0), 2.0)),
                      length_s=1.2)


def corrupted_raw_frame(src, dst):
    """One head-camera frame whose pixel data is one row short for rgb8 160x120."""
    def cut(d, f):
        if d is not f:
            return d
        h, w, step, n, off = _pixels(d)
        return d[:off - 4] + struct.pack("<I", n - step) + d[off:off + n - step] + d[off + n:]
    return _edit_span(src, dst, cut, length_s=0.05)


def truncated_jpeg(src, dst):
    """One front-camera JPEG cut in half (a writer killed mid-frame)."""
    from robot_capture.qa.frames import _compressed_data

    def cut(d, f):
        if d is not f:
            return d
        data = _compressed_data(d)
        start = d.index(bytes(data[:16]))  # the JPEG's first bytes (SOI, APP0) follow its length
        half = len(data) // 2
        tail = d[start + len(data):]  # none: the data sequence is the message's last member
        return d[:start - 4] + struct.pack("<I", half) + bytes(data[:half]) + tail
    return _edit_span(src, dst, cut, topic=D.FRONT, length_s=0.05)


DEFECTS = {
    # name: (function, the check that must catch it, severity, topic, the verdict's error cause)
    "black_2s": (black_stretch, "exposure", "fail", D.HEAD, "camera dark"),
    "frozen_2s": (frozen_stretch, "frozen", "fail", D.HEAD, "camera frozen"),
    "blurred_1.2s": (blurred_stretch, "blur", "fail", D.HEAD, "camera blurred"),
    "raw_frame_short": (corrupted_raw_frame, "decode", "fail", D.HEAD, "decode error"),
    "jpeg_truncated": (truncated_jpeg, "decode", "fail", D.FRONT, "decode error"),
}


def _kind(f):
    return (f.check, f.topic, f.severity)


def test_clean_episode_passes_the_video_checks(clean):
    bag, exp, v, attempts = clean
    assert v.verdict == "pass", f"after {attempts} recording(s): {v.summary()}"
    video = v.metrics["video"]
    assert set(video) == {D.HEAD, D.FRONT}
    assert all(x["bad"] == 0 and x["sampled"] >= 10 for x in video.values()), video


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_planted_camera_defect_caught_by_its_check_only(clean, tmp_path, name):
    bag, exp, v_clean, _ = clean
    make, check, severity, topic, cause = DEFECTS[name]
    bad = make(bag, tmp_path / name)
    v = qa_episode(bad, expected=exp)
    new = [f for f in v.findings if f.check == check and _kind(f) not in {_kind(g) for g in v_clean.findings}]
    assert new, f"{name}: not caught by {check!r}; verdict {v.summary()}"
    assert {f.topic for f in new} == {topic}, [(f.topic, f.message) for f in new]
    assert v.verdict == severity == new[0].severity, v.summary()
    kinds = {_kind(f) for f in v_clean.findings}
    other = [(f.check, f.message) for f in v.findings if f.check != check and _kind(f) not in kinds]
    assert not other, f"{name}: also caught by {other}"
    # the error cause is derived from the findings, stored in qa.json and read back through the store
    assert v.error_cause == cause and v_clean.error_cause == ""
    assert json.loads((bad / "qa.json").read_text())["error_cause"] == cause
    assert load_episode(bad).verdict.error_cause == cause


def test_planted_stretch_figures_say_where_and_how_long(clean, tmp_path):
    bag, exp, _v, _ = clean
    v = qa_episode(black_stretch(bag, tmp_path / "black"), expected=exp, write=False)
    f = next(f for f in v.findings if f.check == "exposure")
    # 2 s planted from 1.0 s, judged on samples 0.1 s apart: the stretch is found within a sample
    assert 1.8 <= f.figures["longest_s"] <= 2.2 and 0.9 <= f.figures["at_s"] <= 1.2, f.figures
    assert f.message.startswith(("head camera (/camera/head/image_raw): black frames for ", "camera head: black"))
    v = qa_episode(corrupted_raw_frame(bag, tmp_path / "raw"), expected=exp, write=False)
    f = next(f for f in v.findings if f.check == "decode")
    assert f.figures["bad_frames"] == 1 and "bytes of pixels" in f.figures["problem"], f.figures


def test_report_ranks_the_error_causes_and_export_has_the_column(clean, tmp_path):
    """A day of 5 episodes (2 black, 1 frozen, 1 corrupted, 1 clean): the report ranks camera dark
    first; the LeRobot export (failed episodes included) carries each episode's cause."""
    import pyarrow.parquet as pq

    from robot_capture.export.lerobot import ExportOptions, export_episodes
    from robot_capture.qa.report import build_report

    bag, exp, _v, _ = clean
    day = tmp_path / "day"
    black_stretch(bag, day / "e1")
    black_stretch(bag, day / "e2")
    frozen_stretch(bag, day / "e3")
    corrupted_raw_frame(bag, day / "e4")
    D._copy(bag, day / "e5", lambda *_: None)
    qa_paths([day], expected=exp)
    summary = build_report([day], tmp_path / "report.html", progress=False)
    # most episodes first; a tie in the fixed list's priority order (decode error before camera frozen)
    assert [(c, n) for c, n, _e in summary["causes"]] == [("camera dark", 2), ("decode error", 1),
                                                          ("camera frozen", 1)]
    page = (tmp_path / "report.html").read_text()
    assert '<table id="causes">' in page and "<td>2</td><td class=\"l\">camera dark</td>" in page
    res = export_episodes([day / "e1", day / "e3", day / "e5"], tmp_path / "ds",
                          ExportOptions(include_failed=True, fps=30), progress=False)
    assert [r.status for r in res.results] == ["exported"] * 3, res.lines()
    eps = pq.read_table(next((tmp_path / "ds" / "meta" / "episodes").glob("chunk-*/file-*.parquet"))).to_pandas()
    assert dict(zip(eps["source/bag"].map(lambda p: p.rsplit("/", 1)[-1]), eps["qa/error_cause"])) == {
        "e1": "camera dark", "e3": "camera frozen", "e5": ""}
