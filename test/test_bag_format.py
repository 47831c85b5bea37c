"""Message definitions, type hashes, QoS and metadata.yaml as rosbag2 writes them."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from robot_capture.bag import msgdefs
from robot_capture.bag.metadata import (BagMetadata, FileInfo, TopicMeta, dump_metadata, parse_metadata,
                                        read_metadata, serialized_metadata, write_metadata)
from robot_capture.bag.qos import adapt_request_to_offers, dump_qos_list, load_qos_list, qos_profile

SHARE = Path(os.environ["AMENT_PREFIX_PATH"].split(os.pathsep)[-1]) / "share"


def _msg(pkg, name):
    return (SHARE / pkg / "msg" / f"{name}.msg").read_text()


def test_joint_state_definition_is_rosbag2_concatenation():
    d = msgdefs.definition_for("sensor_msgs/msg/JointState")
    bar = "=" * 80
    expected = (_msg("sensor_msgs", "JointState")
                + f"\n{bar}\nMSG: std_msgs/Header\n" + _msg("std_msgs", "Header")
                + f"\n{bar}\nMSG: builtin_interfaces/Time\n" + _msg("builtin_interfaces", "Time"))
    assert d.encoding == "ros2msg"
    assert d.text == expected
    assert d.text.count("=" * 80 + "\n") == 2
    assert "=" * 81 not in d.text


def test_dependencies_depth_first_without_repeats():
    # PoseStamped -> Header -> Time, Pose -> Point, Quaternion: Time once, Header's subtree before Pose.
    text = msgdefs.definition_for("geometry_msgs/msg/PoseStamped").text
    heads = [line for line in text.splitlines() if line.startswith("MSG: ")]
    assert heads == ["MSG: geometry_msgs/Pose", "MSG: geometry_msgs/Point", "MSG: geometry_msgs/Quaternion",
                     "MSG: std_msgs/Header", "MSG: builtin_interfaces/Time"]
    assert text.startswith(_msg("geometry_msgs", "PoseStamped"))


def test_definition_parses_with_mcap_ros2():
    from mcap_ros2._dynamic import generate_dynamic

    for t in ("sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo", "diagnostic_msgs/msg/DiagnosticArray",
              "geometry_msgs/msg/PoseArray", "std_msgs/msg/Bool"):
        gen = generate_dynamic(t, msgdefs.definition_for(t).text)
        assert t in gen


@pytest.mark.parametrize("type_name", ["sensor_msgs/msg/JointState", "sensor_msgs/msg/Image", "std_msgs/msg/Bool"])
def test_type_hash_matches_package_json(type_name):
    pkg, _, name = type_name.split("/")
    doc = json.loads((SHARE / pkg / "msg" / f"{name}.json").read_text())
    want = next(e["hash_string"] for e in doc["type_hashes"] if e["type_name"] == type_name)
    got = msgdefs.type_hash_for(type_name)
    assert got == want and got.startswith("RIHS01_") and len(got) == 7 + 64


@pytest.mark.parametrize("bad", ["nonexistent_pkg/msg/Foo", "sensor_msgs/msg/NoSuchType", "garbage", "", "a/b/c/d"])
def test_unknown_type_gives_empty_definition(bad):
    d = msgdefs.definition_for(bad)
    assert not d.known and d.text == "" and d.encoding == ""
    assert msgdefs.type_hash_for(bad) == ""


def test_qos_yaml_string_round_trip_and_format():
    p = qos_profile(reliability="best_effort", durability="transient_local", depth=5)
    s = dump_qos_list([p])
    assert s.startswith("- history: keep_last\n  depth: 5\n  reliability: best_effort")
    assert "  deadline:\n    sec: 9223372036\n    nsec: 854775807" in s
    assert load_qos_list(s) == [p]
    assert dump_qos_list([]) == "[]" and load_qos_list("[]") == []
    # rosbag2 <= v8 integer enums are understood
    assert load_qos_list([{"history": 1, "depth": 3, "reliability": 2, "durability": 1, "liveliness": 1}])[0][
        "reliability"] == "best_effort"


def test_adapt_request_to_offers_like_rosbag2():
    rel, be = qos_profile(), qos_profile(reliability="best_effort")
    tl = qos_profile(durability="transient_local")
    assert adapt_request_to_offers([rel, rel])["reliability"] == "reliable"
    assert adapt_request_to_offers([rel, be])["reliability"] == "best_effort"
    assert adapt_request_to_offers([tl, tl])["durability"] == "transient_local"
    assert adapt_request_to_offers([tl, rel])["durability"] == "volatile"
    assert adapt_request_to_offers([]) == qos_profile()


HOSTILE = {"task": "pick: the \"red\" cube\n# not a comment", "empty": "", "num": "123", "bool": "true",
           "null": "~", "unicode": "Grüße 抓取 🤖", "tab": "a\tb", "ctrl": "bell\x07", "colon": "a: b: c",
           "../../etc": "x", "long": "y" * 5000}


def _meta():
    return BagMetadata(
        duration_ns=2_500_000_000, starting_time_ns=1_700_000_000_123_456_789, message_count=7,
        topics=[TopicMeta("/joint_states", "sensor_msgs/msg/JointState", "cdr", [qos_profile()],
                          msgdefs.type_hash_for("sensor_msgs/msg/JointState"), 7)],
        relative_file_paths=["b_0.mcap"], files=[FileInfo("b_0.mcap", 1_700_000_000_123_456_789, 2_500_000_000, 7)],
        custom_data=dict(HOSTILE), ros_distro="kilted")


def test_metadata_yaml_has_every_rosbag2_key(tmp_path):
    write_metadata(tmp_path, _meta())
    doc = yaml.safe_load((tmp_path / "metadata.yaml").read_text())
    info = doc["rosbag2_bagfile_information"]
    for key in ("version", "storage_identifier", "duration", "starting_time", "message_count",
                "topics_with_message_count", "compression_format", "compression_mode", "relative_file_paths",
                "files", "custom_data", "ros_distro"):
        assert key in info, key
    assert info["version"] == 9 and info["storage_identifier"] == "mcap"
    assert info["duration"] == {"nanoseconds": 2_500_000_000}
    assert info["starting_time"] == {"nanoseconds_since_epoch": 1_700_000_000_123_456_789}
    tm = info["topics_with_message_count"][0]
    assert set(tm["topic_metadata"]) == {"name", "type", "serialization_format", "offered_qos_profiles",
                                         "type_description_hash"}
    assert isinstance(tm["topic_metadata"]["offered_qos_profiles"], list)  # v9: a sequence of maps
    assert tm["topic_metadata"]["offered_qos_profiles"][0]["reliability"] == "reliable"
    assert set(info["files"][0]) == {"path", "starting_time", "duration", "message_count"}
    assert info["custom_data"] == HOSTILE  # hostile strings survive as strings
    assert [p.name for p in tmp_path.iterdir()] == ["metadata.yaml"]  # no temp file left behind


def test_metadata_round_trip_and_serialized_form(tmp_path):
    m = _meta()
    write_metadata(tmp_path, m)
    assert read_metadata(tmp_path) == m
    # the MCAP rosbag2 record holds the same mapping without the wrapper
    assert parse_metadata(yaml.safe_load(serialized_metadata(m))) == m
    assert dump_metadata(m).startswith("rosbag2_bagfile_information:\n  version: 9\n")


def test_metadata_atomic_replace_keeps_old_on_failure(tmp_path, monkeypatch):
    write_metadata(tmp_path, _meta())
    before = (tmp_path / "metadata.yaml").read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_metadata(tmp_path, BagMetadata())
    assert (tmp_path / "metadata.yaml").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["metadata.yaml"]


def test_metadata_missing_key_is_named(tmp_path):
    doc = {"rosbag2_bagfile_information": _meta().to_dict()}
    del doc["rosbag2_bagfile_information"]["topics_with_message_count"][0]["topic_metadata"]["type"]
    (tmp_path / "metadata.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match=r"topics_with_message_count\[0\]\.type"):
        read_metadata(tmp_path)
    (tmp_path / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed")
    with pytest.raises(ValueError, match="YAML"):
        read_metadata(tmp_path)
