"""Split a QEMU command line into options, and QEMU's `key=value,...` strings into dicts. Pure.

Which options take an argument comes from `qemu-system-* -help` of 7.2 and 10.0, and Proxmox's
own QEMU options `-id VMID` and `-loadstate FILE` (qemu-server's config_to_command).
"""

import json
import re
from collections.abc import Sequence

from layoutd.errors import InputError
from layoutd.qemu.versions import QemuRelease
from layoutd.record import Record

WITH_ARGUMENT = frozenset(
    [
        "accel", "acpitable", "action", "add-fd", "append", "audio", "audiodev", "bios",
        "blockdev", "boot", "cdrom", "chardev", "chroot", "compat", "cpu", "d", "D", "device",
        "dfilter", "display", "drive", "dtb", "dump-vmstate", "echr", "fda", "fdb", "fsdev",
        "fw_cfg", "g", "gdb", "global", "hda", "hdb", "hdc", "hdd", "icount", "id", "incoming",
        "initrd", "iscsi", "k", "kernel", "L", "loadstate", "loadvm", "m", "M", "machine",
        "mem-path", "mon",
        "monitor", "msg", "mtdblock", "name", "net", "netdev", "nic", "numa", "object",
        "option-rom", "overcommit", "parallel", "pflash", "pidfile", "plugin", "prom-env",
        "qmp", "qmp-pretty", "readconfig", "rotate", "rtc", "run-with", "runas", "sandbox",
        "sd", "seed", "semihosting-config", "serial", "set", "smbios", "smp", "spice", "tpmdev",
        "trace", "usbdevice", "uuid", "vga", "virtfs", "vnc", "watchdog-action", "xen-domid"
    ]
)
FLAGS = frozenset(
    [
        "S", "s", "h", "help", "version", "audio-help", "daemonize", "enable-kvm",
        "enable-sync-profile", "full-screen", "mem-prealloc", "no-acpi", "no-fd-bootchk",
        "no-hpet", "no-reboot", "no-shutdown", "no-user-config", "nodefaults", "nographic",
        "old-param", "only-migratable", "perfmap", "jitdump", "portrait", "preconfig",
        "semihosting", "singlestep", "snapshot", "usb", "win2k-hack", "xen-attach",
        "xen-domid-restrict", "async-teardown"
    ]
)


class Option(Record, kw_only=False):
    name: str  # without dashes: "machine", "m", "device"
    value: str | None
    position: int  # index in argv, for messages

    def label(self) -> str:
        return f"-{self.name} {self.value}" if self.value is not None else f"-{self.name}"


def split_argv(argv: Sequence[str]) -> list[Option]:
    """The options of a command line (after the binary name); a bare word is a disk image."""
    options: list[Option] = []
    index = 0
    while index < len(argv):
        word = argv[index]
        if not word.startswith("-") or word == "-":
            options.append(Option("hda", word, index))
            index += 1
            continue
        name = word.lstrip("-")
        name = {"M": "machine"}.get(name, name)
        if name in FLAGS:
            options.append(Option(name, None, index))
            index += 1
        elif name in WITH_ARGUMENT:
            if index + 1 >= len(argv):
                raise InputError(f"option {word} needs an argument", field="qemu argv")
            options.append(Option(name, argv[index + 1], index))
            index += 2
        else:
            raise InputError(f"{word}: invalid option (QEMU does not know it)", field="qemu argv")
    return options


def split_commas(text: str) -> list[str]:
    """QEMU's comma list: `,,` is a literal comma."""
    parts: list[str] = []
    current = ""
    index = 0
    while index < len(text):
        char = text[index]
        if char == "," and text[index : index + 2] == ",,":
            current += ","
            index += 2
            continue
        if char == ",":
            parts.append(current)
            current = ""
        else:
            current += char
        index += 1
    parts.append(current)
    return parts


def keyval(text: str, implied: str | None, where: str) -> dict[str, str]:
    """`TYPE,key=value,...` (or JSON for -device/-object) -> {implied: TYPE, key: value}."""
    if text.lstrip().startswith("{"):
        return _json_keyval(text, where)
    result: dict[str, str] = {}
    for index, part in enumerate(split_commas(text)):
        if not part:
            continue
        if "=" in part:
            key, value = part.split("=", 1)
        elif index == 0 and implied is not None:
            key, value = implied, part
        else:
            key, value = part, "on"
        result[key] = value
    return result


def _json_keyval(text: str, where: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except ValueError as error:
        raise InputError(f"{where}: invalid JSON: {error}", field="qemu argv") from error
    if not isinstance(data, dict):
        raise InputError(f"{where}: JSON must be an object", field="qemu argv")
    return {str(key): _json_text(value) for key, value in data.items()}


def _json_text(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def parse_int(value: str, what: str) -> int:
    """A number as QEMU takes it (decimal, 0x hex or 0 octal); anything else is bad input."""
    try:
        return int(value, 0)
    except ValueError:
        raise InputError(f"{what}: {value!r} is not a number", field="qemu argv") from None


def parse_bool(value: str, what: str) -> bool:
    lowered = value.lower()
    if lowered in ("on", "yes", "true", "y"):
        return True
    if lowered in ("off", "no", "false", "n"):
        return False
    raise InputError(f"{what}: '{value}' is not on or off", field="qemu argv")


SIZE_SYNTAX = ("expects a non-negative number below 2^64 Optional suffix k, M, G, T, P or E means "
               "kilo-, mega-, giga-, tera-, peta- and exabytes, respectively.")
_SCALE = "BKMGTPE"  # powers of 1024, either case (QEMU's suffix_mul)
_NUMBER = re.compile(r"(\d*)(\.\d*)?")


class BadSize(ValueError):
    """A size QEMU's qemu_strtosz refuses; `out_of_range` when the syntax is fine but >= 2^64."""

    def __init__(self, out_of_range: bool = False):
        super().__init__("out of range" if out_of_range else "syntax")
        self.out_of_range = out_of_range


def strtosz(text: str, qemu: QemuRelease, unit: int = 1) -> int:
    """QEMU's qemu_strtosz (util/cutils.c), as the real 7.2 and 10.0 binaries answer: decimal
    with an optional fraction and one suffix B K M G T P E (any case, powers of 1024), or 0x hex;
    no "GiB", "GB", exponents or trailing blanks. `unit` scales a number without a suffix."""
    rewritten = qemu.strtosz_rewrite
    rest = text.lstrip(" \t\n\v\f\r")
    rest = rest[1:] if rest.startswith("+") else rest
    hexa = re.match(r"0[xX]([0-9a-fA-F]+)", rest)
    if hexa:
        value, rest = int(hexa.group(1), 16), rest[hexa.end():]
        scale, rest = _suffix(rest, unit)
        if rest or (scale != unit and rewritten):
            raise BadSize()
        return _in_range(value * scale)
    number = _NUMBER.match(rest)
    assert number is not None  # the pattern matches the empty string
    whole, fraction = number.group(1), number.group(2) or ""
    if not whole and (not rewritten or len(fraction) < 2):
        raise BadSize()
    scale, rest = _suffix(rest[number.end():], unit)
    if rest or (fraction.strip(".0") and scale == 1):
        raise BadSize()  # trailing text, or a fraction of a byte
    value = int(whole or "0") * scale + int(float("0" + (fraction or ".0")) * scale)
    return _in_range(value)


def _suffix(rest: str, unit: int) -> tuple[int, str]:
    if rest and rest[0].upper() in _SCALE:
        return 1 << (10 * _SCALE.index(rest[0].upper())), rest[1:]
    return unit, rest


def _in_range(value: int) -> int:
    if value >= 1 << 64:
        raise BadSize(out_of_range=True)
    return value
