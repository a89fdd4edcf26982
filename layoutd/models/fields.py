"""What a model field says besides its type, as `Annotated` markers: `Annotated[int, Ge(1), Le(1024)]`.

layoutd/models/validate.py enforces them on input and applies `Dump` on output;
layoutd/models/reference.py turns them into pydantic's (the oracle and the schema generator).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any


class FieldError(ValueError):
    """A check across fields, naming the one at fault (`path` below the model that raises it),
    so the message gives its dotted name and YAML line."""

    def __init__(self, path: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.path = path


class Marker:
    """Base of the markers; `check` returns the message when a valid-typed value breaks it."""

    def check(self, value: Any) -> str | None:
        return None


class Ge(Marker):
    def __init__(self, bound: int) -> None:
        self.bound = bound

    def check(self, value: Any) -> str | None:
        return None if value >= self.bound else f"Input should be greater than or equal to {self.bound}"


class Le(Marker):
    def __init__(self, bound: int) -> None:
        self.bound = bound

    def check(self, value: Any) -> str | None:
        return None if value <= self.bound else f"Input should be less than or equal to {self.bound}"


class MinLength(Marker):
    def __init__(self, length: int) -> None:
        self.length = length

    def check(self, value: Any) -> str | None:
        if len(value) >= self.length:
            return None
        return f"String should have at least {self.length} character{'s' if self.length > 1 else ''}"


class Pattern(Marker):
    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        # pydantic's (Rust) `$` is the end of the text; Python's also matches before a final newline
        end = pattern.endswith("$") and not pattern.endswith("\\$")
        self.text = pattern[:-1] + "\\Z" if end else pattern  # compiled at first use

    def check(self, value: Any) -> str | None:
        if re.search(self.text, value):
            return None
        return f"String should match pattern '{self.pattern}'"


class Doc(Marker):
    """The field's description in the published JSON schema."""

    def __init__(self, text: str) -> None:
        self.text = text


class Before(Marker):
    """A converter run on the raw input before the type is checked; it raises ValueError."""

    def __init__(self, convert: Callable[[Any], Any]) -> None:
        self.convert = convert


class Dump(Marker):
    """How JSON output writes the value (an address as hex text, a size with its unit)."""

    def __init__(self, convert: Callable[[Any], Any]) -> None:
        self.convert = convert


class Schema(Marker):
    """The JSON schema of the value, replacing the one its type would give."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
