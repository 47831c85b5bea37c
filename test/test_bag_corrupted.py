"""Corrupted-bag suite: 200 seeded damaged copies of an uncompressed and a zstd bag.

Each bag is a labelled episode the QA passes and the exporter exports, split in two files (as a recording that split), and each copy damages one of
them. Damage kinds: truncation, byte flips inside chunks, zeroed ranges, random flips
anywhere, deleted or garbage metadata.yaml (alone and on top of the others), both copies
of a channel definition (its Channel record and the summary, plus one chunk).
For every copy, in process:

* ``info`` (``summarize`` and the CLI ``main``), ``BagReader`` and ``recover``
  (the CLI ``main``) raise no exception other than a clean BagError/ValueError
  (CLI: exit status, one-line error, no traceback);
* no message comes back that is not byte-identical (topic, log time, data) to one
  that was written (``validate_crc`` reader, and after recover);
* when the summaries open, the reader returns every message of every chunk whose
  bytes are untouched; after ``recover``, so does the rebuilt bag: **every** message of
  every untouched chunk, also when both copies of its channel definition in the damaged
  file were hit (the other file defines the channel: issue 23);
* the gate (issue 23), before ``recover``: a damaged copy (a chunk failing its checks, a
  truncated file, a damaged summary) is never judged better than ``fail`` by the QA
  (``qa_episode``) and never exported (``export_episodes`` with ``--include-failed``),
  and the export result says to run ``recover``.

The counts are printed (``pytest -s``) and asserted. Seeded: the same 200 copies every run.
"""
from __future__ import annotations

import contextlib
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from robot_capture.bag import BagReader, BagWriter, WriterOptions
from robot_capture.bag.chunks import chunk_records, decode_chunk_body, message_fields
from robot_capture.bag.completeness import list_mcap_files
from robot_capture.bag.errors import BagError
from robot_capture.cli import main as cli_main

pytestmark = pytest.mark.timeout(900)

COPIES_PER_BAG = 100
TOPICS = {"/joint_states": "sensor_msgs/msg/JointState", "/retarget/joint_command": "sensor_msgs/msg/JointState",
          "/camera/head/image_raw": "sensor_msgs/msg/Image"}
KINDS = ("truncate", "chunk_flip", "zero_range", "random_flips", "meta_delete", "meta_garbage", "definitions")


def _make_bag(d: Path, compression: str, seconds: float = 2.0):
    """A labelled 2 s episode the QA passes and the exporter exports (test/export_bags.py
    streams, serialized by rclpy): /joint_states 500 Hz, /retarget/joint_command 100 Hz,
    a 96x64 rgb8 camera at 30 Hz; 4 KiB chunks; split in two files at half time."""
    from rclpy.serialization import serialize_message as ser

    import export_bags as E

    msgs = []
    for i in range(int(seconds * 500) + 1):
        ns = E.T0 + int(round(i / 500 * 1e9))
        msgs.append((ns, "/joint_states", ser(E._js(E.JOINTS, E.joint_positions([i / 500])[0], ns))))
    for i in range(int(seconds * 100) + 1):
        ns = E.T0 + int(round(i / 100 * 1e9))
        cmd = E.joint_positions([i / 100])[0] + 0.01
        msgs.append((ns + 300_000, "/retarget/joint_command", ser(E._js(E.JOINTS, cmd, ns))))
    for i in range(int(seconds * 30) + 1):
        t = i / 30 + 0.002
        ns = E.T0 + int(round(t * 1e9))
        msgs.append((ns + 5_000_000, "/camera/head/image_raw", ser(E._image(E.frame_image(t), ns))))
    # sealed by size only (flush interval 1 h): the layout, and so what each seeded damage hits, is the
    # same on a loaded machine (a write loop paused 0.5 s sealed early, and copy #45 hit another record)
    w = BagWriter(d, WriterOptions(compression=compression, chunk_size=4096, background_flush=False,
                                   flush_interval_s=3600.0),
                  custom_data={"episode.task": "corrupt me", "episode.operator": "ann", "episode.success": "true",
                               "episode.start_time_ns": str(E.T0),
                               "episode.stop_time_ns": str(E.T0 + int(seconds * 1e9))})
    for t, ty in TOPICS.items():
        w.add_topic(t, ty)
    w.add_metadata("episode", {"task": "corrupt me"})
    half = E.T0 + int(seconds * 1e9 / 2)
    for ns, topic, data in sorted(msgs, key=lambda x: x[0]):
        if half is not None and ns >= half:
            w.split()
            half = None
        w.write(topic, data, ns, ns)
    w.add_metadata("episode", {"task": "corrupt me", "success": "true", "stop_reason": "stopped"})
    w.close()
    return d


def _layout(f: Path):
    """Pristine file: chunks [(offset, length, [(topic, log_time, data)])], channel record ranges
    {topic: (offset, length)}, summary start, size."""
    from mcap.reader import make_reader

    with open(f, "rb") as h:
        s = make_reader(h).get_summary()
        raw = f.read_bytes()
    chunks = []
    for ci in s.chunk_indexes:
        _a, _b, data = decode_chunk_body(raw[ci.chunk_start_offset + 9:ci.chunk_start_offset + ci.chunk_length])
        msgs = []
        for op, body in chunk_records(data):
            if op == 5:
                cid, _seq, t, _p, payload = message_fields(body)
                msgs.append((s.channels[cid].topic, t, bytes(payload)))
        chunks.append((ci.chunk_start_offset, ci.chunk_length, msgs))
    chan_ranges, pos = {}, 8
    while pos + 9 <= len(raw):
        op, length = struct.unpack_from("<BQ", raw, pos)
        if op == 0x06:
            break
        if op == 0x04:
            topic_len = struct.unpack_from("<I", raw, pos + 9 + 4)[0]
            chan_ranges[raw[pos + 9 + 8:pos + 9 + 8 + topic_len].decode()] = (pos, 9 + length)
        pos += 9 + length
    summary_start = struct.unpack_from("<Q", raw, len(raw) - 8 - 20)[0]
    return chunks, chan_ranges, summary_start, len(raw)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """{compression: (bag dir, {file name: layout})}, two files per bag."""
    out = {}
    for comp in ("none", "zstd"):
        d = _make_bag(tmp_path_factory.mktemp(f"pristine_{comp}") / "bag", comp)
        files = list_mcap_files(d)
        assert len(files) == 2
        v, res = _gate(d, tmp_path_factory.mktemp(f"ds_{comp}"), "pristine")  # undamaged: passes, exported
        assert v.verdict == "pass" and res.status == "exported", (v.reasons, res.reason)
        (d / "qa.json").unlink(missing_ok=True)
        out[comp] = (d, {f.name: _layout(f) for f in files})
    return out


def _damage(rng, raw: bytes, chunks, kind: str, chan_ranges=None, summary_start=0):
    """(new bytes, sorted array of changed offsets, truncated length or None, metadata action).
    ``definitions``: both copies of a channel definition hit (its Channel record zeroed and a
    byte of the summary flipped), and a byte of one chunk."""
    a = np.frombuffer(raw, dtype=np.uint8).copy()
    n = len(a)
    cut = None
    meta = None
    if kind == "truncate":
        cut = int(rng.integers(0, n))
    elif kind == "chunk_flip":
        for k in rng.choice(len(chunks), size=int(rng.integers(1, 4)), replace=False):
            off, length, _m = chunks[int(k)]
            for p in rng.integers(off, off + length, size=int(rng.integers(1, 5))):
                a[p] ^= np.uint8(1 << int(rng.integers(0, 8)))
    elif kind == "zero_range":
        start = int(rng.integers(0, n))
        a[start:start + int(rng.integers(1, n // 8))] = 0
    elif kind == "random_flips":
        for p in rng.integers(0, n, size=int(rng.integers(1, 21))):
            a[p] ^= np.uint8(int(rng.integers(1, 256)))
    elif kind == "definitions":
        topics = sorted(chan_ranges)
        for t in rng.choice(topics, size=int(rng.integers(1, len(topics) + 1)), replace=False):
            off, length = chan_ranges[str(t)]
            a[off:off + length] = 0
        a[int(rng.integers(summary_start, n - 8))] ^= np.uint8(0x10)
        off, length, _m = chunks[int(rng.integers(0, len(chunks)))]
        a[int(rng.integers(off + 25, off + length))] ^= np.uint8(0x08)
    if kind.startswith("meta_") or rng.random() < 0.3:
        meta = "delete" if kind == "meta_delete" or (not kind.startswith("meta_") and rng.random() < 0.5) \
            else "garbage"
        if kind.startswith("meta_") and rng.random() < 0.5:  # metadata damage on top of a chunk flip
            off, length, _m = chunks[int(rng.integers(0, len(chunks)))]
            a[int(rng.integers(off, off + length))] ^= np.uint8(0x40)
    changed = np.nonzero(a != np.frombuffer(raw, dtype=np.uint8))[0]
    new = a.tobytes()
    if cut is not None:
        new = new[:cut]
    return new, changed, cut, meta


def _untouched(off: int, length: int, changed, cut) -> bool:
    if cut is not None and off + length > cut:
        return False
    i = np.searchsorted(changed, off)
    return not (i < len(changed) and changed[i] < off + length)


def _damaged(chunks, summary_start, size, changed, cut) -> bool:
    """A copy the gate must stop: a chunk fails its checks (a byte changed anywhere in the
    chunk record but its message start/end times, bytes 9-24, which no check covers and no
    reader uses: the chunk index has its own), the file was cut, or its summary/footer changed."""
    if cut is not None or not _untouched(summary_start, size - summary_start, changed, cut):
        return True
    for off, length, _m in chunks:
        if not (_untouched(off, 9, changed, cut) and _untouched(off + 25, length - 25, changed, cut)):
            return True
    return False


GARBAGE_META = [b"\x00\xff\xfe garbage \x89", b"rosbag2_bagfile_information: [1, 2", b"- just\n- a list\n",
                b"rosbag2_bagfile_information:\n  version: nine\n  topics_with_message_count: 7\n"]


def _run_cli(argv) -> tuple[int | None, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(argv)
    return code, out.getvalue(), err.getvalue()


def _gate(d: Path, tmp_path: Path, tag: str):
    """(QA verdict, export result) of a copy before recover (nothing written into the copy).
    The verdict is None when the QA refuses the bag outright (ValueError: an unreadable
    metadata.yaml, whose labels it cannot read; ``robot-capture qa`` prints it as an error)."""
    from robot_capture.export.lerobot import ExportOptions, export_episodes
    from robot_capture.qa.run import qa_episode

    try:
        v = qa_episode(d, write=False)
    except ValueError:
        v = None
    summary = export_episodes([d], tmp_path / f"ds_{tag}",
                              ExportOptions(include_failed=True, run_qa=False, codec="h264"), progress=False)
    return v, summary.results[0]


def test_corrupted_bag_suite(tmp_path, pristine):
    from robot_capture.cli.info import summarize

    counts = dict(copies=0, tracebacks=0, corrupted_payloads=0, reader_opened=0, reader_missing=0,
                  recover_missing=0, expected_after_recover=0, recovered=0, damaged_chunks_reported=0,
                  refused_cleanly=0, damaged_copies=0, qa_fail=0, qa_refused=0, qa_better_than_fail=0, export_refused=0,
                  exported_damaged=0, channels_lost_in_damaged_file=0)
    failures = []
    for comp, (src, layouts) in pristine.items():
        names = sorted(layouts)
        written = {m for _c, _r, _s, _z in layouts.values() for _o, _l, msgs in _c for m in msgs}
        raws = {n: (src / n).read_bytes() for n in names}
        meta_text = (src / "metadata.yaml").read_bytes()
        for i in range(COPIES_PER_BAG):
            rng = np.random.default_rng(1000 * (comp == "zstd") + i)
            kind = KINDS[i % len(KINDS)]
            target = names[i % len(names)]
            chunks, chan_ranges, summary_start, size = layouts[target]
            new, changed, cut, meta = _damage(rng, raws[target], chunks, kind, chan_ranges, summary_start)
            d = tmp_path / f"{comp}_{i}"
            d.mkdir()
            for n in names:
                (d / n).write_bytes(new if n == target else raws[n])
            if meta != "delete":
                (d / "metadata.yaml").write_bytes(GARBAGE_META[i % len(GARBAGE_META)] if meta else meta_text)
            counts["copies"] += 1
            tag = f"{comp}#{i} {kind} {target[-6:]} meta={meta} cut={cut} changed={len(changed)}"
            summary_ok = _untouched(summary_start, size - summary_start, changed, cut)
            chan_ok = {t: summary_ok or _untouched(o, n, changed, cut) for t, (o, n) in chan_ranges.items()}
            counts["channels_lost_in_damaged_file"] += sum(not ok for ok in chan_ok.values())
            want = {m for o, n, msgs in chunks if _untouched(o, n, changed, cut) for m in msgs}
            for n in names:
                if n != target:
                    want |= {m for _o, _n, msgs in layouts[n][0] for m in msgs}
            damaged = _damaged(chunks, summary_start, size, changed, cut)
            counts["damaged_copies"] += damaged

            # info: summarize and the CLI, text and JSON
            try:
                summarize(str(d))
            except (BagError, ValueError):
                pass
            except Exception as exc:  # noqa: BLE001 - what the suite counts
                counts["tracebacks"] += 1
                failures.append(f"{tag}: summarize raised {type(exc).__name__}: {exc}")
            for argv in (["info", str(d)], ["info", "--json", str(d)]):
                try:
                    code, _out, err = _run_cli(argv)
                    if code not in (0, 1, 2) or "Traceback" in err:
                        raise AssertionError(f"exit {code}, stderr {err[-300:]!r}")
                except Exception as exc:  # noqa: BLE001
                    counts["tracebacks"] += 1
                    failures.append(f"{tag}: {' '.join(argv[:-1])} raised {type(exc).__name__}: {exc}")

            # BagReader with CRC validation, before recover
            got = None
            try:
                r = BagReader(d)
                got = [(m.topic, m.log_time_ns, m.data) for m in r.messages()]
                counts["reader_opened"] += 1
                counts["damaged_chunks_reported"] += len(r.damaged_chunks)
            except (BagError, ValueError):
                counts["refused_cleanly"] += 1
            except Exception as exc:  # noqa: BLE001
                counts["tracebacks"] += 1
                failures.append(f"{tag}: BagReader raised {type(exc).__name__}: {exc}")
            if got is not None:
                bad = [m for m in got if m not in written]
                counts["corrupted_payloads"] += len(bad)
                missing = want - set(got)
                counts["reader_missing"] += len(missing)
                if bad or missing:
                    failures.append(f"{tag}: reader returned {len(bad)} corrupted, missed {len(missing)}")

            # the gate, before recover: QA verdict and export
            try:
                v, res = _gate(d, tmp_path, f"{comp}_{i}")
            except Exception as exc:  # noqa: BLE001
                counts["tracebacks"] += 1
                failures.append(f"{tag}: QA/export raised {type(exc).__name__}: {exc}")
            else:
                counts["qa_fail"] += v is not None and v.verdict == "fail"
                counts["qa_refused"] += v is None
                counts["export_refused"] += res.status != "exported" and "robot-capture recover" in res.reason
                if damaged and v is not None and v.verdict != "fail":
                    counts["qa_better_than_fail"] += 1
                    failures.append(f"{tag}: damaged, QA verdict {v.verdict}: {v.reasons[:3]}")
                if damaged and (res.status == "exported" or "robot-capture recover" not in res.reason):
                    counts["exported_damaged"] += res.status == "exported"
                    failures.append(f"{tag}: damaged, export {res.status}: {res.reason}")

            # recover (CLI, in process), then read the rebuilt bag
            try:
                code, out, err = _run_cli(["recover", "-q", "--json", str(d)])
                if code not in (0, 1, 2) or "Traceback" in err:
                    raise AssertionError(f"exit {code}, stderr {err[-300:]!r}")
            except Exception as exc:  # noqa: BLE001
                counts["tracebacks"] += 1
                failures.append(f"{tag}: recover raised {type(exc).__name__}: {exc}")
                continue
            if any(p.name.endswith(".recovering") for p in d.iterdir()):
                failures.append(f"{tag}: recover left a .recovering file")
            counts["expected_after_recover"] += len(want)
            try:
                after = [(m.topic, m.log_time_ns, m.data) for m in BagReader(d).messages()] \
                    if code == 0 and any(d.glob("*.mcap")) else []
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{tag}: reading the recovered bag raised {type(exc).__name__}: {exc}")
                counts["tracebacks"] += isinstance(exc, BagError) is False
                continue
            bad = [m for m in after if m not in written]
            counts["corrupted_payloads"] += len(bad)
            missing = want - set(after)
            counts["recover_missing"] += len(missing)
            counts["recovered"] += len(want & set(after))
            if bad or missing:
                stopped = [f["stopped_at"] for f in json.loads(out)["files"]] if out else err[-200:]
                failures.append(f"{tag}: after recover {len(bad)} corrupted, missed {len(missing)} "
                                f"(recover: {stopped})")
    print("\ncorrupted-bag suite:", json.dumps(counts))
    for line in failures[:30]:
        print("  ", line)
    assert counts["copies"] == 2 * COPIES_PER_BAG
    assert counts["reader_opened"] > 20 and counts["expected_after_recover"] > 100_000
    assert counts["damaged_copies"] > 100 and counts["channels_lost_in_damaged_file"] > 0
    assert not failures, f"{len(failures)} failures, first: {failures[:5]}"
    assert counts["tracebacks"] == 0 and counts["corrupted_payloads"] == 0
    assert counts["reader_missing"] == 0 and counts["recover_missing"] == 0
    assert counts["qa_better_than_fail"] == 0 and counts["exported_damaged"] == 0
