"""Reading a VM spec file: YAML (PyYAML, its C loader where present) to the checked VmSpec.

Every problem is an InputError naming the file, the field (memory.hotplug.max) and the line:
the YAML node tree maps a field's path back to its line.
"""

from __future__ import annotations

import re
from difflib import get_close_matches
from typing import Any

import yaml

from layoutd.errors import InputError
from layoutd.models.spec import VmSpec
from layoutd.models.validate import Invalid, validate

_BASE: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Loader(_BASE):  # type: ignore[misc]
    """SafeLoader with YAML 1.2 numbers (0000:41:00.0 stays a string: no base-60) that refuses a
    repeated key instead of keeping the last."""

    yaml_implicit_resolvers = {
        key: [(tag, regexp) for tag, regexp in resolvers
              if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
        for key, resolvers in _BASE.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key.value!r} (first on line {seen[key.value]})",
                        key.start_mark)
                seen[key.value] = key.start_mark.line + 1
        return super().construct_mapping(node, deep)


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0x[0-9a-fA-F]+)$"), list("-+0123456789"))
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."))


def load_spec(path: str) -> VmSpec:
    """Read and check a vm.yaml; every problem is an InputError naming the file and field/line."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise InputError("no such file", file=path) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read: {error}", file=path) from error
    return parse_spec(text, file=path)


def parse_spec(text: str, *, file: str = "<spec>") -> VmSpec:
    """The spec in `text`; its YAML nodes give the line of each problem."""
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(error, "problem", None) or str(error)
        raise InputError(f"invalid YAML: {problem}", file=file, field=where) from error
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise InputError("a VM spec is a mapping with at least name and memory.size", file=file)
    _units_given(data, node, file)
    try:
        return validate(VmSpec, data)
    except Invalid as error:
        location = error.path
        field = _dotted(location)
        line = _line_of(node, location)
        message = _message(error)
        where = f"{field} (line {line})" if field and line else field or (f"line {line}" if line else None)
        raise InputError(message, file=file, field=where) from error


SIZE_FIELDS = (("memory", "size"), ("memory", "hotplug", "max"), ("memory", "hugepages"),
               ("memory", "block"))
_BARE = re.compile(r"^\s*[+]?(\d+|0[xX][0-9a-fA-F]+)\s*$")


def _units_given(data: dict[str, Any], node: Any, file: str) -> None:
    """A size without a unit is refused: QEMU's -m reads a bare 512 as MiB, its objects as bytes,
    so a spec must say which (512M, or 512B for bytes)."""
    found = _bare_size(data)
    if found is None:
        return
    path, value = found
    field = _dotted(path)
    raise InputError(f"{value} has no unit: write {value}M for MiB (as QEMU's -m reads a bare "
                     f"number) or {value}B for bytes; K, M, G, T are powers of 1024",
                     file=file, field=f"{field} (line {_line_of(node, path)})")


def _bare_size(data: dict[str, Any]) -> tuple[tuple[Any, ...], Any] | None:
    """The first size field given without a unit, and its value."""
    paths: list[tuple[Any, ...]] = list(SIZE_FIELDS)
    cells = data.get("numa")
    if isinstance(cells, list):
        paths += [("numa", index, "size") for index in range(len(cells))]
    for path in paths:
        value: Any = data
        for part in path:
            ok = isinstance(value, dict) or (isinstance(value, list) and isinstance(part, int))
            value = value.get(part) if isinstance(value, dict) else value[part] if ok else None
        if isinstance(value, bool) or not isinstance(value, int | str) or not _BARE.match(str(value)):
            continue
        return path, value
    return None


def _message(error: Invalid) -> str:
    close = get_close_matches(str(error.path[-1]), [str(key) for key in error.known], n=1,
                              cutoff=0.6)
    if error.kind == "extra":
        return f"unknown field; did you mean {close[0]}?" if close else (
            "unknown field (known here: " + ", ".join(error.known) + ")")
    if error.kind == "missing":
        return "required field is missing" + (f" (the spec has {close[0]}: a misspelling?)"
                                               if close else "")
    return error.message


def _dotted(location: tuple[Any, ...]) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _line_of(node: Any, location: tuple[Any, ...]) -> int | None:
    line = node.start_mark.line + 1 if node is not None else None
    for part in location:
        if isinstance(node, yaml.MappingNode):
            match = [(key, value) for key, value in node.value if key.value == part]
            if not match:
                return line
            key, node = match[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def spec_device_origins(spec: VmSpec, path: str) -> dict[str, tuple[str | None, str]]:
    """Each spec device -> (the spec file, `devices[i] (line N)`), for errors about it."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    origins: dict[str, tuple[str | None, str]] = {}
    for index, (given, device) in enumerate(zip(spec.devices, spec.pci_devices, strict=True)):
        line = next((n for n, text in enumerate(lines, 1) if given.lower() in text.lower()), None)
        where = f" (line {line})" if line else ""
        origins[device] = origins[given] = (path, f"devices[{index}]{where}")
    return origins
