"""Parse a URDF file into plain dataclasses (no meshes needed, stdlib ``xml.etree`` only).

Follows the URDF XML specification (http://wiki.ros.org/urdf/XML):

* ``<origin xyz rpy>``: ``rpy`` are fixed-axis roll, pitch, yaw, i.e.
  ``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)``; missing attributes default to zero.
* ``<axis xyz>`` defaults to ``(1, 0, 0)`` and is normalised.
* ``<limit lower upper velocity effort>``; ``continuous`` joints have no position limits.
* ``<mimic joint multiplier offset>``: ``q = multiplier * q_master + offset``.

Quirks accepted: ``<material>`` without a name (never read), a ``<limit>`` missing on a
revolute/prismatic joint (unbounded, logged), a velocity of 0 (treated as unbounded),
``floating``/``planar`` joints (kept with their type; :class:`~.model.RobotModel` treats
them as fixed at the identity), comments and vendor tags (``<mujoco>``, ``<gazebo>``).

Errors: :class:`ValueError` naming the element and the problem for malformed XML, missing
or duplicated names, references to unknown links, non-numeric attributes, zero axes,
links with two parents and kinematic loops.
"""
from __future__ import annotations

import difflib
import logging
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

JOINT_TYPES = ("revolute", "continuous", "prismatic", "fixed", "floating", "planar")


@dataclass
class Mimic:
    """``<mimic>``: this joint's value is ``multiplier * q[joint] + offset``."""

    joint: str
    multiplier: float = 1.0
    offset: float = 0.0


@dataclass
class Joint:
    """One ``<joint>``.

    ``origin`` is ``T_parent_joint`` (4x4, m); ``axis`` is a unit 3-vector in the joint frame;
    ``lower``/``upper`` in rad (revolute) or m (prismatic), ±inf when absent;
    ``velocity`` in rad/s or m/s, ``inf`` when absent or 0.
    """

    name: str
    type: str
    parent: str
    child: str
    origin: np.ndarray = field(default_factory=lambda: np.eye(4))
    axis: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0]))
    lower: float = -math.inf
    upper: float = math.inf
    velocity: float = math.inf
    effort: float = math.inf
    mimic: Mimic | None = None


@dataclass
class Link:
    """One ``<link>`` (only its name matters for kinematics)."""

    name: str


@dataclass
class Urdf:
    """A parsed URDF: links and joints in document order, plus tree lookups."""

    name: str
    links: dict[str, Link]
    joints: dict[str, Joint]

    @property
    def child_joint(self) -> dict[str, Joint]:
        """Map link name -> the joint whose child it is."""
        return {j.child: j for j in self.joints.values()}

    @property
    def roots(self) -> list[str]:
        """Links that are no joint's child (a valid tree has exactly one)."""
        children = {j.child for j in self.joints.values()}
        return [n for n in self.links if n not in children]


def rpy_to_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """URDF fixed-axis rpy -> rotation matrix ``Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (3x3)."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def _where(elem: ET.Element, owner: str) -> str:
    return f"<{elem.tag}> of {owner}" if owner else f"<{elem.tag}>"


def _floats(elem: ET.Element, attr: str, n: int, default, owner: str) -> list[float]:
    text = elem.get(attr)
    if text is None:
        return list(default)
    parts = text.replace(",", " ").split()
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"URDF {_where(elem, owner)}: attribute {attr}={text!r} is not numeric") from None
    if len(vals) != n:
        raise ValueError(f"URDF {_where(elem, owner)}: attribute {attr}={text!r} needs {n} numbers, got {len(vals)}")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"URDF {_where(elem, owner)}: attribute {attr}={text!r} is not finite")
    return vals


def _float(elem: ET.Element, attr: str, default: float, owner: str) -> float:
    text = elem.get(attr)
    if text is None or text.strip() == "":
        return default
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"URDF {_where(elem, owner)}: attribute {attr}={text!r} is not numeric") from None
    if math.isnan(v):
        raise ValueError(f"URDF {_where(elem, owner)}: attribute {attr}={text!r} is NaN")
    return v


def _origin(elem: ET.Element | None, owner: str) -> np.ndarray:
    T = np.eye(4)
    if elem is None:
        return T
    xyz = _floats(elem, "xyz", 3, (0.0, 0.0, 0.0), owner)
    rpy = _floats(elem, "rpy", 3, (0.0, 0.0, 0.0), owner)
    T[:3, :3] = rpy_to_matrix(*rpy)
    T[:3, 3] = xyz
    return T


def _parse_joint(je: ET.Element) -> Joint:
    name = je.get("name")
    if not name:
        raise ValueError("URDF <joint>: missing 'name' attribute")
    owner = f"joint '{name}'"
    jtype = je.get("type")
    if jtype not in JOINT_TYPES:
        raise ValueError(f"URDF <joint name='{name}'>: type={jtype!r} is not one of {', '.join(JOINT_TYPES)}")
    ends = {}
    for tag in ("parent", "child"):
        e = je.find(tag)
        if e is None or not e.get("link"):
            raise ValueError(f"URDF <joint name='{name}'>: missing <{tag} link=...>")
        ends[tag] = e.get("link")
    j = Joint(name=name, type=jtype, parent=ends["parent"], child=ends["child"], origin=_origin(je.find("origin"), owner))
    ax = je.find("axis")
    if ax is not None:
        a = np.array(_floats(ax, "xyz", 3, (1.0, 0.0, 0.0), owner))
        n = float(np.linalg.norm(a))
        if n < 1e-12 and jtype in ("revolute", "continuous", "prismatic"):
            raise ValueError(f"URDF <axis> of {owner}: xyz={ax.get('xyz')!r} is a zero vector")
        j.axis = a / n if n >= 1e-12 else np.array([1.0, 0.0, 0.0])
    lim = je.find("limit")
    if lim is not None:
        j.velocity = _float(lim, "velocity", math.inf, owner)
        j.effort = _float(lim, "effort", math.inf, owner)
        if j.velocity <= 0.0:
            j.velocity = math.inf
        if jtype in ("revolute", "prismatic"):
            j.lower = _float(lim, "lower", 0.0, owner)
            j.upper = _float(lim, "upper", 0.0, owner)
            if j.lower > j.upper:
                raise ValueError(f"URDF <limit> of {owner}: lower={j.lower} > upper={j.upper}")
    elif jtype in ("revolute", "prismatic"):
        log.warning("URDF joint '%s' (%s) has no <limit>: treated as unbounded", name, jtype)
    mi = je.find("mimic")
    if mi is not None:
        master = mi.get("joint")
        if not master:
            raise ValueError(f"URDF <mimic> of {owner}: missing 'joint' attribute")
        j.mimic = Mimic(master, _float(mi, "multiplier", 1.0, owner), _float(mi, "offset", 0.0, owner))
    return j


def parse_urdf(source: str | Path) -> Urdf:
    """Parse a URDF from a file path or an XML string.

    Args:
        source: path to a ``.urdf`` file, or the XML text itself (starts with ``<``).
    Returns:
        :class:`Urdf` with links and joints in document order.
    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: malformed XML or URDF; the message names the element and the problem.
    """
    text = str(source)
    if text.lstrip().startswith("<"):
        where = "<string>"
        try:
            root = ET.fromstring(text)
        except ET.ParseError as e:
            raise ValueError(f"URDF {where}: malformed XML: {e}") from None
        except (LookupError, UnicodeError) as e:  # an unknown or wrong encoding="..." declaration
            raise ValueError(f"URDF {where}: unreadable text encoding: {e}") from None
    else:
        path = Path(source)
        where = str(path)
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as e:
            raise ValueError(f"URDF {where}: malformed XML: {e}") from None
        except (LookupError, UnicodeError) as e:  # an unknown or wrong encoding="..." declaration
            raise ValueError(f"URDF {where}: unreadable text encoding: {e}") from None
    if root.tag != "robot":
        raise ValueError(f"URDF {where}: root element is <{root.tag}>, expected <robot>")
    links: dict[str, Link] = {}
    for le in root.findall("link"):
        name = le.get("name")
        if not name:
            raise ValueError(f"URDF {where}: <link> without a 'name' attribute")
        if name in links:
            raise ValueError(f"URDF {where}: duplicate <link name='{name}'>")
        links[name] = Link(name)
    if not links:
        raise ValueError(f"URDF {where}: no <link> element")
    joints: dict[str, Joint] = {}
    parent_of: dict[str, str] = {}
    for je in root.findall("joint"):
        j = _parse_joint(je)
        if j.name in joints:
            raise ValueError(f"URDF {where}: duplicate <joint name='{j.name}'>")
        for tag, ln in (("parent", j.parent), ("child", j.child)):
            if ln not in links:
                close = difflib.get_close_matches(ln, links, n=1, cutoff=0.5)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ValueError(f"URDF <joint name='{j.name}'>: <{tag} link='{ln}'> names no <link>{hint}")
        if j.child in parent_of:
            raise ValueError(
                f"URDF <joint name='{j.name}'>: link '{j.child}' already has parent joint '{parent_of[j.child]}'"
            )
        parent_of[j.child] = j.name
        joints[j.name] = j
    for j in joints.values():
        if j.mimic is not None and j.mimic.joint not in joints:
            raise ValueError(f"URDF <mimic> of joint '{j.name}': joint='{j.mimic.joint}' names no <joint>")
    urdf = Urdf(name=root.get("name", ""), links=links, joints=joints)
    roots = urdf.roots
    if len(roots) != 1:
        what = "no root link (kinematic loop)" if not roots else f"several root links {roots}"
        raise ValueError(f"URDF {where}: <robot> has {what}; expected one tree")
    # every link must be reachable from the root (a loop among non-root links otherwise)
    children: dict[str, list[str]] = {}
    for j in joints.values():
        children.setdefault(j.parent, []).append(j.child)
    seen, stack = set(), [roots[0]]
    while stack:
        ln = stack.pop()
        seen.add(ln)
        stack.extend(children.get(ln, []))
    if len(seen) != len(links):
        bad = sorted(set(links) - seen)[:5]
        raise ValueError(f"URDF {where}: links {bad} form a kinematic loop not connected to root '{roots[0]}'")
    return urdf
