"""Dataclasses to JSON and back, checked against their type hints.

A record read back is rebuilt into the same objects it was written from, or refused with one
sentence naming the field that does not fit: readers then use attributes, never string keys, and a
file of another shape cannot pass silently. Only what records hold is supported: dataclasses,
lists, tuples, dicts with string keys, `X | None`, `Literal`, `Any`, and JSON's scalars.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")
# field metadata: left out of the JSON when None, as in the dict the dataclass replaced (read back as None)
OMIT_NONE = {"omit_none": True}


class ShapeError(ValueError):
    """A JSON value that does not fit the field it is read into; `path` names the field."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path or 'the document'}: {problem}")
        self.path = path


def to_json(value: Any) -> Any:
    """Plain JSON data (dicts, lists, scalars); NaN and infinities are refused, never written. Scalars
    are tried first: a record is mostly numbers (a load run's series), and a checkpoint walks it each second."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a JSON number")
        return value
    if value is None or isinstance(value, (str, int)):  # bool is an int
        return value
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        omit = _omit_none(type(value))
        return {
            f.name: to_json(item)
            for f in dataclasses.fields(value)
            if (item := getattr(value, f.name)) is not None or f.name not in omit
        }
    raise TypeError(f"{type(value).__name__} is not JSON data: {value!r}")


@cache
def _omit_none(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls) if f.metadata.get("omit_none"))


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_json(cls: type[T], data: Any, path: str = "") -> T:
    """`data` rebuilt as `cls`; ShapeError when a field is missing, unknown or of another type."""
    rebuilt: T = _read(cls, data, path)
    return rebuilt


def _read_typeddict(hint: Any, data: Any, path: str) -> dict[str, Any]:
    """A TypedDict (a probe line in the evidence): its required keys present, each key it declares of
    its type; keys it does not declare are kept as they are (a newer recorder's fields)."""
    _expect(data, dict, path)
    missing = [key for key in hint.__required_keys__ if key not in data]
    if missing:
        raise ShapeError(path, f"lacks {', '.join(sorted(missing))}")
    hints = typing.get_type_hints(hint)
    return {key: _read(hints[key], value, f"{path}.{key}") if key in hints else value for key, value in data.items()}


def _read(hint: Any, data: Any, path: str) -> Any:
    origin = get_origin(hint)
    if hint is Any:
        return data
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if data is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _read(option, data, path)
            except ShapeError as error:
                errors.append(error)
        raise errors[0] if len(errors) == 1 else ShapeError(path, f"{_describe(data)} fits none of {hint}")
    if origin is Literal:
        if data not in get_args(hint):
            raise ShapeError(path, f"{data!r} is not one of {', '.join(map(repr, get_args(hint)))}")
        return data
    if dataclasses.is_dataclass(hint):
        return _read_dataclass(hint, data, path)  # type: ignore[arg-type]
    if typing.is_typeddict(hint):
        return _read_typeddict(hint, data, path)
    if origin is list or hint is list:
        (item,) = get_args(hint) or (Any,)
        _expect(data, list, path)
        return [_read(item, value, f"{path}[{i}]") for i, value in enumerate(data)]
    if origin is tuple:
        args = get_args(hint)
        _expect(data, list, path)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_read(args[0], value, f"{path}[{i}]") for i, value in enumerate(data))
        if len(data) != len(args):
            raise ShapeError(path, f"has {len(data)} items, not {len(args)}")
        return tuple(_read(a, value, f"{path}[{i}]") for i, (a, value) in enumerate(zip(args, data, strict=True)))
    if origin is dict or hint is dict:
        key, item = get_args(hint) or (str, Any)
        _expect(data, dict, path)
        return {_key(key, k, path): _read(item, value, f"{path}.{k}") for k, value in data.items()}
    if hint is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise ShapeError(path, f"{_describe(data)} is not a number")
        return float(data)
    if hint is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise ShapeError(path, f"{_describe(data)} is not an integer")
        return data
    if hint in (str, bool):
        _expect(data, hint, path)
        return data
    if hint is type(None):
        if data is not None:
            raise ShapeError(path, f"{_describe(data)} is not null")
        return None
    raise TypeError(f"{path}: cannot read a {hint!r}")


def _key(hint: Any, key: str, path: str) -> Any:
    """JSON keys are strings: an int-keyed dict (pids) gets its ints back."""
    if hint is int:
        try:
            return int(key)
        except ValueError:
            raise ShapeError(path, f"key {key!r} is not an integer") from None
    return key


Field = tuple[str, Any, Callable[[Any], bool] | None, bool]


@cache
def _fields(cls: type) -> tuple[frozenset[str], tuple[Field, ...]]:
    """The names a class takes, and each field's (name, hint, quick check, required), worked out once."""
    hints = _hints(cls)
    fields = tuple(
        (
            f.name,
            hints[f.name],
            _quick(hints[f.name]),
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
        if f.init
    )
    return frozenset(name for name, *_ in fields), fields


def _quick(hint: Any) -> Callable[[Any], bool] | None:
    """A plain type test that accepts only what `_read` would return unchanged (None: no such test),
    so a record of a million lines is checked at the cost of a few `type() is` comparisons."""
    if hint is Any:
        return lambda value: True
    if hint in (str, int, float, bool):
        return lambda value: type(value) is hint
    if hint is list or (get_origin(hint) is list and get_args(hint) in ((), (Any,))):
        return lambda value: type(value) is list
    if get_origin(hint) is Literal:
        allowed = frozenset(get_args(hint))
        return lambda value: type(value) is str and value in allowed
    if get_origin(hint) in (Union, types.UnionType):
        options = [o for o in get_args(hint) if o is not type(None)]
        inner = _quick(options[0]) if len(options) == 1 else None
        if inner is not None and type(None) in get_args(hint):
            return lambda value: value is None or inner(value)
    return None


def _read_dataclass(cls: type, data: Any, path: str) -> Any:
    _expect(data, dict, path)
    names, fields = _fields(cls)
    if not data.keys() <= names:
        raise ShapeError(path, f"unknown field {sorted(data.keys() - names)[0]!r}")
    values = {}
    for name, hint, quick, required in fields:
        if name in data:
            value = data[name]
            values[name] = value if quick is not None and quick(value) else _read(hint, value, _at(path, name))
        elif required:
            raise ShapeError(_at(path, name), "is missing")
    return cls(**values)


def _at(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _expect(data: Any, kind: type, path: str) -> None:
    if not isinstance(data, kind) or (kind is int and isinstance(data, bool)):
        raise ShapeError(path, f"{_describe(data)} is not {'an' if kind.__name__[0] in 'aeiou' else 'a'} {_name(kind)}")


def _name(kind: type) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean"}.get(kind, kind.__name__)


def _describe(data: Any) -> str:
    text = repr(data)
    return text if len(text) <= 40 else text[:37] + "..."
