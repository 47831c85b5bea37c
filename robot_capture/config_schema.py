"""Validating YAML configs against pydantic models, with one-line "did you mean" errors.

Every config file of the project (floor.yaml, qa.yaml, export mappings, console key
maps, robot mappings) is described by a pydantic v2 model whose classes set
``model_config = STRICT_KEYS`` (unknown keys are errors). :func:`validate` turns
pydantic's report into one :class:`ConfigError` line per problem that names the file,
the dotted key path and, for a misspelled key, the closest allowed one (difflib)::

    floor.yaml: record.compresion: unknown key (did you mean 'compression'?)
    qa.yaml: rate.warn_below: input should be a valid number, got 'fast'

ROS-free.
"""
from __future__ import annotations

import difflib
import os
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["STRICT_KEYS", "ConfigError", "validate", "load_yaml", "suggest"]

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


def validate(model: type[M], data: Any, where: str) -> M:
    """Validate ``data`` (a mapping, usually parsed YAML) against ``model``.

    Args:
        where: the file name (or other origin) used as the prefix of every message.

    Raises:
        ConfigError: one line per problem, naming ``where``, the key path and the fix.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError([f"{where}: expected a mapping of keys, got {type(data).__name__}"])
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
