"""The ROS-free topic-name rule against rclpy itself, and the recorder with a bad Joy map (issue 23).

* every name :func:`robot_capture.config_schema.ros_name_problem` accepts, rclpy accepts too
  (validated, expanded in a node's namespace, validated as a full name): a config that passes
  validation never makes a node die creating a subscription;
* a recorder given a Joy map with an invalid topic stays up: the Joy buttons are off and it
  says why (it used to die at start with a traceback).
"""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robot_capture.config_schema import ros_name_problem

rclpy = pytest.importorskip("rclpy")

# names built from the characters that matter to the rules
NAMES = st.text(alphabet="ab1_/~{}-. ", max_size=12) | st.sampled_from(
    ["/vr/buttons", "vr/buttons", "~/x", "~", "/{node}/x", "{node}", "{ns}/x", "/a__b", "//a", "/a/", "~a"])


def _rclpy_accepts(name: str, namespace: str) -> bool:
    from rclpy.expand_topic_name import expand_topic_name
    from rclpy.validate_full_topic_name import validate_full_topic_name
    from rclpy.validate_topic_name import validate_topic_name

    try:
        validate_topic_name(name)
        validate_full_topic_name(expand_topic_name(name, "recorder", namespace))
    except Exception:  # noqa: BLE001 - any rejection
        return False
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(NAMES, st.sampled_from(["/", "/station_a"]))
def test_every_name_the_rule_accepts_rclpy_accepts(name, namespace):
    if ros_name_problem(name) is None:
        assert _rclpy_accepts(name, namespace), name


@pytest.mark.parametrize("name", ["/vr/buttons", "/vr/1x", "/vr/", "//vr", "/a b", "/a-b", "", "/a/~/b", "{x}/b",
                                  "/{1x}", "/{a", "/a}", "/" + "a" * 247])
def test_the_rule_and_rclpy_agree_on_the_usual_mistakes(name):
    assert (ros_name_problem(name) is None) == _rclpy_accepts(name, "/"), (name, ros_name_problem(name))


@pytest.mark.ros
@pytest.mark.timeout(120)
def test_recorder_with_an_invalid_joy_topic_stays_up_without_buttons(tmp_path, monkeypatch):
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from robot_capture.nodes.recorder_node import RecorderNode

    joy = tmp_path / "joy.yaml"
    joy.write_text("topic: /vr/buttons/\nbuttons: {0: toggle}\n")
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    orig_init = Node.__init__
    monkeypatch.setattr(Node, "__init__", lambda self, name, **kw: orig_init(self, name, **{**kw, "context": ctx}))
    from rclpy.impl.rcutils_logger import RcutilsLogger

    errors = []
    orig_error = RcutilsLogger.error
    monkeypatch.setattr(RcutilsLogger, "error", lambda self, msg, *a, **k: errors.append(str(msg)) or
                        orig_error(self, msg, *a, **k))
    node = None
    try:
        node = RecorderNode([Parameter("output_dir", value=str(tmp_path / "out")), Parameter("topics", value=["/a"]),
                             Parameter("disk_min_free_mb", value=0.0), Parameter("joy_map", value=str(joy))],
                            name="rec_badjoy")
        assert node._joy is None  # the buttons are off; the recorder is up and answers
        assert '"state"' in node.command("status")
        said = [e for e in errors if e.startswith("Joy buttons off: ")]
        assert said and f"{joy}: topic: not a valid ROS topic name: must not end with '/'" in said[0], errors
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        rclpy.shutdown(context=ctx)
