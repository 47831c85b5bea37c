"""Live hands (issue 20): the retarget session with a robot mapping's ``hands:`` (ROS-free).

The session (``retarget.live.LiveRetarget`` + ``retarget.live_hands``) steps one HandRetargeter
per side with the newest /vr/<side>_hand frame, puts every hand joint on the command with the
arm joints, holds the last hand command on a stale/lost/NaN hand (flagged, reason in the
diagnostics) and never commands a finger outside its limits.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from robot_capture.config_schema import ConfigError
from robot_capture.hands import HandRetargeter, load_hand
from robot_capture.retarget.live import LiveRetarget
from robot_capture.retarget.mapping import RobotMapping
from robot_capture.sim.replay import _hand_local

def _session(robot="g1_dex3", **kw):
    return LiveRetarget(RobotMapping.load(robot), "exo", rate_hz=100.0, **kw)


def _exo(live, t):
    names = live.exo.joint_names
    live.on_exo(names, [0.0] * len(names), stamp=t, token=t, recv=t)


def _command(live, out):
    names, q, qd = live.joint_command(out)
    assert len(names) == len(q) == len(qd) == len(set(names))
    return dict(zip(names, q))


def _hand(side, pose):
    return _hand_local(side, pose)  # (26, 4, 4) OpenXR joints of a recorded Quest pose


def test_pinch_moves_fingers_as_the_hand_retargeter_does():
    live = _session()
    ref = {s: HandRetargeter(f"g1_dex3_{s}") for s in ("left", "right")}
    t = 10.0
    _exo(live, t)
    out, _ = live.step(t)
    open_cmd = _command(live, out)
    hand_joints = live.hands.joint_names
    assert len(hand_joints) == 14 and all(j in open_cmd for j in hand_joints)
    arm_names = out.joint_command()[0]
    assert not set(arm_names) & set(hand_joints)  # one name, one value
    for pose in ("rest", "pinch"):
        t += 0.01
        for s in ("left", "right"):
            live.on_vr_hand(s, list(_hand(s, pose)), stamp=t, recv=t)
            ref[s].step(_hand(s, pose))
        _exo(live, t)
        out, _ = live.step(t)
    cmd = _command(live, out)
    for s in ("left", "right"):
        want = ref[s].hand.command(ref[s].q)
        assert {j: cmd[j] for j in want} == pytest.approx(want, abs=1e-9)
    moved = [j for j in hand_joints if abs(cmd[j] - open_cmd[j]) > 0.1]
    assert any("thumb" in j for j in moved) and any("index" in j for j in moved), moved
    # the robot pinch closes (thumb tip near index tip), as the hand core promises
    r = ref["right"]
    tips = r.hand.tip_positions(r.q)
    assert np.linalg.norm(tips[0] - tips[1]) < 0.03
    _level, _msg, values = live.diagnostics()
    for s in ("left", "right"):
        for f in ("thumb", "index", "middle"):
            assert math.isfinite(values[f"{s}_hand.{f}.fingertip_error_m"])
        assert values[f"{s}_hand.reason"] == ""


def _pinched(live, t=10.0):
    for s in ("left", "right"):
        live.on_vr_hand(s, list(_hand(s, "pinch")), stamp=t, recv=t)
    _exo(live, t)
    out, _ = live.step(t)
    live.diagnostics()
    return _command(live, out), t


def test_stale_hand_holds_the_last_command_flagged():
    live = _session()
    before, t = _pinched(live)
    # the hand tracking is lost: the arms keep getting input, the hand frame ages past the bound
    for _ in range(39):
        t += 0.01
        _exo(live, t)
        out, _ = live.step(t)
    after = _command(live, out)
    assert {j: after[j] for j in live.hands.joint_names} == {j: before[j] for j in live.hands.joint_names}
    level, msg, values = live.diagnostics()
    assert level == 1 and "hand_stale" in msg
    assert "lost" in values["right_hand.reason"]
    # a fresh open hand moves it again
    t += 0.01
    live.on_vr_hand("right", list(_hand("right", "flat")), stamp=t, recv=t)
    _exo(live, t)
    out, _ = live.step(t)
    assert _command(live, out)["right_hand_thumb_1_joint"] != before["right_hand_thumb_1_joint"]


@pytest.mark.parametrize("bad", ["nan", "25 joints", "ragged", "left for right"])
def test_bad_hand_frame_holds_and_never_raises(bad):
    live = _session()
    before, t = _pinched(live)
    frame = _hand("right", "flat").copy()
    if bad == "nan":
        frame[7, 0, 3] = np.nan
    elif bad == "25 joints":
        frame = frame[:25]
    elif bad == "ragged":
        frame = [np.eye(4), "x", None]
    else:
        frame = _hand("left", "flat")
    t += 0.01
    live.on_vr_hand("right", list(frame), stamp=t, recv=t)
    _exo(live, t)
    out, _ = live.step(t)
    after = _command(live, out)
    right = [j for j in live.hands.joint_names if j.startswith("right")]
    assert {j: after[j] for j in right} == {j: before[j] for j in right}
    level, msg, values = live.diagnostics()
    assert level == 1 and "hand_held" in msg
    assert values["right_hand.reason"]


def test_bad_hand_stamps_are_rejected_not_used():
    live = _session()
    before, t = _pinched(live)
    t += 0.01
    live.on_vr_hand("right", list(_hand("right", "flat")), stamp=t + 5.0, recv=t)  # from the future
    live.on_vr_hand("left", list(_hand("left", "flat")), stamp=-math.inf, recv=t)
    _exo(live, t)
    out, _ = live.step(t)
    after = _command(live, out)
    assert {j: after[j] for j in live.hands.joint_names} == {j: before[j] for j in live.hands.joint_names}
    assert "hand_bad_stamp" in live.diagnostics()[2]["flags"]


def test_deadman_holds_the_hands():
    live = _session(require_enable=True)
    t = 10.0
    for s in ("left", "right"):
        live.on_vr_hand(s, list(_hand(s, "pinch")), stamp=t, recv=t)
    _exo(live, t)
    out, _ = live.step(t)
    hand = load_hand("g1_dex3_right")
    open_cmd = hand.command(hand.model.neutral())
    cmd = _command(live, out)
    assert {j: cmd[j] for j in open_cmd} == pytest.approx(open_cmd)
    assert "hand_disabled" in live.diagnostics()[2]["flags"]
    live.set_enable(True)  # the frame held back is used once enabled
    out, _ = live.step(t + 0.005)
    assert _command(live, out)["right_hand_thumb_1_joint"] != pytest.approx(open_cmd["right_hand_thumb_1_joint"])


def test_every_recorded_pose_and_junk_stays_within_the_hand_limits():
    from robot_capture.retarget.hand_tracking import load_webxr_hand_poses, webxr_sample_path, webxr_to_openxr

    live = _session()
    hands = {s: load_hand(f"g1_dex3_{s}") for s in ("left", "right")}
    lo = {j: lim for h in hands.values() for j, lim in zip(h.joint_names, zip(h.model.lower, h.model.upper))}
    rng = np.random.default_rng(0)
    t, n = 10.0, 0
    frames = {s: [webxr_to_openxr(p.positions, np.eye(4), s) for p in load_webxr_hand_poses(webxr_sample_path(s))]
              for s in ("left", "right")}
    for k in range(max(len(v) for v in frames.values())):
        t += 0.01
        for s in ("left", "right"):
            f = frames[s][k % len(frames[s])]
            if k % 7 == 3:  # junk: a hand blown up / squashed to a point
                f = f * rng.uniform(-50, 50)
            live.on_vr_hand(s, list(f), stamp=t, recv=t)
        _exo(live, t)
        out, _ = live.step(t)
        cmd = _command(live, out)
        for j, (a, b) in lo.items():
            assert a - 1e-9 <= cmd[j] <= b + 1e-9, (j, cmd[j], a, b)
            n += 1
    assert n >= 55 * 14  # every recorded pose, both hands


def test_default_g1_has_no_hands_and_an_unchanged_command():
    live = _session("g1")
    assert live.hands is None
    _exo(live, 1.0)
    out, _ = live.step(1.0)
    names, q, _qd = live.joint_command(out)
    assert names == out.joint_command()[0] and not any("hand" in n for n in names)
    live.on_vr_hand("left", [np.eye(4)] * 26, stamp=1.0)  # ignored: no hands, exo source, no raise


def test_a_hand_joint_left_to_the_arm_ik_is_a_clear_error():
    raw = RobotMapping.load("g1_dex3").raw
    raw = {**raw, "locked_joints": [j for j in raw["locked_joints"] if "hand" not in j]}
    m = RobotMapping.from_dict(raw, source=RobotMapping.load("g1_dex3").source)
    with pytest.raises(ValueError, match="locked_joints"):
        LiveRetarget(m, "exo")


def test_hands_key_typo_is_a_config_error():
    raw = dict(RobotMapping.load("g1_dex3").raw)
    raw["hands"] = {"lefft": "g1_dex3_left"}
    with pytest.raises(ConfigError, match="hands"):
        RobotMapping.from_dict(raw, source="g1_dex3.yaml")
    raw["hands"] = {"right": "g1_dex3_left"}  # the wrong side's mapping
    with pytest.raises(ValueError, match="left hand mapping"):
        LiveRetarget(RobotMapping.from_dict(raw, source=RobotMapping.load("g1_dex3").source), "exo")


def test_sim_simulates_the_hand_joints():
    from robot_capture.sim.robots import load_robot

    model, locked = load_robot("g1_dex3")
    hand_joints = [j for j in model.joint_names if "_hand_" in j]
    assert len(hand_joints) == 14
    assert not set(hand_joints) & set(locked)
    assert "left_knee_joint" in locked


def test_replay_cycles_hand_poses_so_the_fingers_move():
    from robot_capture.sim.replay import ClipReplay

    r = ClipReplay("cmu_02_06_bend_scoop_up_lift_arm.bvh", exo=False, hand_poses="rest, fist", hand_pose_s=0.5)
    per_pose = int(round(0.5 / r.frame_time))
    wrist = np.linalg.inv(r.vr["right_wrist"])
    local = lambda i: (wrist[i] @ r.hands["right"][i])[:, :3, 3]  # noqa: E731 - the hand in its wrist frame
    np.testing.assert_allclose(local(0), _hand("right", "rest")[:, :3, 3], atol=1e-9)
    np.testing.assert_allclose(local(per_pose + 1), _hand("right", "fist")[:, :3, 3], atol=1e-9)
    np.testing.assert_allclose(local(2 * per_pose + 1), _hand("right", "rest")[:, :3, 3], atol=1e-9)
    with pytest.raises(ValueError, match="hand_pose_s"):
        ClipReplay("cmu_02_06_bend_scoop_up_lift_arm.bvh", exo=False, hand_poses="rest", hand_pose_s=0.0)


def test_sim_graph_replays_hands_only_for_a_robot_with_hands():
    from robot_capture.floor import graph

    def replay_params(robot):
        return next(s.parameters for s in graph.build(None, overrides={"robot": robot}, sim=True)
                    if s.role == "mocap_replay")

    assert replay_params("g1_dex3")["hand_poses"] == graph.SIM_HAND_POSES
    assert "hand_poses" not in replay_params("g1")  # the default floor is unchanged
