"""A simulator node started directly (``ros2 run``, no floor.yaml to refuse it) with an infinite
rate or speed stops with one error line, no traceback (issue 23: robot_sim and the camera died
with ZeroDivisionError in sim/ticker.py)."""
import pytest

from ros_util import start_node

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]

CASES = [
    ("robot_capture.nodes.robot_sim_node", {"rate_hz": ".inf"}, "must be finite and > 0"),
    ("robot_capture.nodes.camera_node", {"rate_hz": ".inf", "source": "synthetic"}, "must be finite and > 0"),
    ("robot_capture.nodes.mocap_replay_node", {"speed": ".inf", "clip": "cmu_02_01_walk"},
     "speed must be finite and > 0"),
]


@pytest.mark.parametrize("module,params,message", CASES, ids=[c[0].rsplit(".", 1)[1] for c in CASES])
def test_an_infinite_rate_stops_the_node_in_one_line(module, params, message):
    proc = start_node(module, params)
    out, _ = proc.communicate(timeout=200)  # the node exits by itself: wait for that state
    assert proc.returncode == 1, out[-2000:]
    assert "Traceback" not in out and "ZeroDivisionError" not in out, out[-3000:]
    assert message in out, out[-2000:]
