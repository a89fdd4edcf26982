"""layoutd.record: the dataclass stand-in every model and value class is built on."""

from __future__ import annotations

import subprocess
import sys
from typing import ClassVar

import pytest

from layoutd.record import FrozenRecordError, Record, asdict, field, fields, replace


class Point(Record):
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()
    LIMIT: ClassVar[int] = 10


class Labelled(Point):
    label: str
    seen: list[int] = field(default_factory=list)


class Version(Record, kw_only=False, order=True):
    major: int
    minor: int
    micro: int = 0


class Config(Record, frozen=False):
    slots: int = 0
    devices: list[str] = field(default_factory=list)


class Checked(Record):
    low: int
    high: int

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError("not ordered")


class Identity(Record, eq=False):
    value: int


def test_fields_defaults_and_inheritance() -> None:
    point = Labelled(x=1, label="a")
    assert fields(Labelled) == ("x", "y", "tags", "label", "seen")
    assert fields(point) == fields(Labelled)
    assert (point.x, point.y, point.tags, point.label, point.seen) == (1, 0, (), "a", [])
    assert Labelled(x=1, label="a").seen is not point.seen  # a fresh list per instance
    assert Point.LIMIT == 10 and "LIMIT" not in fields(Point)
    assert Point.y == 0  # a plain default stays a class attribute, as in dataclasses


def test_keyword_only_by_default_and_argument_errors() -> None:
    with pytest.raises(TypeError, match="keyword arguments only"):
        Point(1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="missing required arguments: x"):
        Point(y=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword arguments: z"):
        Point(x=1, z=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values for major"):
        Version(1, 2, major=3)  # type: ignore[misc]
    with pytest.raises(TypeError, match="at most 3"):
        Version(1, 2, 3, 4)  # type: ignore[call-arg]


def test_frozen_equality_hash_and_repr() -> None:
    a, b = Point(x=1, tags=("t",)), Point(x=1, tags=("t",))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Point(x=2) and a != Labelled(x=1, tags=("t",), label="")
    assert repr(a) == "Point(x=1, y=0, tags=('t',))"
    with pytest.raises(FrozenRecordError):
        a.x = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del a.x


def test_mutable_records_compare_by_value_and_are_unhashable() -> None:
    config = Config()
    config.slots = 4
    config.devices.append("d")
    assert config == Config(slots=4, devices=["d"])
    with pytest.raises(TypeError):
        hash(config)


def test_positional_order_and_replace() -> None:
    assert Version(7, 2) < Version(7, 2, 1) < Version(10, 0)
    assert sorted([Version(10, 0), Version(7, 2)]) == [Version(7, 2), Version(10, 0)]
    assert max(Version(8, 2, 2), Version(8, 2)) == Version(8, 2, 2)
    assert replace(Version(7, 2), micro=5) == Version(7, 2, 5)
    with pytest.raises(TypeError):
        assert Version(7, 2) < (7, 2, 1)  # type: ignore[operator]


def test_post_init_runs_on_construction_and_replace() -> None:
    checked = Checked(low=1, high=2)
    with pytest.raises(ValueError, match="not ordered"):
        Checked(low=3, high=2)
    with pytest.raises(ValueError, match="not ordered"):
        replace(checked, low=5)


def test_eq_false_keeps_identity() -> None:
    one = Identity(value=1)
    assert one != Identity(value=1) and one == one
    assert len({one, Identity(value=1)}) == 2


def test_extra_attributes_do_not_break_equality() -> None:
    a, b = Config(slots=1), Config(slots=1)
    a.cache = "x"  # type: ignore[attr-defined]
    assert a == b


def test_asdict_converts_nested_records() -> None:
    point = Labelled(x=1, tags=("a",), label="l", seen=[2])
    assert asdict(point) == {"x": 1, "y": 0, "tags": ("a",), "label": "l", "seen": [2]}
    assert asdict(Config(devices=["d"])) == {"slots": 0, "devices": ["d"]}

    class Outer(Record):
        inner: tuple[Point, ...]
        by_name: dict[str, Point]

    outer = Outer(inner=(Point(x=1),), by_name={"p": Point(x=2)})
    assert asdict(outer) == {"inner": ({"x": 1, "y": 0, "tags": ()},),
                             "by_name": {"p": {"x": 2, "y": 0, "tags": ()}}}


def test_frozen_and_mutable_records_do_not_mix() -> None:
    with pytest.raises(TypeError, match="frozen and a mutable"):

        class Thawed(Point, frozen=False):  # type: ignore[misc]
            pass


def test_a_field_takes_one_kind_of_default() -> None:
    with pytest.raises(ValueError):
        field(default=1, default_factory=list)  # type: ignore[call-overload]


def test_a_mutable_default_is_refused_as_dataclasses_refuses_it() -> None:
    for default in ([], {}, set()):
        with pytest.raises(ValueError, match="default_factory"):
            type("Shared", (Record,), {"__annotations__": {"items": "object"}, "items": default})
    type("Fine", (Record,), {"__annotations__": {"items": "tuple[int, ...]"}, "items": ()})


class Ordered(Record):
    low: int
    high: int

    def verify(self) -> None:
        if self.low > self.high:
            raise ValueError(f"{self.low} > {self.high}")


def test_verify_runs_however_a_record_is_built() -> None:
    from layoutd.models.common import Range
    from layoutd.models.validate import Invalid, validate

    assert Ordered(low=1, high=2).high == 2
    with pytest.raises(ValueError, match="2 > 1"):
        Ordered(low=2, high=1)
    with pytest.raises(ValueError, match="3 > 2"):
        replace(Ordered(low=1, high=2), low=3)
    with pytest.raises(ValueError, match="not ordered"):
        Range(start=9, end=1)
    with pytest.raises(Invalid, match="not ordered"):
        validate(Range, {"start": "0x9", "end": "0x1"})


def test_importing_it_loads_nothing_heavier_than_typing() -> None:
    code = ("import sys, re, typing; before = set(sys.modules); import layoutd.record; "
            "print(sorted(set(sys.modules) - before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["['layoutd',", "'layoutd.record']"]
