"""What each node declares as ROS parameters, read from its source without importing rclpy.

The nodes declare their parameters in two ways: a module-level ``PARAMS = {name: default}``
dict (recorder, player; one-line descriptions in ``PARAM_HELP = {name: text}``) and calls ``p("name", default, "description")`` /
``declare(self, "name", default, "description")`` / ``self.declare_parameter("name", ...)``
in ``__init__`` (retarget, camera, mocap_replay, robot_sim). :func:`declared_parameters`
reads both from the module's syntax tree (:mod:`ast`), so the floor config check
(``parameters: {<node>: {...}}``) and the README's parameter tables need no ROS and always
follow the code. ROS-free.

    python -m robot_capture.nodes.declared --write README.md   # regenerate the README tables
    python -m robot_capture.nodes.declared --check README.md   # exit 1 if they are stale
"""
from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["Declared", "declared_parameters", "NODE_MODULES", "markdown_tables", "update_readme"]

#: floor role -> node module (as robot_capture.floor.graph.EXECUTABLES)
NODE_MODULES = {
    "recorder": "robot_capture.nodes.recorder_node",
    "retarget": "robot_capture.nodes.retarget_node",
    "camera": "robot_capture.nodes.camera_node",
    "mocap_replay": "robot_capture.nodes.mocap_replay_node",
    "robot_sim": "robot_capture.nodes.robot_sim_node",
    "player": "robot_capture.nodes.player_node",
    "xr": "robot_capture.nodes.xr_node",
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
    help_text: dict[str, str] = {}
    consts = {}  # module-level NAME = literal, for defaults written as a constant (DEFAULT_CLIP)
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                consts[node.targets[0].id] = repr(ast.literal_eval(node.value))
            except ValueError:
                pass
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "PARAM_HELP" for t in node.targets):
            help_text = {k: v for k, v in ast.literal_eval(node.value).items()}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "PARAMS" for t in node.targets) \
                and isinstance(node.value, ast.Dict):
            for k, v in zip(node.value.keys, node.value.values):
                if isinstance(k, ast.Constant) and isinstance(k.value, str):
                    out.setdefault(k.value, Declared(k.value, _default(v), help_text.get(k.value, "")))
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
        default = consts.get(default, default)
        desc = _text(args[2]) if len(args) > 2 and fname != "declare_parameter" else ""
        if fname == "p" and len(args) < 2:  # recorder's self._p(name): a read, not a declaration
            continue
        desc = desc or help_text.get(name, "")
        if name not in out or (desc and not out[name].description):
            out[name] = Declared(name, out[name].default if name in out else default, desc)
    return out


BEGIN = "<!-- node-parameters: generated by `python -m robot_capture.nodes.declared --write README.md` from the nodes' declarations; do not edit by hand -->"
END = "<!-- node-parameters: end -->"
# README order, with the executable each role runs
_README_NODES = [("recorder", "recorder_node"), ("retarget", "retarget_node"), ("mocap_replay", "mocap_replay_node"),
                 ("robot_sim", "robot_sim_node"), ("camera", "camera_node"), ("player", "player_node"), ("xr", "xr_node")]


def markdown_tables() -> str:
    """The README's node parameter tables (one per node: parameter, default, meaning)."""
    lines = []
    for role, exe in _README_NODES:
        name = "camera_<name>" if role == "camera" else role
        lines += [f"**`{name}`** (`{exe}`)", "", "| parameter | default | meaning |", "|---|---|---|"]
        for d in declared_parameters(NODE_MODULES[role]).values():
            meaning = d.description.replace("|", "\\|")
            lines.append(f"| `{d.name}` | `{d.default}` | {meaning} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def update_readme(text: str) -> str:
    """``text`` with the block between :data:`BEGIN` and :data:`END` regenerated.

    Raises:
        ValueError: the markers are missing.
    """
    if BEGIN not in text or END not in text:
        raise ValueError("README has no node-parameters markers")
    head, rest = text.split(BEGIN, 1)
    _old, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{markdown_tables()}\n{END}{tail}"


def main(argv=None) -> int:
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m robot_capture.nodes.declared",
                                 description="print, write or check the README's node parameter tables")
    ap.add_argument("--write", metavar="README", help="regenerate the tables in this file")
    ap.add_argument("--check", metavar="README", help="exit 1 when the tables in this file are stale")
    a = ap.parse_args(argv)
    if a.write or a.check:
        path = Path(a.write or a.check)
        text = path.read_text(encoding="utf-8")
        new = update_readme(text)
        if a.check:
            if new != text:
                print(f"{path}: node parameter tables are stale: run python -m robot_capture.nodes.declared "
                      f"--write {path}", file=sys.stderr)
                return 1
            return 0
        path.write_text(new, encoding="utf-8")
        return 0
    print(markdown_tables())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
