"""robot-capture export --format lerobot on synthetic bags (BagWriter + rclpy-serialized
messages, test/export_bags.py): the LeRobot v3.0 format rules (test/lerobot_format.py),
values against the bags, selection, incremental append, merge and every kind of bad input.
No torch: read back with pyarrow, pandas and PyAV."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")  # the bags' messages are serialized by rclpy

from export_bags import JOINTS, T0, frame_image, joint_positions, write_episode  # noqa: E402
from lerobot_format import check_dataset, decode, frame_at, psnr  # noqa: E402

from robot_capture.export.lerobot import ExportOptions, export_episodes, merge_datasets  # noqa: E402
from _cmd import module_command

pytestmark = pytest.mark.timeout(120)


def _cli() -> list[str]:
    exe = Path(sys.executable).parent / "robot-capture"
    return [str(exe)] if exe.exists() else module_command("robot_capture.cli")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    bags = root / "bags"
    write_episode(bags / "a", seconds=2.0, cameras=("head", "wrist"), camera_jitter_s=0.004, seed=1)
    write_episode(bags / "b", seconds=1.5, cameras=("head", "wrist"), task="pour water", start_offset_s=10.0,
                  drop_camera_frames=(10, 11, 12))
    write_episode(bags / "c", seconds=1.0, cameras=("head", "wrist"), success="false")
    summary = export_episodes([bags], root / "ds", ExportOptions(run_qa=False), progress=False)
    return root, summary


def test_format_rules_hold(exported):
    root, summary = exported
    assert [r.status for r in summary.results] == ["exported", "exported", "skipped"], summary.lines()
    got = check_dataset(root / "ds")
    assert len(got["episodes"]) == 2
    assert got["info"]["fps"] == 30
    assert set(got["info"]["features"]) >= {"observation.state", "action", "observation.ik_targets",
                                            "observation.teleop.exo", "observation.teleop.vr_head",
                                            "observation.images.head", "observation.images.wrist"}
    assert got["info"]["features"]["observation.state"]["names"] == JOINTS
    assert got["info"]["features"]["observation.images.head"]["shape"] == [64, 96, 3]


def test_state_interpolated_and_action_held_at_frame_times(exported):
    root, _ = exported
    info, eps, data = (check_dataset(root / "ds")[k] for k in ("info", "episodes", "data"))
    fps = info["fps"]
    offsets = {0: 0.0, 1: 10.0}
    for _, e in eps.iterrows():
        rows = data.iloc[e["dataset_from_index"]:e["dataset_to_index"]]
        t_grid = (e["source/grid_start_ns"] - T0) / 1e9 + np.arange(e["length"]) / fps  # s since T0
        state = np.stack(rows["observation.state"].to_numpy())
        # linear interpolation of sin at 500 Hz: error <= dt^2/8 * max|f''| ~ 4e-6 rad; float32 ~ 1e-7
        np.testing.assert_allclose(state, joint_positions(t_grid), atol=2e-5)
        # action: the command in effect = the last one at or before t (100 Hz grid of commands)
        off = offsets[int(e["episode_index"])]
        t_cmd = np.floor(np.round((t_grid - off) * 100, 6)) / 100 + off
        np.testing.assert_allclose(np.stack(rows["action"].to_numpy()), joint_positions(t_cmd) + 0.01, atol=2e-5)
        # the grid starts at a head camera frame (stamps i/30 + 2 ms, jittered in episode a)
        assert e["source/grid_start_ns"] >= e["source/start_ns"]


def test_video_frames_match_the_bag_images(exported):
    """Decoded AV1 (crf 30) frames vs the bag's image nearest each frame time: PSNR >= 30 dB."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from robot_capture.bag.reader import BagReader

    root, _ = exported
    info, eps, _data = (check_dataset(root / "ds")[k] for k in ("info", "episodes", "data"))
    fps = info["fps"]
    e = eps.iloc[0]
    bag = Path(e["source/bag"])
    imgs = {}
    for m in BagReader(bag).messages(topics=["/camera/head/image_raw"]):
        msg = deserialize_message(m.data, Image)
        ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        imgs[ns] = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
    stamps = np.array(sorted(imgs))
    frames = decode(root / "ds" / "videos/observation.images.head/chunk-000/file-000.mp4")
    worst = np.inf
    for k in range(e["length"]):
        t_ns = e["source/grid_start_ns"] + round(k * 1e9 / fps)
        src = imgs[int(stamps[np.argmin(np.abs(stamps - t_ns))])]
        got = frame_at(frames, e["videos/observation.images.head/from_timestamp"] + k / fps)
        worst = min(worst, psnr(got, src))
    assert worst >= 30.0, worst


def test_stale_camera_frames_are_repeated_and_counted(exported):
    root, summary = exported
    b = summary.results[1]
    assert b.stale["observation.images.head"] == 3 and b.stale["observation.images.wrist"] == 3
    info, eps, _ = (check_dataset(root / "ds")[k] for k in ("info", "episodes", "data"))
    assert eps.iloc[1]["align/stale/observation.images.head"] == 3
    assert eps.iloc[0]["align/stale/observation.images.head"] == 0


def test_labels_verdict_and_provenance_columns(exported):
    root, _ = exported
    eps = check_dataset(root / "ds")["episodes"]
    e = eps.iloc[1]
    assert e["tasks"].tolist() == ["pour water"]
    assert (e["label/operator"], e["label/success"], e["qa/verdict"]) == ("ann", "true", "-")
    assert len(e["source/sha256"]) == 64 and e["source/robot"] == "g1"
    side = json.loads((root / "ds/meta/robot_capture.json").read_text())
    assert side["episodes"]["1"]["sha256"] == e["source/sha256"]
    assert side["mapping"]["features"][0]["key"] == "observation.state"
    info = json.loads((root / "ds/meta/info.json").read_text())
    assert "mapping" not in info and "episodes" not in info   # provenance stays out of info.json


def test_reexport_is_a_noop_and_append_updates_totals(exported, tmp_path):
    root, _ = exported
    ds = root / "ds"
    before = {p: p.stat().st_mtime_ns for p in ds.rglob("*") if p.is_file()}
    again = export_episodes([root / "bags"], ds, ExportOptions(run_qa=False), progress=False)
    assert [r.status for r in again.results] == ["skipped", "skipped", "skipped"]
    assert "same sha256" in again.results[0].reason
    assert {p: p.stat().st_mtime_ns for p in ds.rglob("*") if p.is_file()} == before
    # append a new episode to a copy
    import shutil

    ds2 = tmp_path / "ds2"
    shutil.copytree(ds, ds2)
    write_episode(tmp_path / "bags/d", seconds=1.2, cameras=("head", "wrist"), task="pick cup", start_offset_s=20)
    more = export_episodes([tmp_path / "bags"], ds2, ExportOptions(run_qa=False), progress=False)
    assert [r.status for r in more.results] == ["exported"], more.lines()
    got = check_dataset(ds2)
    assert len(got["episodes"]) == 3 and got["info"]["total_tasks"] == 2
    assert got["episodes"].iloc[2]["data/file_index"] == 1        # a new file per export session
    assert got["episodes"].iloc[2]["videos/observation.images.head/file_index"] == 1


def test_selection_include_failed_and_rejects(tmp_path):
    from robot_capture.episodes import Finding, Verdict, write_verdict

    bags = tmp_path / "bags"
    write_episode(bags / "ok", seconds=1.0)
    write_episode(bags / "failed_label", seconds=1.0, success="false")
    write_episode(bags / "qa_fail", seconds=1.0)
    write_verdict(bags / "qa_fail", Verdict(findings=[Finding(check="rate", severity="fail",
                                                              message="/joint_states at 50 % of 500 Hz")]))
    # bags without a verdict are checked by the QA job (robot_capture.qa.run), which writes qa.json
    s = export_episodes([bags], tmp_path / "ds", ExportOptions(rejects=tmp_path / "rejects"), progress=False)
    by = {Path(r.bag).name: r for r in s.results}
    assert by["ok"].status == "exported" and by["ok"].note == "QA run now", s.lines()
    assert (bags / "ok" / "qa.json").exists()
    assert by["failed_label"].status == "rejected" and "success false" in by["failed_label"].reason
    assert by["qa_fail"].status == "rejected" and "QA verdict fail (/joint_states at 50 % of 500 Hz)" in by["qa_fail"].reason
    rej = check_dataset(tmp_path / "rejects")
    assert len(rej["episodes"]) == 2 and "fail" in set(rej["episodes"]["qa/verdict"])
    ds = check_dataset(tmp_path / "ds")["episodes"]
    assert len(ds) == 1 and ds.iloc[0]["qa/verdict"] in ("pass", "warn")
    s2 = export_episodes([bags], tmp_path / "all", ExportOptions(include_failed=True), progress=False)
    assert s2.count("exported") == 3


def test_bad_input_gets_a_per_episode_error_and_the_rest_export(tmp_path):
    bags = tmp_path / "bags"
    write_episode(bags / "1_good", seconds=1.0)
    write_episode(bags / "2_no_camera", seconds=1.0, cameras=())
    write_episode(bags / "3_no_joint_states", seconds=1.0, joint_states=False)
    write_episode(bags / "4_truncated", seconds=1.0)
    mcap = next((bags / "4_truncated").glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    write_episode(bags / "5_too_short", seconds=0.02)
    write_episode(bags / "6_good", seconds=1.0, start_offset_s=5)
    res = subprocess.run([*_cli(), "export", str(bags), "--out", str(tmp_path / "ds"), "--no-progress", "--json",
                          "--no-qa"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stderr[-2000:]          # errors present -> exit 1
    assert "Traceback" not in res.stderr
    by = {Path(r["bag"]).name: r for r in json.loads(res.stdout)["results"]}
    assert by["1_good"]["status"] == "exported" and by["6_good"]["status"] == "exported"
    assert by["2_no_camera"]["status"] == "error" and "camera head missing" in by["2_no_camera"]["reason"]
    assert by["3_no_joint_states"]["status"] == "error" and "/joint_states missing" in by["3_no_joint_states"]["reason"]
    assert by["4_truncated"]["status"] == "error" and "truncated" in by["4_truncated"]["reason"]
    assert by["4_truncated"]["reason"].startswith("incomplete: run `robot-capture recover")  # the gate (issue 23)
    assert by["5_too_short"]["status"] == "skipped" and "shorter than one frame period" in by["5_too_short"]["reason"]
    assert len(check_dataset(tmp_path / "ds")["episodes"]) == 2


def test_compressed_jpeg_cameras_and_h264(tmp_path):
    write_episode(tmp_path / "bags/jpeg", seconds=1.0, compressed=True)
    s = export_episodes([tmp_path / "bags"], tmp_path / "ds", ExportOptions(codec="h264", fps=15, run_qa=False),
                        progress=False)
    assert s.count("exported") == 1, s.lines()
    got = check_dataset(tmp_path / "ds")
    assert got["info"]["fps"] == 15
    assert got["info"]["features"]["observation.images.head"]["info"]["video.codec"] == "h264"
    e = got["episodes"].iloc[0]
    frames = decode(tmp_path / "ds/videos/observation.images.head/chunk-000/file-000.mp4")
    t = (e["source/grid_start_ns"] - T0) / 1e9
    # the grid starts on a camera frame (stamp = frame time): JPEG q95 + h264 crf 30 stay close to it
    assert psnr(frame_at(frames, 0.0), frame_image(t)) >= 28.0


def test_merge_renumbers_and_is_idempotent(tmp_path):
    for i, task in enumerate(["pick", "pour", "pick"]):
        write_episode(tmp_path / f"bags{i}/ep", seconds=1.0 + 0.2 * i, task=task, start_offset_s=3 * i)
        export_episodes([tmp_path / f"bags{i}"], tmp_path / f"shard{i}", ExportOptions(run_qa=False), progress=False)
    shards = [tmp_path / f"shard{i}" for i in range(3)]
    s = merge_datasets(shards, tmp_path / "merged")
    assert [r.status for r in s.results] == ["exported"] * 3, s.lines()
    got = check_dataset(tmp_path / "merged")
    assert got["episodes"]["episode_index"].tolist() == [0, 1, 2]
    assert got["info"]["total_tasks"] == 2
    assert got["episodes"]["videos/observation.images.head/file_index"].tolist() == [0, 0, 0]  # one rolling file
    again = merge_datasets(shards, tmp_path / "merged")
    assert [r.status for r in again.results] == ["skipped"] * 3
    assert len(check_dataset(tmp_path / "merged")["episodes"]) == 3
    # the merged frames equal the shards' frames
    a = check_dataset(shards[1])["data"]
    m = got["data"].iloc[got["episodes"].iloc[1]["dataset_from_index"]:got["episodes"].iloc[1]["dataset_to_index"]]
    np.testing.assert_array_equal(np.stack(m["observation.state"].to_numpy()), np.stack(a["observation.state"].to_numpy()))


def test_bad_mapping_is_one_line_at_the_cli(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text("features:\n  - key: action\n    topic: /retarget/joint_command\n    sampel: hold\n")
    write_episode(tmp_path / "bags/a", seconds=0.5)
    res = subprocess.run([*_cli(), "export", str(tmp_path / "bags"), "--out", str(tmp_path / "ds"),
                          "--mapping", str(bad), "--no-progress"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "features.0.sampel: unknown key (did you mean 'sample'?)" in res.stderr
    assert "Traceback" not in res.stderr


def test_default_fps_is_the_primary_camera_rate(tmp_path):
    write_episode(tmp_path / "bags/a", seconds=1.0, camera_hz=25.0)
    s = export_episodes([tmp_path / "bags"], tmp_path / "ds", ExportOptions(run_qa=False), progress=False)
    assert s.count("exported") == 1, s.lines()
    got = check_dataset(tmp_path / "ds")
    assert got["info"]["fps"] == 25 and got["episodes"].iloc[0]["length"] == 25
