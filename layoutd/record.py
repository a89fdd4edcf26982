"""Records: classes with typed fields, declared like dataclasses but nearly free to import.

`dataclasses` imports inspect, ast and dis (about 25 ms of every start); a Record reads its
fields from the class annotations without evaluating them (the modules use
`from __future__ import annotations`) and shares one generic `__init__`. Type checkers see a
dataclass (`dataclass_transform`):

    class Slot(Record):                      # frozen, keyword-only, eq and hash by value
        start: int
        tags: tuple[str, ...] = ()
        seen: list[int] = field(default_factory=list)

    class Version(Record, kw_only=False, order=True): ...   # positional too, ordered
    class Config(Record, frozen=False): ...                  # mutable (eq, no hash)

`replace(record, **changes)`, `fields(cls)` and `asdict(record)` do what the dataclasses
functions of the same name do. A `verify()` method, if defined, checks the fields together and
runs however a record is built (its constructor, `replace`, input validation); a
`__post_init__` method, if defined, runs after it. A mutable default (a list, dict or set: any
unhashable value) is refused, as dataclasses refuses it: use `field(default_factory=...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, dataclass_transform, overload

T = TypeVar("T")
R = TypeVar("R", bound="Record")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Field:
    """A field's default, as `field(...)` declares it in a class body."""

    __slots__ = ("default", "default_factory")

    def __init__(self, default: Any = MISSING, default_factory: Callable[[], Any] | None = None) -> None:
        if default is not MISSING and default_factory is not None:
            raise ValueError("a field takes a default or a default_factory, not both")
        self.default = default
        self.default_factory = default_factory


@overload
def field(*, default: T) -> T: ...
@overload
def field(*, default_factory: Callable[[], T]) -> T: ...
def field(*, default: Any = MISSING, default_factory: Callable[[], Any] | None = None) -> Any:
    """A default computed per instance (`default_factory`), or a plain one."""
    return Field(default, default_factory)


class FrozenRecordError(AttributeError):
    """An assignment to a field of a frozen record."""


class _Spec:
    """What `__init__` needs of a class, computed once per class."""

    __slots__ = ("defaults", "factories", "fields", "frozen", "kw_only", "names", "post_init",
                 "verify")

    def __init__(self, fields: dict[str, Field], frozen: bool, kw_only: bool, post_init: bool,
                 verify: bool = False) -> None:
        self.fields = fields
        self.names = tuple(fields)
        self.defaults = {n: f.default for n, f in fields.items() if f.default is not MISSING}
        self.factories = tuple((n, f.default_factory) for n, f in fields.items() if f.default_factory)
        self.frozen = frozen
        self.kw_only = kw_only
        self.post_init = post_init
        self.verify = verify


def _is_classvar(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _own_fields(cls: type) -> dict[str, Field]:
    found: dict[str, Field] = {}
    annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 (inspect costs ~10 ms)
    for name, annotation in annotations.items():
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, MISSING)
        spec = value if isinstance(value, Field) else Field(value)
        if spec.default is not MISSING and spec.default.__class__.__hash__ is None:
            raise ValueError(f"{cls.__name__}.{name}: mutable default "
                             f"{type(spec.default).__name__} is shared by every instance: "
                             "use field(default_factory=...)")
        found[name] = spec
        if isinstance(value, Field):
            if spec.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, spec.default)
    return found


def _frozen_setattr(self: Record, name: str, value: Any) -> None:
    raise FrozenRecordError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _frozen_delattr(self: Record, name: str) -> None:
    raise FrozenRecordError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")


def _value_hash(self: Record) -> int:
    return hash(self._values())


def _ordered(compare: Callable[[tuple[Any, ...], tuple[Any, ...]], bool]) -> Callable[[Any, Any], Any]:
    def method(self: Record, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return compare(self._values(), other._values())

    return method


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(field, Field))
class Record:
    """Base class: fields from the annotations; see the module's docstring."""

    __record__: ClassVar[_Spec] = _Spec({}, frozen=False, kw_only=True, post_init=False)

    def __init_subclass__(
        cls, *, frozen: bool = True, kw_only: bool = True, order: bool = False, eq: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        parent = cls.__record__
        if parent.names and parent.frozen != frozen:
            raise TypeError(f"{cls.__name__}: a frozen and a mutable record cannot inherit from each other")
        fields = {**parent.fields, **_own_fields(cls)}
        cls.__record__ = _Spec(fields, frozen, kw_only, hasattr(cls, "__post_init__"),
                               hasattr(cls, "verify"))
        own = cls.__dict__
        if frozen:
            cls.__setattr__ = _frozen_setattr  # type: ignore[assignment]
            cls.__delattr__ = _frozen_delattr  # type: ignore[assignment]
        if not eq:
            cls.__eq__ = object.__eq__  # type: ignore[method-assign]
            cls.__hash__ = object.__hash__  # type: ignore[assignment]
        elif "__hash__" not in own or (own["__hash__"] is None and "__eq__" in own):
            cls.__hash__ = _value_hash if frozen else None  # type: ignore[assignment]
        if order:
            cls.__lt__ = _ordered(tuple.__lt__)  # type: ignore[operator]
            cls.__le__ = _ordered(tuple.__le__)  # type: ignore[operator]
            cls.__gt__ = _ordered(tuple.__gt__)  # type: ignore[operator]
            cls.__ge__ = _ordered(tuple.__ge__)  # type: ignore[operator]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        spec = self.__record__
        if args:
            kwargs = _positional(self, spec, args, kwargs)
        values = {**spec.defaults, **kwargs}
        for name, factory in spec.factories:
            if name not in kwargs:
                values[name] = factory()
        if values.keys() != spec.fields.keys():
            _refuse(self, spec, values)
        self.__dict__.update(values)
        if spec.verify:
            self.verify()  # type: ignore[attr-defined]
        if spec.post_init:
            self.__post_init__()  # type: ignore[attr-defined]

    def _values(self) -> tuple[Any, ...]:
        attrs = self.__dict__
        return tuple([attrs[name] for name in self.__record__.names])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        mine, theirs = self.__dict__, other.__dict__
        count = len(self.__record__.names)
        if len(mine) == count and len(theirs) == count:  # nothing but the fields: compare in C
            return mine == theirs
        return self._values() == other._values()

    __hash__ = _value_hash

    def __repr__(self) -> str:
        attrs = self.__dict__
        inside = ", ".join(f"{name}={attrs[name]!r}" for name in self.__record__.names)
        return f"{type(self).__qualname__}({inside})"


def _positional(record: Record, spec: _Spec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    name = type(record).__name__
    if spec.kw_only:
        raise TypeError(f"{name}() takes keyword arguments only")
    if len(args) > len(spec.names):
        raise TypeError(f"{name}() takes at most {len(spec.names)} positional arguments")
    given = dict(zip(spec.names, args, strict=False))
    twice = given.keys() & kwargs.keys()
    if twice:
        raise TypeError(f"{name}() got multiple values for {', '.join(sorted(twice))}")
    return {**given, **kwargs}


def _refuse(record: Record, spec: _Spec, values: dict[str, Any]) -> None:
    name = type(record).__name__
    unknown = [key for key in values if key not in spec.fields]
    if unknown:
        raise TypeError(f"{name}() got unexpected keyword arguments: {', '.join(unknown)}")
    missing = [key for key in spec.names if key not in values]
    raise TypeError(f"{name}() missing required arguments: {', '.join(missing)}")


def replace(record: R, /, **changes: Any) -> R:
    """A copy of `record` with some fields changed (through `__init__`, as dataclasses.replace)."""
    attrs = record.__dict__
    values = {name: attrs[name] for name in record.__record__.names}
    values.update(changes)
    return type(record)(**values)


def fields(record: Record | type[Record]) -> tuple[str, ...]:
    """The names of the fields, in declaration order (base classes' first)."""
    return record.__record__.names


def asdict(record: Record) -> dict[str, Any]:
    """The fields as a dict, records inside records, lists, tuples and dicts converted too."""
    return {name: _plain(getattr(record, name)) for name in record.__record__.names}


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return asdict(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value
