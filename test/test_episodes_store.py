"""The shared episode model: finding bags, labels (one source of truth), relabel, discard, verdict sidecar."""
from __future__ import annotations

import json

import pytest

from robot_capture.bag.errors import NotABagError
from robot_capture.bag.reader import BagReader
from robot_capture.bag.writer import BagWriter, WriterOptions
from robot_capture.episodes import (DISCARDED_DIR, EpisodeBusyError, Finding, Verdict, discard, find_bags,
                                    load_episode, purge_discarded, read_verdict, relabel, write_verdict)


def _bag(path, **labels):
    w = BagWriter(path, WriterOptions(fsync=False, background_flush=False, async_io=False))
    w.add_topic("/a", "std_msgs/msg/String")
    w.write("/a", b"\x00\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00", 1_000_000_000)
    for k, v in labels.items():
        w.set_custom_data(f"episode.{k}", v)
    w.close()
    return path


def test_find_bags_walks_folders_and_skips_discarded(tmp_path):
    a = _bag(tmp_path / "day" / "20260101-000000_x_0000")
    b = _bag(tmp_path / "day" / "sub" / "20260101-000001_x_0001")
    _bag(tmp_path / "day" / DISCARDED_DIR / "20260101-000002_x_0002")
    (tmp_path / "day" / "notes.txt").write_text("hi")
    not_bags = []
    assert find_bags([tmp_path / "day"], not_bags=not_bags) == sorted([a.resolve(), b.resolve()])
    assert [p.name for p, _ in not_bags] == ["notes.txt"]
    assert len(find_bags([tmp_path / "day"], include_discarded=True)) == 3
    assert find_bags([a, a / "20260101-000000_x_0000_0.mcap"]) == [a.resolve()]
    with pytest.raises(FileNotFoundError):
        find_bags([tmp_path / "nothere"])


def test_labels_come_from_metadata_yaml_and_relabel_rewrites_them(tmp_path):
    bag = _bag(tmp_path / "e", task="pick cup", operator="alice", success="unknown", stop_reason="stopped")
    ep = load_episode(bag)
    assert (ep.task, ep.operator, ep.success) == ("pick cup", "alice", None)
    assert ep.missing_labels() == ["success"]
    ep = relabel(bag, success="true", notes="re\x00done")
    assert ep.success is True and ep.notes == "redone" and ep.missing_labels() == []
    # what rosbag2 (metadata.yaml) and our reader see is the same
    with BagReader(bag) as r:
        assert r.metadata.custom_data["episode.success"] == "true"
        assert r.metadata.custom_data["episode.task"] == "pick cup"
    assert sum(1 for _ in BagReader(bag).messages()) == 1   # data untouched


def test_relabel_bad_input_changes_nothing(tmp_path):
    bag = _bag(tmp_path / "e", task="t", success="false")
    before = (bag / "metadata.yaml").read_bytes()
    with pytest.raises(ValueError, match="unknown label"):
        relabel(bag, sucess="true")
    with pytest.raises(ValueError, match="success label"):
        relabel(bag, success="maybe")
    assert (bag / "metadata.yaml").read_bytes() == before
    with pytest.raises(NotABagError):
        relabel(tmp_path)


def test_busy_bag_cannot_be_relabelled_or_discarded(tmp_path):
    w = BagWriter(tmp_path / "live", WriterOptions(fsync=False, background_flush=False, async_io=False))
    try:
        w.add_topic("/a", "std_msgs/msg/String")
        with pytest.raises(EpisodeBusyError):
            discard(tmp_path / "live")
        assert load_episode(tmp_path / "live").recording
    finally:
        w.close()
    assert not load_episode(tmp_path / "live").recording


def test_discard_moves_and_never_overwrites_purge_deletes_only_discarded(tmp_path):
    a = _bag(tmp_path / "20260101-000000_x_0000")
    first = discard(a)
    assert first == tmp_path / DISCARDED_DIR / a.name and not a.exists()
    _bag(a)
    second = discard(a)
    assert second.name == a.name + ".1" and first.exists()
    keep = _bag(tmp_path / "20260101-000001_x_0001")
    gone = purge_discarded(tmp_path)
    assert sorted(gone) == sorted([first, second]) and keep.exists()


def test_verdict_sidecar_round_trip_is_deterministic(tmp_path):
    bag = _bag(tmp_path / "e", task="t")
    assert read_verdict(bag) is None
    v = Verdict(findings=[Finding("gaps", "warn", "camera head: 3 frames missing", "/camera/head/image_raw",
                                  {"missing": 3}),
                          Finding("presence", "fail", "no /exo/joint_states")])
    assert v.verdict == "fail" and v.reasons[0] == "no /exo/joint_states"
    path = write_verdict(bag, v)
    first = path.read_bytes()
    write_verdict(bag, read_verdict(bag))
    assert path.read_bytes() == first
    assert load_episode(bag).verdict.summary().startswith("fail: no /exo/joint_states")
    path.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="qa.json"):
        read_verdict(bag)
    with pytest.raises(ValueError, match="severity"):
        Verdict(findings=[Finding("x", "bad", "m")]).verdict


def test_config_schema_one_line_did_you_mean():
    from pydantic import BaseModel

    from robot_capture.config_schema import STRICT_KEYS, ConfigError, validate

    class Cam(BaseModel):
        model_config = STRICT_KEYS
        width: int = 640

    class Floor(BaseModel):
        model_config = STRICT_KEYS
        cameras: dict[str, Cam] = {}
        rate: float = 1.0

    with pytest.raises(ConfigError) as exc:
        validate(Floor, {"cameras": {"head": {"widht": 3}}, "rate": "fast"}, "floor.yaml")
    assert exc.value.problems[0] == "floor.yaml: cameras.head.widht: unknown key (did you mean 'width'?)"
    assert exc.value.problems[1].startswith("floor.yaml: rate: input should be a valid number")
    assert validate(Floor, {"rate": 2}, "f").rate == 2.0
