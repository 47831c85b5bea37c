"""Hand retargeting (issue 20): pinch, fist, open hand, sides, mimic joints, on the shipped hands
with the recorded Quest poses (shared/data/hand_tracking, 55 + 55 WebXR poses)."""
import numpy as np
import pytest

from robot_capture.hands import HandInputError, HandRetargeter, handedness, shipped_hands
from robot_capture.retarget.hand_tracking import load_webxr_hand_poses, webxr_sample_path, webxr_to_openxr

HANDS = ["g1_dex3_left", "g1_dex3_right", "h1_inspire_left", "h1_inspire_right", "inspire_left", "inspire_right",
         "allegro_left", "allegro_right"]


def _poses(side):
    return {p.name: webxr_to_openxr(p.positions, np.eye(4), side)[:, :3, 3]
            for p in load_webxr_hand_poses(webxr_sample_path(side))}


@pytest.fixture(scope="module")
def poses():
    return {"left": _poses("left"), "right": _poses("right")}


def _within(h, q):
    return bool(((q >= h.model.lower - 1e-9) & (q <= h.model.upper + 1e-9)).all())


def test_every_hand_is_shipped():
    assert set(HANDS) <= set(shipped_hands())


def test_recorded_poses_have_their_side(poses):
    for side in ("left", "right"):
        assert {handedness(p) for p in poses[side].values()} == {side}


@pytest.mark.parametrize("name", HANDS)
def test_pinch_closes_the_robot_pinch(poses, name):
    r = HandRetargeter(name)
    h = r.hand
    q = r.solve(poses[h.side]["pinch"])
    tips = h.tip_positions(q)
    human = poses[h.side]["pinch"]
    assert np.linalg.norm(human[5] - human[10]) < 0.015  # the operator pinches (thumb tip - index tip)
    assert np.linalg.norm(tips[0] - tips[1]) <= 0.010, f"{name}: thumb-index gap {np.linalg.norm(tips[0] - tips[1])}"
    assert _within(h, q)


@pytest.mark.parametrize("name", HANDS)
def test_every_recorded_pinch_closes_in_sequence(poses, name):
    """All 55 poses in file order (each a jump from the last); every pose whose human thumb and index
    tips are < 15 mm apart ("pinch", "grab", "asl f", "asl o", "asl 9") closes the robot's to <= 10 mm,
    also when the thumb touches the middle finger too (a grab)."""
    r = HandRetargeter(name)
    h = r.hand
    gaps = {}
    for pname, k in poses[h.side].items():
        q = r.solve(k)
        if np.linalg.norm(k[5] - k[10]) < 0.015:
            t = h.tip_positions(q)
            gaps[pname] = np.linalg.norm(t[0] - t[1])
    assert len(gaps) >= 4 and max(gaps.values()) <= 0.010, f"{name}: {gaps}"


@pytest.mark.parametrize("name", HANDS)
def test_fist_closes_and_flat_hand_opens_every_finger(poses, name):
    r = HandRetargeter(name)
    h = r.hand
    wrist = h.wrist_position
    reach = lambda q: np.linalg.norm(h.tip_positions(q)[1:] - wrist, axis=1)  # noqa: E731  non-thumb fingers
    open_reach = reach(h.model.neutral())  # the zero configuration: every URDF here is straight at 0
    q_fist = r.solve(poses[h.side]["asl s"])  # ASL "S": a closed fist
    assert _within(h, q_fist)
    assert (reach(q_fist) < 0.8 * open_reach).all(), f"{name}: fist reach {reach(q_fist)} vs open {open_reach}"
    q_flat = r.solve(poses[h.side]["flat"])  # from the fist back to a flat hand
    assert _within(h, q_flat)
    assert (reach(q_flat) > 0.9 * open_reach).all(), f"{name}: flat reach {reach(q_flat)} vs open {open_reach}"


def test_left_and_right_are_not_swapped(poses):
    left, right = HandRetargeter("g1_dex3_left"), HandRetargeter("g1_dex3_right")
    assert all(n.startswith("left_hand_") for n in left.joint_names)
    assert all(n.startswith("right_hand_") for n in right.joint_names)
    with pytest.raises(HandInputError, match="right hand was given to the left hand mapping"):
        left.solve(poses["right"]["pinch"])
    # the same pinch, each on its own side, closes both hands
    for r, side in ((left, "left"), (right, "right")):
        tips = r.hand.tip_positions(r.solve(poses[side]["pinch"]))
        assert np.linalg.norm(tips[0] - tips[1]) <= 0.010


@pytest.mark.parametrize("name", ["h1_inspire_left", "inspire_right"])
def test_mimic_joints_follow_their_drivers(poses, name):
    r = HandRetargeter(name)
    h = r.hand
    urdf = h.model.urdf
    assert h.model.mimic, "the Inspire URDFs have mimic joints"
    for pose in poses[h.side].values():
        cmd = h.command(r.solve(pose))
        for joint, (driver, mult, offset) in h.model.mimic.items():
            assert cmd[joint] == pytest.approx(mult * cmd[driver] + offset, abs=1e-12)
            j = urdf.joints[joint]
            assert j.lower - 1e-9 <= cmd[joint] <= j.upper + 1e-9, f"{joint} = {cmd[joint]} outside its URDF limits"
