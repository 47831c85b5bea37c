"""Offline retarget: live and offline agree, outputs (npz/csv), the CLI verb, and mappings as YAML."""
from __future__ import annotations

import csv
import subprocess

import numpy as np
import pytest
import yaml

from robot_capture.retarget.bvh import load_bvh
from robot_capture.retarget.exo import ExoArmModel
from robot_capture.retarget.mapping import RobotMapping
from robot_capture.retarget.offline import exo_replay_messages, retarget_clip, vr_replay_messages
from robot_capture.retarget.retargeter import Retargeter
from robot_capture.retarget.vr import VrSource
from _cmd import module_command

CLIP = "cmu_02_05_punch_strike.bvh"


@pytest.fixture(scope="module")
def clip(data_dir):
    return load_bvh(data_dir / "motion" / CLIP)


def test_live_exo_path_equals_offline(clip):
    """What retarget_node does per /exo/joint_states message == retarget_clip(source='exo')."""
    off = retarget_clip(clip, "g1", source="exo", limits="teleop", filter="mapping")  # the live pipeline
    names, readings = exo_replay_messages(clip, ExoArmModel.load())
    exo = ExoArmModel.load()
    r = Retargeter("g1")
    q = []
    for i in range(clip.n_frames):
        stamp = i * clip.frame_time
        pose = exo.pose_from_angles(names, readings[i], stamp=stamp)
        q.append(r.step(pose, stamp).q)
    np.testing.assert_allclose(np.array(q), off.q, atol=1e-9)


def test_live_vr_path_equals_offline(clip):
    off = retarget_clip(clip, "kuavo", source="vr", limits="teleop", filter="mapping")
    msgs = vr_replay_messages(clip)
    src = VrSource()
    r = Retargeter("kuavo")
    q = []
    for i in range(clip.n_frames):
        stamp = i * clip.frame_time
        pose = src.human_pose(msgs["head"][i], msgs["left_wrist"][i], msgs["right_wrist"][i], stamp=stamp)
        q.append(r.step(pose, stamp).q)
    np.testing.assert_allclose(np.array(q), off.q, atol=1e-9)


def test_live_at_node_rate_agrees_within_filter_tolerance(clip):
    """The node publishes at its own rate (100 Hz) on the latest input; the command still agrees."""
    off = retarget_clip(clip, "g1", source="exo", limits="teleop", filter="mapping")
    names, readings = exo_replay_messages(clip)
    exo = ExoArmModel.load()
    r = Retargeter("g1", rate_hz=100.0)
    live, ref = [], []
    for k in range(int(clip.n_frames * clip.frame_time / 0.01)):
        t = k * 0.01
        i = min(int(t / clip.frame_time + 1e-9), clip.n_frames - 1)  # latest input frame at time t
        pose = exo.pose_from_angles(names, readings[i], stamp=i * clip.frame_time)
        live.append(r.step(pose, t).q)
        ref.append(off.q[i])
    err = np.abs(np.array(live) - np.array(ref))
    print(f"\nlive@100Hz vs offline@{clip.fps:.0f}Hz: p95 {np.percentile(err, 95):.4f} rad, max {err.max():.3f} rad")
    assert len(live) > 1000
    # live(t) is compared with the latest input frame: up to one 33 ms frame apart (3 rad/s x 33 ms = 0.1 rad)
    assert np.percentile(err, 95) < 0.15


def test_save_npz_and_csv(tmp_path, clip):
    res = retarget_clip(clip, "g1")
    p = res.save(tmp_path / "traj.npz")
    d = np.load(p, allow_pickle=False)
    n = len(res)
    assert list(d["joint_names"]) == res.joint_names
    assert d["q"].shape == (n, len(res.joint_names)) and d["t"].shape == (n,)
    assert d["keypoints"].shape == (n, len(res.keypoint_names), 4, 4)
    assert d["targets"].shape == (n, len(res.target_frames), 4, 4)
    assert d["position_errors"].shape == (n, len(res.task_names))
    np.testing.assert_array_equal(d["q"], res.q)
    assert "left_wrist_yaw_link" in list(d["wrist_frames"])
    c = res.save(tmp_path / "traj.csv")
    with open(c) as fh:
        rows = list(csv.reader(fh))
    assert len(rows) == n + 1
    header = rows[0]
    assert header[0] == "t" and "q.left_elbow_joint" in header and "human.left_wrist.x" in header
    assert "target.left_wrist_yaw_link.z" in header and "wrist_error.left_wrist_yaw_link" in header
    j = header.index("q.left_elbow_joint")
    np.testing.assert_allclose([float(r[j]) for r in rows[1:]], res.q[:, res.joint_names.index("left_elbow_joint")],
                               rtol=1e-8)
    with pytest.raises(ValueError):
        res.save(tmp_path / "traj.txt")


def test_cli_clip_to_npz_with_plot(tmp_path, data_dir):
    from robot_capture.cli import main

    out, png = tmp_path / "t.npz", tmp_path / "w.png"
    assert main(["retarget", str(data_dir / "motion" / CLIP), "--robot", "kuavo", "--out", str(out),
                 "--plot", str(png), "--quiet"]) == 0
    assert out.stat().st_size > 1000
    pytest.importorskip("matplotlib")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_errors_are_clear(tmp_path, capsys, monkeypatch):
    from robot_capture.cli import main

    assert main(["retarget", CLIP, "--robot", "g2", "--out", str(tmp_path / "x.npz"), "--quiet"]) == 2
    assert "unknown robot 'g2'" in capsys.readouterr().err
    assert main(["retarget", CLIP, "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["retarget", "no_such_clip", "--out", str(tmp_path / "x.npz")]) == 2
    bad = tmp_path / "bad.bvh"
    bad.write_text("HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0\n")
    assert main(["retarget", str(bad), "--out", str(tmp_path / "x.npz")]) == 2
    assert "bad.bvh:4:" in capsys.readouterr().err
    # matplotlib missing -> a clear message, the trajectory is still written
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    assert main(["retarget", CLIP, "--out", str(tmp_path / "y.npz"), "--plot", str(tmp_path / "y.png"),
                 "--quiet"]) == 3
    assert "pip install matplotlib" in capsys.readouterr().err
    assert (tmp_path / "y.npz").exists()


def test_cli_help_explains():
    r = subprocess.run([*module_command("robot_capture.cli"), "retarget", "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--robot" in r.stdout and "--plot" in r.stdout and "bag" in r.stdout


def test_adding_a_robot_is_a_yaml_file(tmp_path, data_dir):
    """A new robot: H1 with an extra forearm-direction weight and its own name, no code."""
    raw = yaml.safe_load(RobotMapping.load("h1").source.read_text())
    raw["robot"] = "h1_custom"
    raw["urdf"] = str(data_dir / "robots" / "unitree_h1" / "h1.urdf")
    p = tmp_path / "h1_custom.yaml"
    p.write_text(yaml.safe_dump(raw))
    res = retarget_clip(data_dir / "motion" / CLIP, robot=str(p))
    assert res.robot == "h1_custom" and "left_elbow_joint" in res.joint_names
    assert (res.q >= res.lower - 1e-9).all() and (res.q <= res.upper + 1e-9).all()


@pytest.mark.parametrize("robot", ["g1", "h1", "kuavo"])
def test_shipped_mappings(robot):
    m = RobotMapping.load(robot)
    model = m.robot_model()
    for leg in ("knee", "leg_l4", "ankle"):
        assert not any(leg in n for n in model.joint_names)  # legs locked
    v = m.velocity_limit_array(model)
    assert (v <= 0.2 * model.velocity_limit).all()  # teleop limits far below the URDF's
    assert m.tasks and all(t.frame in model.frame_names for t in m.tasks)


def test_mapping_errors_name_the_problem(tmp_path):
    with pytest.raises(KeyError, match="kuavo"):
        RobotMapping.load("kuavoo")
    raw = yaml.safe_load(RobotMapping.load("g1").source.read_text())
    raw["tasks"][1]["wieght"] = 1
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="wieght"):
        RobotMapping.load(p)
    raw = yaml.safe_load(RobotMapping.load("g1").source.read_text())
    raw["tasks"][1]["frame"] = "left_wrist_yaw_lnk"
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(KeyError, match="left_wrist_yaw_link"):
        Retargeter(RobotMapping.load(p))


def test_operator_calibration_drives_live_and_offline_alike(clip):
    """With an operator calibration, the node's session (LiveRetarget) and retarget_clip agree."""
    from robot_capture.retarget.calibration import Calibration
    from robot_capture.retarget.live import LiveRetarget

    cal = Calibration.from_lengths({"upper_arm": 0.33, "forearm": 0.29})
    off = retarget_clip(clip, "g1", source="exo", calibration=cal, limits="teleop", filter="mapping")
    names, readings = exo_replay_messages(clip)
    live = LiveRetarget(RobotMapping.load("g1"), "exo", calibration=cal, rate_hz=0.0)
    q = []
    for i in range(clip.n_frames):
        stamp = i * clip.frame_time
        live.on_exo(names, readings[i], stamp)
        q.append(live.step(stamp)[0].q)
    np.testing.assert_allclose(np.array(q), off.q, atol=1e-9)
    # and the calibration matters: default lengths give a different trajectory
    assert np.abs(retarget_clip(clip, "g1", source="exo", limits="teleop", filter="mapping").q - off.q).max() > 1e-3
