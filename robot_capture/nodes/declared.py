"""What each node declares as ROS parameters, read from its source without importing rclpy.

The nodes declare their parameters in two ways: a module-level ``PARAMS = {name: default}``
dict (recorder, player) and calls ``p("name", default, "description")`` /
``declare(self, "name", default, "description")`` / ``self.declare_parameter("name", ...)``
in ``__init__`` (retarget, camera, mocap_replay, robot_sim). :func:`declared_parameters`
reads both from the module's syntax tree (:mod:`ast`), so the floor config check
(``parameters: {<node>: {...}}``) and the README's parameter tables need no ROS and always
follow the code. ROS-free.
"""
from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["Declared", "declared_parameters", "NODE_MODULES"]

#: floor role -> node module (as robot_capture.floor.graph.EXECUTABLES)
NODE_MODULES = {
    "recorder": "robot_capture.nodes.recorder_node",
    "retarget": "robot_capture.nodes.retarget_node",
    "camera": "robot_capture.nodes.camera_node",
    "mocap_replay": "robot_capture.nodes.mocap_replay_node",
    "robot_sim": "robot_capture.nodes.robot_sim_node",
    "player": "robot_capture.nodes.player_node",
}


@dataclass(frozen=True)
class Declared:
    """One declared parameter: ``default`` as written in the source (e.g. ``'100.0'``, ``"'g1'"``,
    ``'string array'``), ``description`` ('' when the declaration has none)."""

    name: str
    default: str
    description: str = ""


def _text(node) -> str:
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return ast.unparse(node)
    return str(value) if isinstance(value, str) else repr(value)


def _default(node) -> str:
    src = ast.unparse(node)
    if src.startswith("Parameter.Type."):
        return src.rsplit(".", 1)[1].lower().replace("_", " ")  # STRING_ARRAY -> 'string array'
    try:
        return repr(ast.literal_eval(node))
    except ValueError:
        return src


@lru_cache(maxsize=None)
def declared_parameters(module: str) -> dict[str, Declared]:
    """``{name: Declared}`` for every parameter ``module`` declares, in declaration order.

    Raises:
        ModuleNotFoundError: no such module.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise ModuleNotFoundError(module)
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    out: dict[str, Declared] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "PARAMS" for t in node.targets) \
                and isinstance(node.value, ast.Dict):
            for k, v in zip(node.value.keys, node.value.values):
                if isinstance(k, ast.Constant) and isinstance(k.value, str):
                    out.setdefault(k.value, Declared(k.value, _default(v)))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        fname = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        args = list(node.args)
        if fname == "declare" and args and not (isinstance(args[0], ast.Constant)):
            args = args[1:]  # declare(self, name, default, text)
        elif fname not in ("p", "declare_parameter"):
            continue
        if not args or not (isinstance(args[0], ast.Constant) and isinstance(args[0].value, str)):
            continue
        name = args[0].value
        default = _default(args[1]) if len(args) > 1 else ""
        desc = _text(args[2]) if len(args) > 2 and fname != "declare_parameter" else ""
        if fname == "p" and len(args) < 2:  # recorder's self._p(name): a read, not a declaration
            continue
        if name not in out or (desc and not out[name].description):
            out[name] = Declared(name, out[name].default if name in out else default, desc)
    return out
