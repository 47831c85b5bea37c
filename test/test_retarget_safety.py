"""Retargeter safety: stale and NaN input, invalid/missing input, the deadman, limits, filters, direct mode."""
from __future__ import annotations

import numpy as np
import pytest

from robot_capture.retarget.bvh import load_bvh
from robot_capture.retarget.direct import DirectJointMap
from robot_capture.retarget.filters import CriticallyDampedFilter, OneEuroFilter, RateLimiter, _c
from robot_capture.retarget.mapping import RobotMapping
from robot_capture.retarget.pose import HumanPose
from robot_capture.retarget.retargeter import Retargeter


@pytest.fixture(scope="module")
def clip(data_dir):
    return load_bvh(data_dir / "motion" / "cmu_02_05_punch_strike.bvh")


def _run(r, clip, frames, dt=None):
    outs = []
    for i in frames:
        p = clip.human_pose(i)
        outs.append(r.step(p, p.stamp))
    return outs


def test_stale_input_holds_and_flags(clip):
    r = Retargeter("g1")
    outs = _run(r, clip, range(0, 40))
    assert not outs[-1].held
    last = outs[-1].q.copy()
    pose = clip.human_pose(40)
    out = r.step(pose, pose.stamp + 0.5)  # 0.5 s old > stale_after_s
    assert {"stale", "held"} <= out.flags
    np.testing.assert_array_equal(out.q, last)
    assert not out.qd.any()
    assert out.stamp == pose.stamp  # still traceable to its input
    # fresh input again: the robot moves on
    pose = clip.human_pose(41)
    out = r.step(pose, pose.stamp + 0.01)
    assert not out.held and "stale" not in out.flags


def test_nan_input_holds_last_good_command(clip):
    r = Retargeter("kuavo")
    last = _run(r, clip, range(0, 30))[-1].q.copy()
    pose = clip.human_pose(30)
    pose.keypoints["left_wrist"] = pose.keypoints["left_wrist"].copy()
    pose.keypoints["left_wrist"][0, 3] = np.nan
    out = r.step(pose, pose.stamp)
    assert {"nan_input", "held"} <= out.flags
    np.testing.assert_array_equal(out.q, last)
    assert np.isfinite(out.q).all()


@pytest.mark.parametrize("pose,flag", [
    (None, "no_input"),
    (HumanPose({}, 0.0, valid=False, flags=frozenset({"missing_joints"})), "invalid_input"),
    (HumanPose({"pelvis": np.eye(4)}, 0.0), "missing_keypoints"),
])
def test_bad_input_never_raises(pose, flag):
    r = Retargeter("g1")
    out = r.step(pose, 0.0)
    assert flag in out.flags and out.held
    np.testing.assert_array_equal(out.q, r.q_posture)


def test_deadman_holds_then_resumes_smoothly(clip):
    r = Retargeter("g1")
    outs = _run(r, clip, range(0, 20))
    held_q = outs[-1].q.copy()
    for i in range(20, 60):
        p = clip.human_pose(i)
        out = r.step(p, p.stamp, enabled=False)
        assert {"disabled", "held"} <= out.flags
        np.testing.assert_array_equal(out.q, held_q)
    # re-enable: the human moved on meanwhile, the command ramps within the velocity limits
    dt = clip.frame_time
    prev = held_q
    for i in range(60, 80):
        p = clip.human_pose(i)
        out = r.step(p, p.stamp)
        assert not out.held
        assert (np.abs(out.q - prev) <= r.vmax * dt + 1e-9).all()
        prev = out.q


def test_velocity_and_acceleration_limits_hold_on_a_clip(clip):
    r = Retargeter("g1")
    qs, vs = [], []
    for i in range(clip.n_frames):
        p = clip.human_pose(i)
        o = r.step(p, p.stamp)
        qs.append(o.q)
        vs.append(o.qd)
    q, v = np.array(qs), np.array(vs)
    dt = clip.frame_time
    assert (np.abs(v) <= r.vmax + 1e-9).all()
    assert (np.abs(np.diff(v, axis=0)) <= r.mapping.acceleration_limit * dt + 1e-9).all()
    assert (np.abs(np.diff(q, axis=0)) <= r.vmax * dt + 1e-9).all()
    # teleop limits are far below the URDF's
    assert (r.vmax <= 0.2 * r.model.velocity_limit).all()


@pytest.mark.skipif(_c is None, reason="C filters not built")
def test_c_filters_equal_numpy():
    rng = np.random.default_rng(3)
    n = 17
    u = np.cumsum(rng.normal(size=(500, n)) * 0.05, axis=0)
    vmax = rng.uniform(1, 3, n)
    res = []
    for use_c in (True, False):
        f = OneEuroFilter(n, 2.0, 0.5, 1.0, use_c=use_c)
        g = CriticallyDampedFilter(n, 5.0, use_c=use_c)
        lim = RateLimiter(vmax, 30.0, np.full(n, -1.0), np.full(n, 1.0), use_c=use_c)
        rng2 = np.random.default_rng(5)
        out = []
        for k in range(len(u)):
            dt = rng2.uniform(0.002, 0.03)
            q, v = lim(f(u[k], dt), dt)
            out.append(np.r_[q, v, g(u[k], dt)])
        res.append(np.array(out))
    np.testing.assert_allclose(res[0], res[1], rtol=0, atol=1e-12)


@pytest.mark.skipif(_c is None, reason="C filters not built")
def test_guard_limiter_c_equals_numpy_and_passes_in_limit_input():
    """brake=False (the retargeter's guard behind the IK): C == NumPy, and an input that already
    respects the velocity and acceleration limits comes out unchanged (no lag)."""
    rng = np.random.default_rng(4)
    n, dt = 9, 0.01
    u = np.cumsum(rng.normal(size=(400, n)) * 0.5, axis=0) * 0.01  # |v| ~ up to a few rad/s, jumpy
    res = []
    for use_c in (True, False):
        lim = RateLimiter(np.full(n, 2.0), 30.0, np.full(n, -3.0), np.full(n, 3.0), use_c=use_c, brake=False)
        res.append(np.array([np.r_[lim(u[k], dt)] for k in range(len(u))]).reshape(len(u), -1))
    np.testing.assert_allclose(res[0], res[1], rtol=0, atol=1e-12)
    t = np.arange(300) * dt
    smooth = np.outer(0.3 * (1 - np.cos(2 * np.pi * 0.5 * t)), np.ones(n))  # from rest, |v| <= 0.95, |a| <= 3
    lim = RateLimiter(np.full(n, 2.0), 30.0, np.full(n, -3.0), np.full(n, 3.0), brake=False)
    out = np.array([lim(x, dt)[0] for x in smooth])
    np.testing.assert_allclose(out, smooth, atol=1e-12)
    braking = RateLimiter(np.full(n, 2.0), 30.0, np.full(n, -3.0), np.full(n, 3.0))
    lagged = np.array([braking(x, dt)[0] for x in smooth])
    assert np.abs(lagged - smooth).max() > 1e-3  # the braking follower does lag a moving target


def test_filters_converge_without_overshoot():
    n = 3
    g = CriticallyDampedFilter(n, 4.0)
    lim = RateLimiter(np.full(n, 2.0), 20.0, np.full(n, -5.0), np.full(n, 5.0))
    lim.reset(np.zeros(n))
    g(np.zeros(n), 0.01)
    target = np.array([1.0, -0.5, 0.0])
    for _ in range(400):
        q, v = lim(g(target, 0.01), 0.01)
        assert (np.abs(q) <= np.abs(target) + 1e-9).all()  # never past the target
    np.testing.assert_allclose(q, target, atol=1e-3)
    f = OneEuroFilter(n, 1.0, 0.0, 1.0)
    for _ in range(1000):
        x = f(target, 0.01)
    np.testing.assert_allclose(x, target, atol=1e-6)


def test_direct_joint_mode(tmp_path):
    import yaml

    raw = yaml.safe_load(RobotMapping.load("g1").source.read_text())
    raw["direct"] = {"joints": {
        "left_elbow_joint": {"source": "exo_elbow", "sign": -1, "scale": 2.0, "offset": 0.1},
        "left_shoulder_pitch_joint": {"source": "exo_sh", "clamp": [-0.5, 0.5]},
        "waist_yaw_joint": {"source": "exo_waist"},
    }}
    p = tmp_path / "g1_direct.yaml"
    p.write_text(yaml.safe_dump(raw))
    mapping = RobotMapping.load(p)
    r = Retargeter(mapping)
    dm = DirectJointMap.from_mapping(mapping, r.model)
    assert sorted(dm.source_names) == ["exo_elbow", "exo_sh", "exo_waist"]
    q, flags = dm.map(["exo_elbow", "exo_sh", "exo_waist"], [-0.3, 2.0, 0.2])
    k = r.model.joint_index
    assert q[k("left_elbow_joint")] == pytest.approx(-1 * 2.0 * -0.3 + 0.1)
    assert q[k("left_shoulder_pitch_joint")] == pytest.approx(0.5)  # clamped
    assert q[k("waist_yaw_joint")] == pytest.approx(0.2)
    assert np.isnan(q[k("right_elbow_joint")]) and not flags
    # URDF limits always apply: elbow lower limit is -1.0472
    q2, _ = dm.map(["exo_elbow", "exo_sh", "exo_waist"], [5.0, 0.0, 0.0])
    assert q2[k("left_elbow_joint")] == pytest.approx(r.model.lower[k("left_elbow_joint")])
    q3, flags = dm.map(["exo_elbow", "bogus"], [0.0, np.nan])
    assert {"unknown_joints", "missing_joints"} <= flags
    q4, flags = dm.map(["exo_elbow", "exo_sh", "exo_waist"], [0.0, np.nan, 0.0])
    assert "nan_input" in flags and np.isnan(q4[k("left_shoulder_pitch_joint")])
    # through the retargeter: filter and limits, no IK; unmapped/NaN joints keep their command
    t = 0.0
    for _ in range(300):
        t += 0.01
        out = r.step_direct(q, t, t)
    assert out.q[k("left_elbow_joint")] == pytest.approx(q[k("left_elbow_joint")], abs=1e-3)
    assert out.q[k("right_elbow_joint")] == pytest.approx(r.q_posture[k("right_elbow_joint")])
    out = r.step_direct(q, t + 0.01, t + 0.01, enabled=False)
    assert "disabled" in out.flags
    out = r.step_direct(q, t + 1.0, t)
    assert "stale" in out.flags
    with pytest.raises(KeyError, match="left_elbow_joint"):
        DirectJointMap(r.model, {"left_elbow_jiont": {}})


def test_unknown_exo_joint_names_flag_through_retargeter(clip):
    from robot_capture.retarget.exo import ExoArmModel

    exo = ExoArmModel.load()
    names, readings = exo.angles_from_pose(clip.human_pose(10))
    pose = exo.pose_from_angles(names + ["mystery"], np.r_[readings, 0.0], stamp=0.0)
    out = Retargeter("g1").step(pose, 0.0)
    assert "unknown_joints" in out.flags and not out.held


def test_malformed_input_is_flagged_not_raised():
    from robot_capture.retarget.exo import ExoArmModel

    r = Retargeter("g1")
    pose = HumanPose({k: np.eye(3) for k in r.required_keypoints()}, 0.0)
    out = r.step(pose, 0.0)
    assert {"malformed", "held"} <= out.flags
    exo = ExoArmModel.load()
    p = exo.pose_from_angles(exo.joint_names, ["a"] * 14)
    assert not p.valid and "malformed" in p.flags
    assert "malformed" in r.step(p, 0.0).flags or "invalid_input" in r.step(p, 0.0).flags
    dm = DirectJointMap(r.model, {"left_elbow_joint": {"source": "e"}})
    q, flags = dm.map(["e"], ["x"])
    assert "malformed" in flags and np.isnan(q).all()
