"""Reading JSON manifests (training triplets, RVE-Synth splits) that a user hands us.

A manifest is untrusted: it may be empty, truncated, not UTF-8, not JSON, the wrong shape, or hold
values of the wrong type. Whatever is wrong becomes one :class:`~revise.errors.ReviseInputError`
naming the file (and the item), never a ``KeyError`` or ``TypeError`` from deep inside the code
that uses it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar

from .errors import ReviseInputError

T = TypeVar("T")


def read_json_list(path: str | Path, what: str) -> list[Any]:
    """The non-empty JSON list in ``path``; ``what`` names the file in messages ("training data")."""
    path = Path(path)
    if not path.is_file():
        raise ReviseInputError(f"{what} {path} does not exist")
    try:
        value = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as err:
        raise ReviseInputError(f"{what} {path} is not UTF-8 text: {err.reason} at byte {err.start}") from None
    except json.JSONDecodeError as err:
        raise ReviseInputError(f"{what} {path} is not valid JSON: {err}") from None
    except (ValueError, RecursionError) as err:   # NaN/Infinity constants, absurd nesting
        raise ReviseInputError(f"{what} {path} is not valid JSON: {err}") from None
    if not isinstance(value, list) or not value:
        raise ReviseInputError(f"{what} {path} must be a non-empty JSON list")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def build(factory: Callable[[dict], T], item: Any, where: str) -> T:
    """``factory(item)`` (e.g. a dataclass's ``from_dict``), then every field checked against its
    annotation; anything missing, extra-shaped or mistyped is a ``ReviseInputError`` at ``where``."""
    if not isinstance(item, dict):
        raise ReviseInputError(f"{where}: expected a JSON object, got {_kind(item)}")
    try:
        obj = factory(item)
    except KeyError as err:
        raise ReviseInputError(f"{where}: missing field {err}") from None
    except (TypeError, ValueError, AttributeError) as err:
        raise ReviseInputError(f"{where}: {_one_line(err)}") from None
    check_types(obj, where)
    return obj


def check_types(obj: Any, where: str) -> None:
    """Check a dataclass instance's fields (recursively) against their annotations: ``str``, ``int``,
    ``float`` (finite; ints accepted), ``bool``, ``Literal[...]``, ``list[X]``, ``X | None`` and
    nested dataclasses."""
    hints = typing.get_type_hints(type(obj))
    for field in dataclasses.fields(obj):
        _check(getattr(obj, field.name), hints[field.name], f"{where}, field '{field.name}'")


def _check(value: Any, hint: Any, where: str) -> None:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        if not any(value == a and type(value) is type(a) for a in args):
            raise ReviseInputError(f"{where}: must be one of {', '.join(map(repr, args))}, not {_short(value)}")
    elif origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            try:
                return _check(value, option, where)
            except ReviseInputError as err:
                errors.append(err)
        raise errors[-1]
    elif origin is list:
        if not isinstance(value, list):
            raise ReviseInputError(f"{where}: expected a list, got {_kind(value)}")
        for i, v in enumerate(value):
            _check(v, args[0] if args else Any, f"{where}[{i}]")
    elif hint is type(None):
        if value is not None:
            raise ReviseInputError(f"{where}: expected null, got {_kind(value)}")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ReviseInputError(f"{where}: expected a finite number, got {_short(value)}")
    elif hint in (int, str, bool):
        if type(value) is not hint:
            raise ReviseInputError(f"{where}: expected {hint.__name__}, got {_short(value)}")
    elif dataclasses.is_dataclass(hint):
        if not isinstance(value, hint):
            raise ReviseInputError(f"{where}: expected an object, got {_kind(value)}")
        check_types(value, where)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
