"""The README's node parameter tables are generated from the nodes' declarations and match
them; every parameter the floor graph sets is one the node declares."""
from pathlib import Path

from robot_capture.floor import graph
from robot_capture.nodes.declared import BEGIN, END, declared_parameters, markdown_tables, update_readme

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_tables_match_the_declarations():
    text = README.read_text(encoding="utf-8")
    assert BEGIN in text and END in text
    assert update_readme(text) == text, "stale: python -m robot_capture.nodes.declared --write README.md"
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert "| `qos_depth` | `1000` |" in block  # the code's value, not a hand-copied one
    for name in ("status_log_s", "qos_depth_large", "drain_batch", "hand_poses"):
        assert f"| `{name}` |" in block, name


def test_generator_follows_the_code():
    tables = markdown_tables()
    for role in ("recorder", "retarget", "mocap_replay", "robot_sim", "camera", "player"):
        mod = f"robot_capture.nodes.{role}_node" if role != "player" else "robot_capture.nodes.player_node"
        for name, d in declared_parameters(mod).items():
            assert f"| `{name}` | `{d.default}` |" in tables, (role, name)


def test_every_parameter_the_floor_sets_is_declared():
    for spec in graph.build(None, sim=True):
        declared = declared_parameters(spec.module)
        assert set(spec.parameters) <= set(declared), (spec.name, set(spec.parameters) - set(declared))
