"""``robot-capture export --format hdf5-aloha|hdf5-robomimic`` on written episode bags (no DDS):
the layouts ACT and robomimic read, values on the same grid as the LeRobot export, frames as
uint8 RGB, re-export a no-op, a foreign HDF5 target refused, an unknown format answered with
"did you mean"."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robot_capture.export.lerobot import ExportOptions

from _cmd import module_command
from export_bags import JOINTS, T0, frame_image, joint_positions, write_episode

h5py = pytest.importorskip("h5py")  # in the [test] and [export] extras
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("hdf5_bags")
    write_episode(root / "a", seconds=1.0, cameras=("head", "wrist"))
    write_episode(root / "b", seconds=0.6, cameras=("head", "wrist"), start_offset_s=5.0)
    return root


def _export(bags, out, layout, **kw):
    from robot_capture.export.hdf5 import export_hdf5

    return export_hdf5([bags], out, layout, ExportOptions(run_qa=False, fps=30, **kw))


def test_aloha_layout_as_act_reads_it(bags, tmp_path):
    out = tmp_path / "aloha"
    s = _export(bags, out, "hdf5-aloha")
    assert [r.status for r in s.results] == ["exported", "exported"], s.lines()
    assert sorted(p.name for p in out.iterdir()) == ["episode_0.hdf5", "episode_1.hdf5"]
    with h5py.File(out / "episode_0.hdf5", "r") as f:
        # ACT utils.EpisodicDataset: attrs['sim'], /observations/qpos, qvel, images/<cam>, /action
        assert f.attrs["sim"] == False and f.attrs["robot_capture.format"] == "hdf5-aloha/1"  # noqa: E712
        q, qv, act = f["/observations/qpos"][()], f["/observations/qvel"][()], f["/action"][()]
        head = f["/observations/images/head"]
        assert q.shape == (30, 6) and qv.shape == q.shape and act.shape == (30, 6)
        assert head.shape == (30, 64, 96, 3) and head.dtype == np.uint8 and "wrist" in f["/observations/images"]
        assert f.attrs["task"] == "pick cup" and f.attrs["fps"] == 30
        assert json.loads(f.attrs["names"])["observation.state"] == JOINTS
        # values on the export grid: state = the known joint function at grid_start + k / fps
        t = (int(f.attrs["grid_start_ns"]) - T0) / 1e9 + np.arange(30) / 30.0
        want = joint_positions(t)
        assert np.abs(q - want).max() < 1e-4, np.abs(q - want).max()
        assert np.abs(qv[1:-1] - np.gradient(want, axis=0)[1:-1] * 30).max() < 1e-3
        # camera frames: the raw rgb8 frame nearest each grid time, unchanged (no codec)
        k = 10
        stamp_s = round((t[k] - 0.002) * 30) / 30 + 0.002  # the camera's frame nearest t[k]
        assert np.array_equal(head[k], frame_image(stamp_s, 0))


def test_robomimic_layout_and_append_is_a_noop_for_known_bags(bags, tmp_path):
    out = tmp_path / "demos.hdf5"
    s = _export(bags, out, "hdf5-robomimic")
    assert [r.status for r in s.results] == ["exported", "exported"], s.lines()
    with h5py.File(out, "r") as f:
        data = f["data"]
        assert sorted(data) == ["demo_0", "demo_1"]
        d0 = data["demo_0"]
        n = d0.attrs["num_samples"]
        assert n == 30 and data.attrs["total"] == 30 + data["demo_1"].attrs["num_samples"]
        assert d0["actions"].shape == (n, 6) and d0["obs/joint_pos"].shape == (n, 6)
        assert d0["obs/head_image"].shape == (n, 64, 96, 3) and d0["obs/head_image"].dtype == np.uint8
        assert d0["rewards"].shape == (n,) and d0["dones"][()].tolist() == [0] * (n - 1) + [1]
        assert json.loads(data.attrs["env_args"])["env_name"] == "robot_capture"
    again = _export(bags, out, "hdf5-robomimic")
    assert [r.status for r in again.results] == ["skipped", "skipped"] and "same sha256" in again.results[0].reason


def test_foreign_hdf5_target_is_refused_and_left_alone(bags, tmp_path):
    foreign = tmp_path / "theirs.hdf5"
    with h5py.File(foreign, "w") as f:
        f.create_dataset("x", data=np.arange(3))
    before = foreign.read_bytes()
    with pytest.raises(ValueError, match="not a robot_capture hdf5-robomimic file"):
        _export(bags, foreign, "hdf5-robomimic")
    d = tmp_path / "aloha_theirs"
    d.mkdir()
    (d / "episode_0.hdf5").write_bytes(before)
    with pytest.raises(ValueError, match="did not write"):
        _export(bags, d, "hdf5-aloha")
    assert foreign.read_bytes() == before and (d / "episode_0.hdf5").read_bytes() == before


def _cli(*args):
    exe = Path(sys.executable).parent / "robot-capture"
    cmd = [str(exe)] if exe.exists() else module_command("robot_capture.cli")
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)


def test_cli_unknown_format_did_you_mean_and_foreign_target_one_line(bags, tmp_path):
    r = _cli("export", str(bags), "--out", str(tmp_path / "x"), "--format", "hdf5-alhoa")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "robot-capture export: --format: unknown format 'hdf5-alhoa' (did you mean 'hdf5-aloha'?) "
        "(one of lerobot, hdf5-aloha, hdf5-robomimic)"], r.stderr
    foreign = tmp_path / "theirs.hdf5"
    with h5py.File(foreign, "w") as f:
        f.attrs["x"] = 1
    r = _cli("export", str(bags), "--out", str(foreign), "--format", "hdf5-robomimic", "--no-qa")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    r = _cli("export", str(bags), "--out", str(tmp_path / "ok"), "--format", "hdf5-aloha", "--no-qa", "--fps", "30")
    assert r.returncode == 0 and "2 exported" in r.stdout, r.stdout + r.stderr
