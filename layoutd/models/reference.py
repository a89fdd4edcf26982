"""The pydantic view of each record: the JSON schema generator and the tests' validation oracle.

Built from the same annotations as the records (one definition per model): each marker of
layoutd/models/fields.py becomes pydantic's own (`Ge` -> `Field(ge=)`, `Before` ->
`BeforeValidator`, `Dump` -> `PlainSerializer`, `Schema` -> `WithJsonSchema`), int, bool and
str are strict, and a record's `verify()` runs as an after-validator. Imported only by
layoutd/models/schemas.py and the tests: no command loads pydantic.
"""

from __future__ import annotations

import os
import types
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")  # no scan of every package's metadata

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    WithJsonSchema,
    create_model,
    model_validator,
)

from layoutd.models.fields import Before, Doc, Dump, Ge, Le, MinLength, Pattern, Schema
from layoutd.models.validate import hints
from layoutd.record import MISSING, Record

R = TypeVar("R", bound=Record)

_MODELS: dict[type[Record], type[BaseModel]] = {}
_RECORDS: dict[type[BaseModel], type[Record]] = {}


def model(cls: type[Record]) -> type[BaseModel]:
    """The pydantic model of a record class (same name, fields, constraints and checks)."""
    found = _MODELS.get(cls)
    if found is None:
        found = _build(cls)
        _MODELS[cls] = found
        _RECORDS[found] = cls
    return found


def validate(cls: type[R], data: Any) -> R:
    """`data` validated by pydantic, as a record (raises pydantic's ValidationError)."""
    result: R = to_record(model(cls).model_validate(data))
    return result


def to_record(value: Any) -> Any:
    """A pydantic instance (and what it holds) as the records it stands for."""
    if isinstance(value, BaseModel):
        cls = _RECORDS[type(value)]
        return cls(**{name: to_record(getattr(value, name)) for name in cls.__record__.names})
    if isinstance(value, tuple):
        return tuple(to_record(item) for item in value)
    return value


def _build(cls: type[Record]) -> type[BaseModel]:
    annotations = hints(cls)
    fields: dict[str, Any] = {}
    for name, spec in cls.__record__.fields.items():
        kind = _translate(annotations[name])
        if spec.default_factory is not None:
            fields[name] = (kind, Field(default_factory=spec.default_factory))
        elif spec.default is not MISSING:
            fields[name] = (kind, spec.default)
        else:
            fields[name] = (kind, ...)
    validators: dict[str, Any] = {}
    if hasattr(cls, "verify"):
        validators["_verify"] = model_validator(mode="after")(_verifier)
    built: type[BaseModel] = create_model(
        cls.__name__,
        __config__=ConfigDict(frozen=True, extra="forbid"),
        __doc__=cls.__doc__,
        __module__=cls.__module__,
        __validators__=validators,
        **fields,
    )
    return built


def _verifier(self: BaseModel) -> BaseModel:
    to_record(self).verify()
    return self


def _translate(kind: Any) -> Any:
    origin = get_origin(kind)
    if origin is Annotated:
        marks = [_marker(mark) for mark in kind.__metadata__]
        return Annotated[(_translate(kind.__origin__), *marks)]
    if origin is Union or origin is types.UnionType:
        return Union[tuple(_translate(arg) for arg in get_args(kind))]  # noqa: UP007
    if origin is tuple:
        args = get_args(kind)
        return tuple[(_translate(args[0]), ...)] if args[1:] == (Ellipsis,) else kind  # type: ignore[misc]
    if origin is Literal or origin is dict or kind is Any or kind is type(None):
        return kind
    if isinstance(kind, type) and issubclass(kind, Record):
        return model(kind)
    if kind in (int, bool, str):
        return Annotated[kind, Strict()]
    raise TypeError(f"no pydantic view of the type {kind!r}")


def _marker(mark: Any) -> Any:
    if isinstance(mark, Ge):
        return Field(ge=mark.bound)
    if isinstance(mark, Le):
        return Field(le=mark.bound)
    if isinstance(mark, MinLength):
        return Field(min_length=mark.length)
    if isinstance(mark, Pattern):
        return Field(pattern=mark.pattern)
    if isinstance(mark, Doc):
        return Field(description=mark.text)
    if isinstance(mark, Before):
        return BeforeValidator(mark.convert)
    if isinstance(mark, Dump):
        return PlainSerializer(mark.convert, return_type=str, when_used="json")
    if isinstance(mark, Schema):
        return WithJsonSchema(mark.schema)
    raise TypeError(f"no pydantic view of the marker {mark!r}")
