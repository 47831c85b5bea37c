"""Validating YAML configs against pydantic models, with one-line "did you mean" errors.

Every config file of the project (floor.yaml, qa.yaml, export mappings, console key
maps, robot mappings) is described by a pydantic v2 model whose classes set
``model_config = STRICT_KEYS`` (unknown keys are errors). :func:`validate` turns
pydantic's report into one :class:`ConfigError` line per problem that names the file,
the dotted key path and, for a misspelled key, the closest allowed one (difflib)::

    floor.yaml: record.compresion: unknown key (did you mean 'compression'?)
    qa.yaml: rate.warn_below: input should be a valid number, got 'fast'

One rule for every config: every number is finite and within a physical range, and every
topic name is a valid ROS name. The models use the annotated types of this module
(:data:`Finite`, :data:`NonNegative`, :data:`Positive`, :data:`Fraction`, :data:`Count`,
:data:`RateHz`, :data:`RateHzOrZero`, :data:`Seconds`, :data:`PositiveSeconds`,
:data:`RosTopic`) and :func:`validate` rejects a non-finite float (``.nan``, ``.inf``) at any
depth of the data before the model sees it, free-form sections (``parameters``, ``rigs``)
included, so a NaN threshold can never make a comparison silently false::

    qa.yaml: rate.fail_below: must be a finite number (not NaN or infinite), got nan
    console_joy.yaml: topic: not a valid ROS topic name: must not end with '/', got '/vr/'

ROS-free.
"""
from __future__ import annotations

import difflib
import math
import os
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Iterator, Mapping, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

__all__ = ["STRICT_KEYS", "ConfigError", "validate", "load_yaml", "suggest", "non_finite", "check_finite",
           "ros_name_problem",
           "Finite", "NonNegative", "Positive", "Fraction", "Count", "RateHz", "RateHzOrZero", "Seconds",
           "PositiveSeconds", "RosTopic", "MIN_RATE_HZ", "MAX_RATE_HZ", "MAX_SECONDS"]

#: physical ranges. Rates: the fastest stream of a station is 500 Hz-1 kHz joint states, so
#: 10 kHz is an order of magnitude of headroom (and the input-flood threshold's range); the
#: slowest meaningful periodic stream is one sample per 100 s. Durations: at most 10^6 s (11.6
#: days), far beyond any episode or timeout, and a period that rclpy's int64-nanosecond timers
#: and the Ticker grid hold exactly.
MIN_RATE_HZ = 0.01
MAX_RATE_HZ = 10_000.0
MAX_SECONDS = 1e6
#: rmw's limit on a fully qualified topic name (RMW_TOPIC_MAX_NAME_LENGTH = 255 - 8)
MAX_TOPIC_LENGTH = 247


def _rate(v: float) -> float:
    if not MIN_RATE_HZ <= v <= MAX_RATE_HZ:
        raise ValueError(f"must be a rate within {MIN_RATE_HZ:g}..{MAX_RATE_HZ:g} Hz")
    return v


def _rate_or_zero(v: float) -> float:
    return v if v == 0 else _rate(v)


def ros_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid ROS 2 topic name, or None when it is valid.

    The rules of rcl (``rcl_validate_topic_name``, then ``rmw_validate_full_topic_name`` on
    the expanded name; https://design.ros2.org/articles/topic_and_service_names.html):
    not empty, at most 247 characters (rmw: 255 - 8); only alphanumerics, ``_`` and ``/``;
    ``~`` only as ``~`` or ``~/...`` (the node's private namespace); no token (between ``/``)
    starting with a digit; no ``//``; no trailing ``/``. Of the ``{}`` substitutions only
    ``{node}`` is accepted (``{ns}/x`` expands to ``//x`` at the root namespace: write the
    relative name ``x``). Relative names (``vr/buttons``) are valid: they resolve in the
    node's namespace. Every name accepted here is accepted by rclpy.
    """
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__}"
    if not name:
        return "must not be empty"
    if len(name) > MAX_TOPIC_LENGTH:
        return f"must be at most {MAX_TOPIC_LENGTH} characters, got {len(name)}"
    bad = sorted(set(re.sub(r"[A-Za-z0-9_/~{}]", "", name)))
    if bad:
        return f"must contain only letters, digits, '_', '/', '~' and {{substitutions}}, not {''.join(bad)!r}"
    if "~" in name[1:] or (name.startswith("~") and name not in ("~",) and not name.startswith("~/")):
        return "'~' may only start the name, as '~' or '~/...'"
    if name.endswith("/"):
        return "must not end with '/'"
    body = name[1:] if name.startswith("/") else name
    for token in body.split("/"):
        if token == "":
            return "must not contain '//'"
        if token == "~":
            continue
        if not re.fullmatch(r"([A-Za-z0-9_]|\{[A-Za-z_][A-Za-z0-9_]*\})+", token):
            return "substitutions must be balanced {name} (a letter or '_' first)"
        if [x for x in re.findall(r"\{([A-Za-z0-9_]+)\}", token) if x != "node"]:
            return "the only substitution is {node}"
        if token[0].isdigit():
            return f"a name token must not start with a digit: {token!r}"
    return None


def _ros_topic(v: str) -> str:
    problem = ros_name_problem(v)
    if problem:
        raise ValueError(f"not a valid ROS topic name: {problem}")
    return v


#: a float that is neither NaN nor infinite (any sign)
Finite = Annotated[float, Field(allow_inf_nan=False)]
#: finite, >= 0 (costs, tolerances, margins)
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
#: finite, > 0 (factors, lengths, limits)
Positive = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
#: finite, within 0..1 (fractions, ratios of counts)
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
#: an integer count >= 0
Count = Annotated[int, Field(ge=0)]
#: a sample rate, Hz: finite, within MIN_RATE_HZ..MAX_RATE_HZ
RateHz = Annotated[float, Field(allow_inf_nan=False), AfterValidator(_rate)]
#: a rate (Hz) where 0 means "event-driven / off": 0, or within MIN_RATE_HZ..MAX_RATE_HZ
RateHzOrZero = Annotated[float, Field(allow_inf_nan=False), AfterValidator(_rate_or_zero)]
#: a duration, s: finite, within 0..MAX_SECONDS
Seconds = Annotated[float, Field(ge=0.0, le=MAX_SECONDS, allow_inf_nan=False)]
#: a duration, s: finite, > 0 and <= MAX_SECONDS
PositiveSeconds = Annotated[float, Field(gt=0.0, le=MAX_SECONDS, allow_inf_nan=False)]
#: a ROS 2 topic name (rcl's rules, :func:`ros_name_problem`)
RosTopic = Annotated[str, AfterValidator(_ros_topic)]


def non_finite(data: Any, path: tuple = ()) -> Iterator[tuple[tuple, float]]:
    """``(key path, value)`` of every non-finite float (NaN, +-inf) at any depth of parsed
    YAML (mappings, lists, tuples)."""
    if isinstance(data, float) and not math.isfinite(data):
        yield path, data
    elif isinstance(data, Mapping):
        for k, v in data.items():
            yield from non_finite(v, path + (k,))
    elif isinstance(data, (list, tuple)):
        for i, v in enumerate(data):
            yield from non_finite(v, path + (i,))

STRICT_KEYS = ConfigDict(extra="forbid", validate_default=True)
M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config file or mapping is invalid. ``str(exc)`` is one line per problem;
    ``problems`` is the list of those lines."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def suggest(name: str, choices) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices``, else ``""``."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class that owns the key at ``loc`` (loc of an extra key: parent path + key)."""
    cur: Any = model
    for part in loc[:-1]:
        if isinstance(cur, type) and issubclass(cur, BaseModel):
            field = cur.model_fields.get(str(part))
            if field is None:
                return None
            cur = field.annotation
        else:  # dict[str, Model], list[Model], Optional[Model]: step into the value type
            args = [a for a in typing.get_args(cur) if a is not type(None)]
            cur = args[-1] if args else None
        while cur is not None and not (isinstance(cur, type) and issubclass(cur, BaseModel)) \
                and typing.get_origin(cur) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            args = [a for a in typing.get_args(cur) if a is not type(None)]
            cur = args[0] if len(args) == 1 else cur
            if len(args) != 1:
                break
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def _problems(exc: ValidationError, model: type[BaseModel], where: str) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc") or ())
        path = ".".join(str(p) for p in loc) or "(top level)"
        if err.get("type") == "extra_forbidden":
            owner = _model_at(model, loc)
            hint = suggest(loc[-1], owner.model_fields) if owner is not None else ""
            out.append(f"{where}: {path}: unknown key{hint}")
            continue
        msg = str(err.get("msg", "invalid value")).replace("Input should", "input should").replace(
            "Value error, ", "")
        got = err.get("input")
        shown = "" if err.get("type") == "missing" or isinstance(got, (dict, list)) else f", got {got!r}"
        out.append(f"{where}: {path}: {msg}{shown}")
    return out


def check_finite(data: Any, where: str) -> Any:
    """``data`` (parsed YAML) unchanged when every float in it is finite, for configs read without
    a model (the human arm model and BVH conventions, operator calibrations).

    Raises:
        ConfigError: one line per non-finite number, naming ``where`` and the key path.
    """
    bad = [f"{where}: {'.'.join(str(p) for p in path) or '(top level)'}: must be a finite number "
           f"(not NaN or infinite), got {v!r}" for path, v in non_finite(data)]
    if bad:
        raise ConfigError(bad)
    return data


def validate(model: type[M], data: Any, where: str) -> M:
    """Validate ``data`` (a mapping, usually parsed YAML) against ``model``.

    Args:
        where: the file name (or other origin) used as the prefix of every message.

    A non-finite float (``.nan``, ``.inf``, ``-.inf``) anywhere in ``data`` is an error
    whatever the model says (the model-level guard of the module docstring).

    Raises:
        ConfigError: one line per problem, naming ``where``, the key path and the fix.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError([f"{where}: expected a mapping of keys, got {type(data).__name__}"])
    check_finite(data, where)
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_problems(exc, model, where)) from None


def load_yaml(path: str | os.PathLike) -> Any:
    """Parse a YAML file. Raises FileNotFoundError, or ConfigError naming the file and line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{p}: cannot read: {exc}"]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{p}{at}: not valid YAML: {problem}"]) from None
