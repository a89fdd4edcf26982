"""Read struct layouts and ioctl numbers from the kernel's uapi headers (linux-libc-dev).

A tiny C-struct reader: enough for the flat structs of vfio.h and iommufd.h (fixed-width __u16,
__u32, __s32, __u64, __aligned_u64 members, nested known structs, flexible arrays). Offsets are
computed with ctypes, so natural alignment is the compiler's, not ours.
"""

import ctypes
import os
import re
from pathlib import Path

CACHE = Path(os.environ.get("LAYOUTD_CACHE", Path.home() / ".cache/layoutd"))
CANDIDATES = [Path("/usr/include/linux"), CACHE / "linux-headers/usr/include/linux"]

SCALARS: dict[str, type[ctypes._SimpleCData]] = {  # type: ignore[type-arg]
    "__u8": ctypes.c_uint8, "__u16": ctypes.c_uint16, "__u32": ctypes.c_uint32,
    "__s32": ctypes.c_int32, "__u64": ctypes.c_uint64, "__aligned_u64": ctypes.c_uint64,
}


def header(name: str, needle: str) -> str | None:
    """The text of linux/NAME from the first include directory whose copy mentions `needle`."""
    for directory in CANDIDATES:
        path = directory / name
        if path.is_file() and needle in path.read_text():
            return path.read_text()
    return None


def _strip(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return "\n".join(line for line in text.splitlines() if not line.strip().startswith("#"))


def struct_fields(text: str, name: str) -> list[tuple[str, str, bool]]:
    """(type, member, is_flexible_array) of `struct NAME { ... };`."""
    match = re.search(r"struct\s+" + name + r"\s*\{(.*?)\n\}", text, flags=re.S)
    assert match, f"struct {name} not found"
    fields = []
    for statement in _strip(match.group(1)).split(";"):
        words = statement.split()
        if not words:
            continue
        kind = " ".join(words[:-1])
        member = words[-1]
        flexible = member.endswith("[]")
        fields.append((kind, member.rstrip("[]"), flexible))
    return fields


def ctypes_struct(text: str, name: str, known: dict[str, type[ctypes.Structure]] | None = None
                  ) -> type[ctypes.Structure]:
    known = known or {}
    members: list[tuple[str, object]] = []
    for kind, member, flexible in struct_fields(text, name):
        if kind.startswith("struct "):
            base: object = known[kind.split()[1]]
        else:
            base = SCALARS[kind]
        members.append((member, base * 0 if flexible else base))  # type: ignore[operator]
    return type(name, (ctypes.Structure,), {"_fields_": members})


def offsets(structure: type[ctypes.Structure]) -> dict[str, int]:
    return {name: getattr(structure, name).offset for name, _ in structure._fields_}


def define(text: str, name: str) -> str:
    match = re.search(r"#define\s+" + name + r"\s+(.+)", text)
    assert match, f"#define {name} not found"
    return re.sub(r"/\*.*?\*/", "", match.group(1)).strip()


def ioctl_nr(text: str, name: str, enum_text: str | None = None) -> int:
    """The nr of `#define NAME _IO(TYPE, EXPR)`: VFIO_BASE + n, or an IOMMUFD_CMD_* enum value."""
    body = define(text, name)
    match = re.match(r"_IO\(\s*\w+\s*,\s*(.+)\)$", body)
    assert match, body
    expression = match.group(1).strip()
    if expression.startswith("VFIO_BASE"):
        return 100 + int(expression.split("+")[1].strip()) if "+" in expression else 100
    return enum_value(enum_text or text, expression)


def enum_value(text: str, name: str) -> int:
    """NAME = 0x81, or NAME = OTHER (followed)."""
    match = re.search(r"\b" + name + r"\s*=\s*(0x[0-9a-fA-F]+|\d+|\w+)\s*,", text)
    assert match, name
    value = match.group(1)
    return int(value, 0) if value[0].isdigit() else enum_value(text, value)
