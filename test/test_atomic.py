"""robot_capture.atomic: the one atomic-replace helper behind metadata.yaml, qa.json, params
files, the export's JSON metadata and the batch ledger records."""
import os

import pytest

from robot_capture.atomic import write_bytes_atomic, write_text_atomic


def test_replaces_whole_and_leaves_no_temp_file(tmp_path):
    p = tmp_path / "qa.json"
    write_text_atomic(p, "old\n")
    write_bytes_atomic(p, b"new\n")
    assert p.read_bytes() == b"new\n"
    assert sorted(os.listdir(tmp_path)) == ["qa.json"]
    assert (p.stat().st_mode & 0o777) == 0o644


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path, monkeypatch):
    p = tmp_path / "metadata.yaml"
    write_text_atomic(p, "rosbag2_bagfile_information: {}\n")

    def boom(*_a):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="No space"):
        write_text_atomic(p, "half")
    assert p.read_text() == "rosbag2_bagfile_information: {}\n"
    assert sorted(os.listdir(tmp_path)) == ["metadata.yaml"]


def test_missing_directory_is_an_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_text_atomic(tmp_path / "nope" / "x.json", "{}")
