"""Qualisys hand markers -> OpenXR joints (issue 20's grasp time series): sides, lost markers held."""
import numpy as np
import pytest

from robot_capture.hands import HandRetargeter, handedness
from robot_capture.hands.qualisys import load_qualisys_tsv, qualisys_to_openxr
from robot_capture.paths import data_dir

TSV = data_dir() / "hand_tracking" / "qualisys_hand_markers_pillow_grasp_recording.tsv"


@pytest.fixture(scope="module")
def grasp():
    hz, markers = load_qualisys_tsv(TSV)
    return hz, qualisys_to_openxr(markers)


def test_the_grasp_is_a_right_hand_at_100_hz_with_lost_markers_as_nan(grasp):
    hz, K = grasp
    assert hz == 100.0 and K.shape == (6000, 26, 3)
    ok = np.isfinite(K).all(axis=(1, 2))
    assert 0.8 < ok.mean() < 1.0  # the thumb tip is lost in some frames (exported as 0 0 0)
    assert {handedness(k) for k in K[ok][::100]} == {"right"}


def test_lost_markers_hold_the_hand_within_limits(grasp):
    _, K = grasp
    r = HandRetargeter("inspire_right")
    lo, hi = r.hand.model.lower, r.hand.model.upper
    held = 0
    for k in K[:1500]:
        res = r.step(k)
        held += res.held
        assert ((res.q >= lo) & (res.q <= hi)).all()
        if res.held:
            assert "NaN/inf" in res.reason
    assert held == int((~np.isfinite(K[:1500]).all(axis=(1, 2))).sum()) > 0


def test_a_file_that_is_not_a_qualisys_export_is_a_clear_error(tmp_path):
    p = tmp_path / "x.tsv"
    p.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="not a Qualisys TSV export"):
        load_qualisys_tsv(p)
