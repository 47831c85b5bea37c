"""Hand retargeting (issue 20): bad mappings and bad poses give one clear error or a flagged hold,
never a finger command outside its limits; the C VectorTask against its NumPy twin."""

import numpy as np
import pytest

from robot_capture.hands import HandConfigError, HandInputError, HandRetargeter, load_hand
from robot_capture.hands.model import resolve_hand
from robot_capture.kinematics import IKSolver, RobotModel, VectorTask
from robot_capture.paths import data_dir
from robot_capture.retarget.hand_tracking import load_webxr_hand_poses, webxr_sample_path, webxr_to_openxr

INSPIRE = data_dir() / "hands" / "inspire_hand" / "inspire_hand_right.urdf"


def _yaml(tmp_path, text, name="hand.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _inspire_yaml(**over):
    base = resolve_hand("inspire_right").read_text().replace("urdf: hands/", f"urdf: {data_dir()}/hands/")
    for k, v in over.items():
        base = base.replace(k, v)
    return base


def test_a_typo_in_a_link_is_one_line_with_did_you_mean(tmp_path):
    p = _yaml(tmp_path, _inspire_yaml(**{"index: {link: index_tip": "index: {link: index_tpi"}))
    with pytest.raises(HandConfigError) as e:
        load_hand(p)
    msg = str(e.value)
    assert "\n" not in msg and "fingers.index.link" in msg and "did you mean 'index_tip'" in msg


def test_a_missing_base_link_and_an_unknown_key_are_clear(tmp_path):
    with pytest.raises(HandConfigError, match="base_link: unknown link 'hand_base_lnk'.*did you mean 'hand_base_link'"):
        load_hand(_yaml(tmp_path, _inspire_yaml(**{"base_link: hand_base_link": "base_link: hand_base_lnk"})))
    with pytest.raises(HandConfigError, match="scalling: unknown key.*did you mean 'scaling'"):
        load_hand(_yaml(tmp_path, _inspire_yaml(**{"scaling:": "scalling:"}), "b.yaml"))
    with pytest.raises(HandConfigError, match="unknown hand keypoint 'index_tipp'.*did you mean 'index_tip'"):
        load_hand(_yaml(tmp_path, _inspire_yaml(**{"keypoint: index_tip": "keypoint: index_tipp"}), "c.yaml"))


def test_a_urdf_whose_hand_has_no_joints_is_an_error(tmp_path):
    urdf = tmp_path / "rigid.urdf"
    urdf.write_text('<robot name="rigid"><link name="palm"/><link name="tip"/>'
                    '<joint name="j" type="fixed"><parent link="palm"/><child link="tip"/></joint></robot>')
    text = (f"name: rigid\nside: right\nurdf: {urdf}\nbase_link: palm\nfingers:\n"
            "  thumb: {link: tip, keypoint: thumb_tip, base_link: tip}\n"
            "  index: {link: tip, keypoint: index_tip, base_link: tip}\n"
            "  middle: {link: tip, keypoint: middle_tip, base_link: tip}\n")
    with pytest.raises(HandConfigError, match="has no movable joints under base_link 'palm'"):
        load_hand(_yaml(tmp_path, text))


def test_an_unknown_hand_name_suggests_the_shipped_one():
    with pytest.raises(FileNotFoundError, match="did you mean 'inspire_right'"):
        load_hand("inspire_rihgt")


@pytest.fixture(scope="module")
def right_poses():
    return [(p, webxr_to_openxr(p.positions, np.eye(4), "right")[:, :3, 3])
            for p in load_webxr_hand_poses(webxr_sample_path("right"))]


def test_bad_poses_raise_in_solve_and_hold_in_step(right_poses):
    r = HandRetargeter("inspire_right")
    h = r.hand
    good = dict((p.name, k) for p, k in right_poses)
    q_fist = r.solve(good["asl a"])
    nan = good["flat"].copy()
    nan[10, 1] = np.nan
    webxr = right_poses[0][0].positions  # the 25 WebXR joints as recorded
    cases = [(nan, "NaN/inf at index_tip"), (np.zeros((24, 3)), r"got shape \(24, 3\)"),
             (webxr, "25 hand joints: a WebXR hand.*webxr_to_openxr"),
             (np.zeros((26, 3)), "degenerate palm")]
    for pose, msg in cases:
        with pytest.raises(HandInputError, match=msg):
            r.solve(pose)
        res = r.step(pose)
        assert res.held and res.status is None and np.isnan(res.fingertip_error).all()
        assert pytest.approx(q_fist) == res.q  # held: the last command, unchanged
        assert ((res.q >= h.model.lower) & (res.q <= h.model.upper)).all()
    ok = r.step(good["flat"])
    assert not ok.held and ok.reason == "" and np.isfinite(ok.fingertip_error).all()


def test_every_recorded_pose_gives_commands_within_limits(right_poses):
    for name in ("inspire_right", "allegro_right", "g1_dex3_right", "h1_inspire_right"):
        r = HandRetargeter(name)
        lo, hi = r.hand.model.lower, r.hand.model.upper
        for _, k in right_poses:
            q = r.step(k).q
            assert ((q >= lo - 1e-12) & (q <= hi + 1e-12)).all(), name


def test_vector_task_c_matches_numpy_and_finite_differences():
    m = RobotModel.from_urdf(INSPIRE, base_link="hand_base_link")
    tasks = [VectorTask("index_tip", "thumb_tip", 2.0), VectorTask("pinky_tip", "hand_base_link", 1.0)]
    q = np.full(m.nq, 0.3)
    J = tasks[0].compute_jacobian(m, q)
    eps = 1e-6
    for i in range(m.nq):
        dq = np.zeros(m.nq)
        dq[i] = eps
        fd = (tasks[0].current(m, q + dq) - tasks[0].current(m, q - dq)) / (2 * eps)
        assert np.allclose(J[:, i], fd, atol=1e-7)
    targets = np.tile(np.eye(4), (2, 1, 1))
    q_goal = 0.6 * m.upper  # inside the limits: the two vectors are reachable
    targets[0, :3, 3] = tasks[0].current(m, q_goal)
    targets[1, :3, 3] = tasks[1].current(m, q_goal)
    q0 = 0.4 * m.upper
    rc = IKSolver(m, tasks, max_iterations=30).solve(q0, targets)
    rn = IKSolver(m, tasks, max_iterations=30, backend="numpy").solve(q0, targets)
    assert np.allclose(rc.q, rn.q, atol=1e-8)
    assert rc.position_errors.max() < 1e-3  # a reachable pair of vectors is tracked
    assert np.isnan(rc.orientation_errors).all()  # a vector has no orientation


def test_set_position_costs_checks_its_input():
    m = RobotModel.from_urdf(INSPIRE, base_link="hand_base_link")
    s = IKSolver(m, [VectorTask("index_tip", "thumb_tip")])
    s.set_position_costs([200.0])
    assert s.tasks[0].position_cost == 200.0
    for bad in ([np.nan], [-1.0], [1.0, 2.0]):
        with pytest.raises(ValueError, match="finite and >= 0|expected 1 float64 values"):
            s.set_position_costs(bad)


def test_set_max_iterations_bounds_the_next_solves():
    m = RobotModel.from_urdf(INSPIRE, base_link="hand_base_link")
    s = IKSolver(m, [VectorTask("index_tip", "thumb_tip")], max_iterations=50)
    target = np.eye(4)
    target[:3, 3] = [0.0, 0.0, 0.0]  # tips together: several steps away from the open hand
    s.set_max_iterations(1)
    s.solve(np.zeros(m.nq), [target])
    assert s.last_iterations == 1
    s.set_max_iterations(50)
    s.solve(np.zeros(m.nq), [target])
    assert s.last_iterations > 1
    with pytest.raises(ValueError, match="0..100000"):
        s.set_max_iterations(-1)


def test_glove_joint_angles_drive_the_hand_within_limits_and_bad_readings_hold(tmp_path):
    glove = ("glove:\n  joints:\n    index_proximal_joint: {source: glove_index, scale: 1.0}\n"
             "    thumb_proximal_pitch_joint: {source: glove_thumb, scale: 0.5}\n")
    r = HandRetargeter(load_hand(_yaml(tmp_path, _inspire_yaml() + glove)))
    h = r.hand
    res = r.step_glove(["glove_index", "glove_thumb"], [0.8, 4.0])
    i, t = h.joint_names.index("index_proximal_joint"), h.joint_names.index("thumb_proximal_pitch_joint")
    assert not res.held and res.q[i] == pytest.approx(0.8)
    assert res.q[t] == pytest.approx(h.model.upper[t])  # 0.5 * 4.0 = 2 rad, clamped to the limit
    held = r.step_glove(["glove_index"], [np.nan])
    assert held.held and "NaN" in held.reason and pytest.approx(res.q) == held.q
    assert r.step_glove(["glove_index", "glove_thumb"], [0.1]).held  # names and positions differ
    partial = r.step_glove(["glove_index"], [0.2])  # the thumb's reading is missing: it keeps its command
    assert not partial.held and partial.q[i] == pytest.approx(0.2) and partial.q[t] == pytest.approx(res.q[t])
    assert "missing_joints" in partial.reason


def test_a_glove_joint_typo_is_one_line_with_did_you_mean(tmp_path):
    glove = "glove:\n  joints:\n    index_proximal_jiont: {source: g}\n"
    with pytest.raises(HandConfigError, match="glove.joints.index_proximal_jiont: not a driver joint.*did you mean "
                                              "'index_proximal_joint'"):
        load_hand(_yaml(tmp_path, _inspire_yaml() + glove))
    res = HandRetargeter("inspire_right").step_glove(["a"], [0.0])  # a mapping without glove: holds
    assert res.held and "has no glove: joints" in res.reason
