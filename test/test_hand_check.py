"""``robot-capture robot check <hand>`` (issue 20): report, reference poses and a PNG; typos are one line."""
import subprocess

from _cmd import module_command


def _cli(*args):
    return subprocess.run(module_command("robot_capture.cli") + list(args), capture_output=True, text=True,
                          timeout=300)


def test_robot_check_renders_a_hand_in_open_fist_and_pinch(tmp_path):
    png = tmp_path / "hand.png"
    p = _cli("robot", "check", "h1_inspire_left", "--png", str(png))
    assert p.returncode == 0, p.stderr
    assert "mimic L_index_intermediate_joint = 1 * L_index_proximal_joint" in p.stdout
    assert "reference poses (Quest recordings): open" in p.stdout and "pinch thumb-index" in p.stdout
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_robot_check_of_a_mistyped_hand_suggests_it():
    p = _cli("robot", "check", "inspire_rigth", "--no-png")
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "did you mean 'inspire_right'" in p.stderr
    assert "Traceback" not in p.stderr
