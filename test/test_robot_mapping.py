"""Robot mappings (issue 13): validated schema, point offsets, joint couplings, limits inside the
IK over the real dt, a robot as one YAML file anywhere, and ``robot check``."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from robot_capture.config_schema import ConfigError
from robot_capture.kinematics.ik import FrameTask, IKSolver, PositionTask
from robot_capture.kinematics.model import RobotModel
from robot_capture.retarget.mapping import RobotMapping
from robot_capture.retarget.retargeter import Retargeter

pytestmark = pytest.mark.timeout(120)
H1_2 = Path(__file__).parent / "data" / "h1_2_like_arms.urdf"


@pytest.fixture(scope="module")
def g1_raw():
    return yaml.safe_load(RobotMapping.load("g1").text())


def _with(raw, **changes):
    raw = copy.deepcopy(raw)
    for dotted, value in changes.items():
        cur = raw
        *head, last = dotted.split("__")
        for k in head:
            cur = cur[int(k)] if isinstance(cur, list) else cur[k]
        cur[last] = value
    return raw


# ------------------------------------------------------------------ schema
@pytest.mark.parametrize("change, expected", [
    ({"tasks__1__positon_cost": 1.0}, "tasks.1.positon_cost: unknown key (did you mean 'position_cost'?)"),
    ({"filter__min_cutof_hz": 2.0}, "filter.min_cutof_hz: unknown key (did you mean 'min_cutoff_hz'?)"),
    ({"ik__max_iteration": 3}, "ik.max_iteration: unknown key (did you mean 'max_iterations'?)"),
    ({"velocty_limits": {}}, "velocty_limits: unknown key (did you mean 'velocity_limits'?)"),
    ({"velocity_limits": {"default": -1.0}}, "velocity_limits.default: input should be greater than 0"),
    ({"acceleration_limit": math.nan}, "acceleration_limit"),
    ({"stale_after_s": -0.1}, "stale_after_s: input should be greater than 0"),
    ({"tasks__0__orientation_cost": -0.3}, "tasks.0.orientation_cost: input should be greater than or equal to 0"),
    ({"posture": {"cost": -1}}, "posture.cost: input should be greater than or equal to 0"),
    ({"tasks__1__point": [0.1, 0.0]}, "tasks.1.point"),
    ({"filter": {"type": "critically_damped", "beta": 0.5}}, "do not apply to filter type 'critically_damped'"),
    ({"tasks__1__scale": "middle"}, "scale 'middle' names no limb"),
])
def test_bad_mapping_is_one_clear_line(g1_raw, change, expected):
    with pytest.raises(ConfigError) as ei:
        RobotMapping.from_dict(_with(g1_raw, **change), source="g1.yaml")
    msg = str(ei.value)
    assert expected in msg and msg.startswith("g1.yaml: "), msg


def test_nan_acceleration_limit_is_rejected_not_disabled(g1_raw):
    for bad in ({"acceleration_limit": math.nan}, {"acceleration_limit": {"default": math.nan}},
                {"velocity_limits": {"default": math.nan}}):
        with pytest.raises(ConfigError, match="NaN|greater than 0"):
            RobotMapping.from_dict(_with(g1_raw, **bad), source="g1.yaml")


def test_unknown_joint_names_in_limits_suggest(g1_raw):
    m = RobotMapping.from_dict(_with(g1_raw, velocity_limits={"default": 3.0, "left_elbow_jiont": 1.0}))
    with pytest.raises(KeyError, match="left_elbow_joint"):
        Retargeter(m)


# ------------------------------------------------------------------ point offset
def test_task_point_offset_tracks_that_point(g1_raw):
    raw = _with(g1_raw)
    raw["tasks"][1]["point"] = [0.12, 0.0, -0.02]  # a point 12 cm along the wrist link: the "hand"
    m = RobotMapping.from_dict(raw)
    model = m.robot_model()
    link, point = "left_wrist_yaw_link", "left_wrist_yaw_link@left_wrist"
    q = model.random_configuration(np.random.default_rng(3), margin=0.1)
    P = model.fk_all(q)
    T_link, T_point = P[model.frame_index(link)], P[model.frame_index(point)]
    np.testing.assert_allclose(T_point[:3, 3], (T_link @ [0.12, 0.0, -0.02, 1.0])[:3], atol=1e-12)
    # the IK drives the point, not the link origin, onto the target
    solver = IKSolver(model, [PositionTask(point)], max_iterations=50)
    target = np.eye(4)
    target[:3, 3] = T_point[:3, 3]
    res = solver.solve(np.clip(q + 0.2, model.lower, model.upper), [target])
    assert res.converged
    got = model.fk_all(res.q)
    assert np.linalg.norm(got[model.frame_index(point), :3, 3] - target[:3, 3]) < 1e-4
    assert np.linalg.norm(got[model.frame_index(link), :3, 3] - target[:3, 3]) > 0.1  # the link origin is not there
    # and the Retargeter reports the point frame as the task frame
    r = Retargeter(m)
    assert r.target_frames[1] == point


# ------------------------------------------------------------------ joint coupling
def test_coupled_joint_follows_its_coupling(g1_raw):
    raw = _with(g1_raw)
    # a gear-driven motor that is not in the URDF, and a URDF joint driven from another joint
    raw["coupling"] = {"left_elbow_motor": {"joints": {"left_elbow_joint": 2.5}, "offset": 0.1},
                       "left_wrist_roll_joint": {"joints": {"left_elbow_joint": -0.5, "left_shoulder_yaw_joint": 0.25}}}
    m = RobotMapping.from_dict(raw)
    r = Retargeter(m)
    assert "left_wrist_roll_joint" not in r.joint_names  # not solved for: commanded from its coupling
    assert r.command_names[-2:] == ["left_elbow_motor", "left_wrist_roll_joint"]
    from robot_capture.retarget.offline import retarget_clip
    from robot_capture.paths import data_dir

    res = retarget_clip(data_dir() / "motion" / "cmu_02_05_punch_strike.bvh", retargeter=r)
    e, y = r.joint_names.index("left_elbow_joint"), r.joint_names.index("left_shoulder_yaw_joint")
    for i in (10, len(res) // 2, len(res) - 1):
        names, q, qd = res.joint_command(i)
        cmd = dict(zip(names, q))
        assert cmd["left_elbow_motor"] == pytest.approx(2.5 * res.q[i, e] + 0.1, abs=1e-12)
        assert cmd["left_wrist_roll_joint"] == pytest.approx(-0.5 * res.q[i, e] + 0.25 * res.q[i, y], abs=1e-12)
        assert dict(zip(names, qd))["left_elbow_motor"] == pytest.approx(2.5 * res.qd[i, e], abs=1e-12)
    assert np.ptp(res.q[:, e]) > 0.1  # the elbow moved, so the coupling was exercised
    # a live step gives the same through RetargetOutput.joint_command()
    r.reset()
    out = r.step(res_pose(data_dir()), 0.0)
    names, q, _ = out.joint_command()
    assert dict(zip(names, q))["left_elbow_motor"] == pytest.approx(2.5 * out.q[e] + 0.1, abs=1e-12)
    bad = _with(raw)
    bad["coupling"] = {"m": {"joints": {"left_knee_joint": 1.0}}}  # locked: not solved for
    with pytest.raises(KeyError, match="not a joint the IK solves for"):
        Retargeter(RobotMapping.from_dict(bad))


def res_pose(data):
    from robot_capture.retarget.bvh import load_bvh

    p = load_bvh(data / "motion" / "cmu_02_05_punch_strike.bvh").human_poses().pose(50)
    p.stamp = 0.0
    return p


# ------------------------------------------------------------------ limits inside the IK
@pytest.mark.parametrize("limits", ["teleop", "urdf"])
def test_no_step_moves_a_joint_more_than_its_limit_times_the_real_dt(data_dir, limits):
    from robot_capture.retarget.bvh import load_bvh
    from robot_capture.retarget.calibration import Calibration

    clip = load_bvh(data_dir / "motion" / "cmu_05_02_dance_expressive_arms.bvh")
    batch = clip.human_poses()
    r = Retargeter("g1", Calibration.from_poses(batch), limits=limits)
    rng = np.random.default_rng(0)
    t, q_prev, qd_prev, worst, worst_acc = 0.0, r.q_cmd.copy(), np.zeros(r.nq), 0.0, 0.0
    for i in range(0, len(batch), 1):
        dt = float(rng.choice([0.004, 0.01, 0.02, 0.035]))  # irregular command periods
        t += dt
        p = batch.pose(i)
        p.stamp = t
        out = r.step(p, t)
        assert not out.held
        v = (out.q - q_prev) / dt
        worst = max(worst, float(np.max(np.abs(v) / r.vmax)))
        if limits == "teleop" and i > 0:
            worst_acc = max(worst_acc, float(np.max(np.abs(v - qd_prev) / (r.amax * dt))))
        q_prev, qd_prev = out.q.copy(), v
    assert worst <= 1.0 + 1e-6, worst
    if limits == "teleop":
        assert worst_acc <= 1.0 + 1e-6, worst_acc
        assert worst > 0.99  # the dance clip does hit the 3 rad/s teleop limit: the check was exercised


def test_offline_lag_estimate_small_live_limits_lag_more(data_dir):
    from robot_capture.retarget.offline import retarget_clip

    path = data_dir / "motion" / "cmu_05_02_dance_expressive_arms.bvh"
    off = retarget_clip(path, "g1", estimate_lag=True)
    assert np.isnan(retarget_clip(path, "g1").lag_s).all()  # offline default: not estimated (cost)
    live = retarget_clip(path, "g1", limits="teleop", filter="mapping")
    lag_off, lag_live = np.nanmedian(off.lag_s), np.nanmedian(live.lag_s)
    assert lag_off < 0.05 and lag_live > 0.08, (lag_off, lag_live)
    assert np.percentile(live.wrist_errors, 95) > 2 * np.percentile(off.wrist_errors, 95)


def test_seven_dof_arm_with_a_joint_limit_in_the_way_reaches_every_target():
    """H1-2-like arms (wrist pitch +-0.46 rad): targets from a trajectory that runs into the joint
    limits and stays there; warm-started teleop solves with velocity limits reach every one."""
    model = RobotModel.from_urdf(H1_2, locked_joints=["torso_joint"])
    frames = ["left_wrist_yaw_link", "right_wrist_yaw_link", "left_elbow_link", "right_elbow_link"]
    fi = [model.frame_index(f) for f in frames]
    solver = IKSolver(model, [FrameTask(frames[0]), FrameTask(frames[1]), PositionTask(frames[2], 0.05),
                              PositionTask(frames[3], 0.05)], error_damping=1.0, damping=1e-4,
                      position_tolerance=1e-3, orientation_tolerance=1e-2)
    rate, n = 100.0, 1000
    t = np.arange(n) / rate
    lo, hi = model.lower, model.upper
    ok = total = at_limit = 0
    for seed in range(2):
        rng = np.random.default_rng(seed)
        q = np.empty((n, model.nq))
        for j in range(model.nq):
            f, a, ph = rng.uniform(0.1, 0.6, 3), rng.uniform(0.3, 1, 3), rng.uniform(0, 6.3, 3)
            s = (a[:, None] * np.sin(2 * math.pi * f[:, None] * t + ph[:, None])).sum(0) / a.sum()
            q[:, j] = np.clip(0.5 * (lo[j] + hi[j]) + 0.525 * (hi[j] - lo[j]) * s, lo[j], hi[j])  # 5 % past
        at_limit += int(((q <= lo + 1e-9) | (q >= hi - 1e-9)).any(axis=1).sum())
        qk = q[0].copy()
        for k in range(n):
            T = model.fk_all(q[k])[fi]
            res = solver.solve(qk, T, dt=1.0 / rate)
            qk = res.q
            ok += bool(res.position_errors[:2].max() < 1e-3 and res.orientation_errors[:2].max() < 1e-2)
            total += 1
    assert at_limit > 100  # the limits really are in the way
    assert ok == total, f"{ok}/{total}"


# ------------------------------------------------------------------ a robot is one file anywhere
@pytest.fixture
def user_robot(tmp_path, data_dir):
    """H1's mapping copied to a user folder under another name, URDF given as an absolute path."""
    raw = yaml.safe_load(RobotMapping.load("h1").text())
    raw["robot"] = "myh1"
    raw["urdf"] = str(data_dir / raw["urdf"])
    d = tmp_path / "robots"
    d.mkdir()
    p = d / "myh1.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_user_robot_folder_is_searched_first(user_robot, monkeypatch):
    from robot_capture.paths import known_robots, resolve_robot

    monkeypatch.setenv("ROBOT_CAPTURE_ROBOTS", str(user_robot.parent))
    assert resolve_robot("myh1") == user_robot
    assert "myh1" in known_robots() and "g1" in known_robots()
    shadow = user_robot.parent / "g1.yaml"  # a user g1 shadows the shipped one
    shadow.write_text(user_robot.read_text())
    assert resolve_robot("g1") == shadow
    with pytest.raises(KeyError, match="myh1"):
        resolve_robot("myh2")


def test_robot_as_a_path_in_up_dry_run_and_retarget_plot(user_robot, tmp_path, capsys, monkeypatch):
    from robot_capture.cli import main

    monkeypatch.chdir(user_robot.parent)
    assert main(["up", "--sim", "--dry-run", "--robot", "myh1.yaml"]) == 0
    out = capsys.readouterr().out
    assert f"robot: {user_robot}" in out  # made absolute for every node
    assert out.count(f"robot: {user_robot}") >= 3  # recorder, robot_sim, camera, retarget
    png = tmp_path / "h1_plot.png"
    assert main(["retarget", "cmu_02_05_punch_strike", "--robot", str(user_robot), "--out",
                 str(tmp_path / "t.npz"), "--plot", str(png), "--quiet"]) == 0
    assert png.stat().st_size > 20_000  # elbow paths and errors drawn, not three empty axes
    assert main(["retarget", "cmu_02_05_punch_strike", "--robot", str(user_robot), "--out",
                 str(tmp_path / "t2.npz"), "--plot", "--quiet"]) == 0
    assert (tmp_path / "t2.png").is_file()  # --plot without a file name: beside --out
    assert "left_elbow_link" in capsys.readouterr().out  # H1 reports its elbows
    assert main(["retarget", "cmu_02_05_punch_strike", "--robot", str(tmp_path / "nope.yaml"),
                 "--out", str(tmp_path / "t3.npz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_robot_check_lists_and_renders(user_robot, tmp_path, capsys):
    from robot_capture.cli import main

    png = tmp_path / "check.png"
    assert main(["robot", "check", str(user_robot), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "left_elbow: torso_link -> left_elbow_link: left_shoulder_pitch_joint, left_shoulder_roll_joint, " \
           "left_shoulder_yaw_joint, left_elbow_joint" in out
    assert "left_elbow_joint" in out and "no task has wrist: true" in out
    assert png.stat().st_size > 20_000
    assert main(["robot", "check", "g1x", "--no-png"]) == 2
    assert "unknown robot 'g1x'" in capsys.readouterr().err
