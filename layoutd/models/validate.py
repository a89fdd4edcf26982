"""Parsed YAML/JSON in, records out; records out as JSON-ready dicts. No pydantic.

The field types are read once per class (`typing.get_type_hints`) and turned into small check
functions: int, bool and str strictly (a bool is no int, "5" no int), Literal, `X | None`,
`tuple[X, ...]` (from a list), nested records (from a mapping), `dict[str, Any]`, and the markers
of layoutd/models/fields.py. Unknown keys are refused. After its fields, a record's `verify()`
(the checks across fields) runs. The first problem raises `Invalid`, with its path, as pydantic
(layoutd/models/reference.py, the oracle of the tests) reports its first error.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from layoutd.models.fields import Before, Dump, FieldError, Marker
from layoutd.record import MISSING, Record

R = TypeVar("R", bound=Record)
Path = tuple[str | int, ...]
Check = Callable[[Any, Path], Any]


class Invalid(ValueError):
    """The first problem of an input: where (`path`), what (`message`) and which `kind`
    (missing, extra, value)."""

    def __init__(self, path: Path, message: str, kind: str = "value",
                 known: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.kind = kind
        self.known = known  # an extra key: the keys that exist there; a missing one: those given

    def __str__(self) -> str:
        where = ".".join(str(part) for part in self.path)
        return f"{where}: {self.message}" if where else self.message


def validate(cls: type[R], data: Any) -> R:
    """`data` (parsed YAML or JSON) as a `cls`, or Invalid."""
    result: R = _record_check(cls)(data, ())
    return result


def hints(cls: type[Record]) -> dict[str, Any]:
    """The evaluated annotations of a record's fields (with their Annotated markers), cached.
    As typing.get_type_hints, at a third of its cost: each text is evaluated once per module."""
    found = _HINTS.get(cls)
    if found is None:
        found = {}
        for base in reversed(cls.__mro__):
            for name, text in base.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
                if name in cls.__record__.fields:
                    found[name] = _evaluate(text, base.__module__)
        _HINTS[cls] = found
    return found


_HINTS: dict[type, dict[str, Any]] = {}
_EVALUATED: dict[tuple[str, str], Any] = {}


def _evaluate(text: Any, module: str) -> Any:
    if not isinstance(text, str):
        return text
    found = _EVALUATED.get((module, text))
    if found is None:
        found = _EVALUATED[(module, text)] = eval(text, vars(sys.modules[module]))
    return found


# ---- input ------------------------------------------------------------------------------------

_CHECKS: dict[type, Check] = {}


def _record_check(cls: type[Record]) -> Check:
    check = _CHECKS.get(cls)
    if check is None:
        check = _CHECKS[cls] = _make_record_check(cls)
    return check


def _make_record_check(cls: type[Record]) -> Check:
    spec = cls.__record__
    table: list[tuple[str, Check | None, bool]] = []  # checks are filled in on first use (recursion)
    required = {n for n, f in spec.fields.items() if f.default is MISSING and f.default_factory is None}
    annotations = hints(cls)
    names = spec.fields.keys()

    def check(data: Any, path: Path) -> Any:
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise Invalid(path, f"Input should be a valid dictionary or instance of {cls.__name__}")
        if not table:
            table.extend((name, _check(annotations[name]), name in required) for name in spec.names)
        values = {}
        for name, field_check, needed in table:
            if name in data:
                values[name] = field_check(data[name], (*path, name))  # type: ignore[misc]
            elif needed:
                raise Invalid((*path, name), "Field required", "missing", tuple(data))
        for key in data:
            if key not in names:
                raise Invalid((*path, key), "Extra inputs are not permitted", "extra", tuple(names))
        try:
            return cls(**values)  # a record's verify() runs as it is built
        except FieldError as error:
            raise Invalid((*path, *error.path), str(error)) from error
        except ValueError as error:
            raise Invalid(path, str(error)) from error

    return check


def _check(kind: Any) -> Check:
    origin = get_origin(kind)
    if origin is Annotated:
        return _annotated(kind.__origin__, kind.__metadata__)
    if origin is Union or origin is types.UnionType:
        return _optional(kind)
    if origin is Literal:
        return _literal(get_args(kind))
    if origin is tuple:
        return _tuple(kind)
    if origin is dict:
        return _mapping
    if kind is Any:
        return lambda value, path: value
    if isinstance(kind, type) and issubclass(kind, Record):
        return lambda value, path: _record_check(kind)(value, path)
    if kind in _SCALARS:
        return _scalar(kind)
    raise TypeError(f"no input check for the type {kind!r}")


_SCALARS: dict[Any, str] = {int: "a valid integer", bool: "a valid boolean", str: "a valid string"}


def _scalar(kind: type) -> Check:
    message = f"Input should be {_SCALARS[kind]}"

    def check(value: Any, path: Path) -> Any:
        if type(value) is not kind and not (isinstance(value, kind) and not isinstance(value, bool)):
            raise Invalid(path, message)
        return value

    return check


def _annotated(base: Any, markers: tuple[Any, ...]) -> Check:
    inner = _check(base)
    befores = [m.convert for m in markers if isinstance(m, Before)]
    limits = [m for m in markers if isinstance(m, Marker) and not isinstance(m, Before | Dump)]

    def check(value: Any, path: Path) -> Any:
        for convert in befores:
            try:
                value = convert(value)
            except ValueError as error:
                raise Invalid(path, str(error)) from error
        value = inner(value, path)
        for limit in limits:
            message = limit.check(value)
            if message:
                raise Invalid(path, message)
        return value

    return check


def _optional(kind: Any) -> Check:
    others = [arg for arg in get_args(kind) if arg is not type(None)]
    if len(others) != 1 or len(get_args(kind)) != 2:
        raise TypeError(f"only X | None unions are checked, not {kind!r}")
    inner = _check(others[0])
    return lambda value, path: None if value is None else inner(value, path)


def _literal(allowed: tuple[Any, ...]) -> Check:
    shown = [repr(a) for a in allowed]
    listed = shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"

    def check(value: Any, path: Path) -> Any:
        if isinstance(value, int | float | str):
            for option in allowed:
                if value == option:
                    return option
        raise Invalid(path, f"Input should be {listed}")

    return check


def _tuple(kind: Any) -> Check:
    args = get_args(kind)
    if len(args) != 2 or args[1] is not Ellipsis:
        raise TypeError(f"only tuple[X, ...] is checked, not {kind!r}")
    item = _check(args[0])

    def check(value: Any, path: Path) -> Any:
        if not isinstance(value, list | tuple):
            raise Invalid(path, "Input should be a valid tuple")
        return tuple([item(entry, (*path, index)) for index, entry in enumerate(value)])

    return check


def _mapping(value: Any, path: Path) -> Any:
    if not isinstance(value, dict):
        raise Invalid(path, "Input should be a valid dictionary")
    return dict(value)


# ---- output -----------------------------------------------------------------------------------

Write = Callable[[Any], Any]
_WRITERS: dict[type, list[tuple[str, Write]]] = {}


def to_json(record: Record) -> dict[str, Any]:
    """The record as JSON-ready data: `Dump` markers applied (hex addresses, sizes with units),
    tuples as lists, records inside as dicts."""
    table = _WRITERS.get(type(record))
    if table is None:
        annotations = hints(type(record))
        table = [(name, _writer(annotations[name])) for name in record.__record__.names]
        _WRITERS[type(record)] = table
    attrs = record.__dict__
    return {name: write(attrs[name]) for name, write in table}


def _writer(kind: Any) -> Write:
    origin = get_origin(kind)
    if origin is Annotated:
        dumps = [m.convert for m in kind.__metadata__ if isinstance(m, Dump)]
        return dumps[0] if dumps else _writer(kind.__origin__)
    if origin is Union or origin is types.UnionType:
        inner = [_writer(arg) for arg in get_args(kind) if arg is not type(None)]
        if len(inner) == 1 and inner[0] is not _plain:
            write = inner[0]
            return lambda value: None if value is None else write(value)
        return _plain
    if origin is tuple and len(get_args(kind)) == 2:
        item = _writer(get_args(kind)[0])
        if item is not _plain:
            return lambda value: [item(entry) for entry in value]
    return _plain


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return to_json(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value
