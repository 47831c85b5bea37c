"""The three hand modes (vector, dexpilot, position) recover a hand pose the robot can reach: human
keypoints made from the robot's own FK at a known q* (scaling 1) give back q*'s fingertips."""
import numpy as np
import pytest

from robot_capture.hands import HandRetargeter
from robot_capture.hands.model import resolve_hand
from robot_capture.paths import data_dir
from robot_capture.retarget.pose import OPENXR_HAND_JOINTS

J = {n: i for i, n in enumerate(OPENXR_HAND_JOINTS)}


def _hand_yaml(tmp_path, mode):
    text = resolve_hand("inspire_right").read_text().replace("urdf: hands/", f"urdf: {data_dir()}/hands/")
    text = text.replace("mode: dexpilot", f"mode: {mode}").replace("scaling: 1.2", "scaling: 1.0")
    p = tmp_path / f"inspire_{mode}.yaml"
    p.write_text(text + "solver: {max_iterations: 60}\n")
    return p


def _robot_as_human(r, q):
    """(26, 3) keypoints: the wrist, knuckles and tips of the robot hand at q (other joints between)."""
    h = r.hand
    k = np.zeros((26, 3))
    k[J["wrist"]] = h.wrist_position
    names = {"thumb": "thumb", "index": "index", "middle": "middle", "ring": "ring", "little": "little"}
    tips = h.tip_positions(q)
    for f, tip in zip(h.fingers, tips):
        base = h.model.fk(q, h.spec.fingers[f].base_link)[:3, 3]
        n = names[f]
        for part, x in (("metacarpal", 0.5), ("proximal", 0.0), ("intermediate", 0.5), ("distal", 0.75)):
            key = f"{n}_{part}"
            if key in J:
                k[J[key]] = base + x * (tip - base) if part != "metacarpal" else 0.5 * (k[J["wrist"]] + base)
        k[J[f"{n}_tip"]] = tip
    k[J["palm"]] = k[J["middle_proximal"]]
    return k


@pytest.mark.parametrize("mode", ["vector", "dexpilot", "position"])
def test_each_mode_recovers_a_reachable_hand_pose(tmp_path, mode):
    r = HandRetargeter(_hand_yaml(tmp_path, mode), check_side=False)
    h = r.hand
    q_star = h.model.lower + np.array([0.5, 0.5, 0.3, 0.6, 0.4, 0.7]) * (h.model.upper - h.model.lower)
    keypoints = _robot_as_human(r, q_star)
    q = r.solve(keypoints)
    err = np.linalg.norm(h.tip_positions(q) - h.tip_positions(q_star), axis=1)
    assert err.max() < 2e-3, f"{mode}: fingertip errors {err} m"
    assert r.fingertip_error().max() < 2e-3
