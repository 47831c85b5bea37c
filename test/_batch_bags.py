"""Real bags from the simulated floor for the batch tests, recorded once per test process.

test/_qa_floor.py brings up the sim floor (mocap_replay on a real CMU clip -> retarget ->
robot_sim, two synthetic cameras, the recorder) and records one short episode through the
recorder's services. :func:`archive` copies it to ``n`` bag directories named
``<name>_cNN``, renames each copy's ``.mcap`` file after its directory (rosbag2's own naming,
metadata.yaml updated) and relabels it (``notes``, a metadata.yaml rewrite). Every copy then
has its own content sha256 for the batch ledger (which covers metadata.yaml: labels are
inputs of QA and export) and its own recording key for the exporter (which covers the
``.mcap`` files with their names, not metadata.yaml: two copies under one file name would
be one recording to it, and the merge would keep one), while the message data are the floor's.
Every third copy is labelled failed (success false).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

_RECORDED: list[Path] = []


def recorded_bags() -> list[Path]:
    """One real floor episode (3 s), recorded on first use in this process (test/_qa_floor.py's
    light floor, which waits for the recorder to accept the start)."""
    if not _RECORDED:
        from _qa_floor import record_clean_episode

        last = None
        for attempt in range(2):  # a loaded 2-core box can starve the floor's start-up: try again
            out = Path(tempfile.mkdtemp(prefix="rc_batch_floor_"))
            try:
                bag, _expected = record_clean_episode(out / "episodes", seconds=3.0, log_path=out / "floor.log")
                _RECORDED.append(bag)
                break
            except RuntimeError as exc:
                last = exc
        else:
            raise RuntimeError(f"the sim floor did not record an episode: {last}")
    return list(_RECORDED)


def _rename_mcap(bag: Path) -> None:
    from robot_capture.bag.metadata import read_metadata, write_metadata

    old = next(bag.glob("*.mcap"))
    new = f"{bag.name}_0.mcap"
    old.rename(bag / new)
    meta = read_metadata(bag)
    meta.relative_file_paths = [new]
    for f in meta.files:
        f.path = new
    write_metadata(bag, meta)


def archive(root: Path, n: int = 12, bad: bool = True) -> tuple[list[Path], dict]:
    """``n`` relabelled copies of the floor episodes under ``root/archive/day1``; with ``bad``,
    also a non-bag file and a truncated bag. Returns (good bags sorted, {"not_bag", "truncated"})."""
    from robot_capture.episodes import relabel

    src = recorded_bags()
    day = root / "archive" / "day1"
    day.mkdir(parents=True)
    bags = []
    for i in range(n):
        d = day / f"{src[0].name}_c{i:02d}"
        shutil.copytree(src[0], d)
        _rename_mcap(d)
        relabel(d, notes=f"batch test copy {i}", success=i % 3 != 2)
        bags.append(d)
    extra = {}
    if bad:
        (day / "README.txt").write_text("not a bag\n")
        extra["not_bag"] = day / "README.txt"
        t = day / "zz_truncated"
        shutil.copytree(src[0], t)
        mcap = next(t.glob("*.mcap"))
        data = mcap.read_bytes()
        mcap.write_bytes(data[: len(data) // 3])
        extra["truncated"] = t
    return sorted(bags), extra
