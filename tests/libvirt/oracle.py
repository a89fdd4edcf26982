"""libvirt as the oracle: the memory-relevant part of a QEMU command line, in one comparable
shape, for libvirt's own (`virsh domxml-to-native qemu-argv`) and layoutd's translation.

`canonical(argv)` keeps what decides the guest-physical map (machine type and acpi/smm/nvdimm/
memory-backend, accel, CPU model with phys-bits/vendor, -m, -smp, backends by size, alignment and
page size, -numa, memory devices with ids, slots, addresses and sizes, pci-hole64, vIOMMU, VFIO
and VGA devices) and drops the rest (chardevs, PCI bus placement, prealloc, paths).
`runnable(argv, folder)` is libvirt's command line cut to those options, with file backends
moved into `folder`, for the real QEMU.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from layoutd.qemu.config import MEMORY_DEVICES, VGA_DEVICES
from layoutd.qemu.options import keyval, split_argv
from layoutd.units import parse_size
from tests.support.qemu_runner import AARCH64_FIRMWARE

MACHINE_KEYS = ("type", "acpi", "smm", "nvdimm", "memory-backend", "max-ram-below-4g",
                "gic-version", "highmem", "cxl")
CPU_KEYS = ("phys-bits", "host-phys-bits", "host-phys-bits-limit", "vendor")
DEVICE_SIZES = ("addr", "memaddr", "label-size", "block-size", "requested-size")
OTHER_DEVICES = frozenset(["intel-iommu", "virtio-iommu-pci", "vfio-pci", "bochs-display",
                           "ramfb", *VGA_DEVICES])
PAGE = 4096


def libvirt_argv(shell: str) -> list[str]:
    """`virsh domxml-to-native qemu-argv` output -> the arguments after the binary."""
    words = shlex.split(shell)
    start = next(i for i, word in enumerate(words) if "=" not in word or word.startswith("-"))
    return words[start + 1:]


def canonical(argv: list[str], version: str, hugetlbfs: dict[str, int] | None = None
              ) -> dict[str, Any]:
    """The comparable shape. `version`: the QEMU whose aliases (q35, pc) the type resolves to;
    `hugetlbfs`: mount point -> page size, for libvirt's hugepage file backends."""
    shape: dict[str, Any] = {"machine": {}, "accel": "tcg", "cpu": None, "m": {}, "smp": None,
                             "numa": [], "backends": {}, "devices": [], "globals": [],
                             "others": []}
    for option in split_argv(argv):
        value = option.value or ""
        if option.name == "machine":
            _machine(shape, keyval(value, "type", "-machine"))
        elif option.name == "no-acpi":
            shape["machine"]["acpi"] = "off"
        elif option.name == "accel":
            shape["accel"] = keyval(value, "accel", "-accel")["accel"]
        elif option.name == "cpu":
            shape["cpu"] = _cpu(value)
        elif option.name == "m":
            shape["m"] = {key: _m_size(text) if key != "slots" else int(text)
                          for key, text in keyval(value, "size", "-m").items()}
        elif option.name == "smp":
            shape["smp"] = int(keyval(value, "cpus", "-smp").get("cpus", "1"))
        elif option.name == "numa":
            props = keyval(value, "type", "-numa")
            if props.get("type", "node") == "node":
                shape["numa"].append((props.get("nodeid"), props.get("memdev"),
                                      parse_size(props["mem"]) if "mem" in props else None))
        elif option.name == "object":
            props = keyval(value, "qom-type", "-object")
            if props.get("qom-type", "").startswith("memory-backend"):
                shape["backends"][props["id"]] = _backend(props, hugetlbfs or {})
        elif option.name == "device":
            _device(shape, keyval(value, "driver", "-device"))
        elif option.name == "global" and "pci-hole64-size" in value:
            name, _, size = value.partition("=")
            shape["globals"].append((name, parse_size(size)))
    machine = shape["machine"]
    machine["type"] = _resolve(machine.get("type", "pc"), version)
    if machine.get("acpi") == "on":
        del machine["acpi"]
    cpu = shape["cpu"]
    if cpu and cpu[0] in ("host", "max") and ("host-phys-bits", "on") in cpu[1]:
        shape["cpu"] = (cpu[0], tuple(p for p in cpu[1] if p != ("host-phys-bits", "on")))
    return shape


def _m_size(text: str) -> int:
    """-m takes a bare number as MiB (libvirt writes `-m 32768` without maxMemory)."""
    return parse_size(text + "M" if text.isdigit() else text)


def _machine(shape: dict[str, Any], props: dict[str, str]) -> None:
    if "accel" in props:
        shape["accel"] = props["accel"]
    shape["machine"].update({key: value for key, value in props.items() if key in MACHINE_KEYS})


def _resolve(name: str, version: str) -> str:
    return {"q35": f"pc-q35-{version}", "pc": f"pc-i440fx-{version}",
            "virt": f"virt-{version}"}.get(name, name)


def _cpu(value: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    model, *parts = value.split(",")
    props = dict(part.split("=", 1) for part in parts if "=" in part)
    return model, tuple(sorted((key, props[key]) for key in CPU_KEYS if key in props))


def _backend(props: dict[str, str], hugetlbfs: dict[str, int]) -> tuple[Any, ...]:
    kind = props["qom-type"].removeprefix("memory-backend-")
    page = PAGE
    if kind == "memfd" and props.get("hugetlb") in ("on", "true"):
        page = parse_size(props.get("hugetlbsize", "2M"))
    if kind == "file":
        path = props.get("mem-path", "")
        page = next((size for mount, size in hugetlbfs.items() if path.startswith(mount + "/")),
                    PAGE)
    if page != PAGE:
        kind = "hugepages"
    align = parse_size(props["align"]) if "align" in props else None
    return kind, parse_size(props["size"]), align, page, props.get("pmem") in ("on", "true")


def _device(shape: dict[str, Any], props: dict[str, str]) -> None:
    driver = props.get("driver", "")
    if driver in MEMORY_DEVICES:
        sizes = tuple((key, parse_size(props[key])) for key in DEVICE_SIZES
                      if key in props and not (key == "addr" and driver.endswith("-pci")))
        shape["devices"].append((driver, props.get("id"), props.get("memdev"), props.get("node"),
                                 props.get("slot"), sizes))
    elif driver in OTHER_DEVICES:
        keep = {key: props[key] for key in ("host", "aw-bits") if key in props}
        shape["others"].append((driver, tuple(sorted(keep.items()))))


def runnable(argv: list[str], folder: Path) -> list[str]:
    """libvirt's command line cut to the memory-relevant options, runnable without libvirt:
    PCI bus placement dropped (its root ports are not kept), file backends moved into
    `folder`, no preallocation, no VFIO device (none exists here), VGA models as plain VGA."""
    kept: list[str] = []
    for option in split_argv(argv):
        value = option.value or ""
        if option.name == "machine" and "pflash0=" in value:
            # libvirt's flash drives are not kept: the same firmware as -bios (arm: present)
            value = ",".join(p for p in value.split(",") if not p.startswith(("pflash0=", "pflash1=")))
            kept += ["-bios", str(AARCH64_FIRMWARE)] if "virt" in value else []
        if option.name in ("machine", "accel", "cpu", "m", "smp", "numa", "global"):
            if option.name == "global" and "pci-hole64-size" not in value:
                continue
            kept += [f"-{option.name}", value]
        elif option.name == "no-acpi":
            kept.append("-no-acpi")
        elif option.name == "object" and "memory-backend" in value:
            kept += ["-object", _json(value, folder)]
        elif option.name == "device":
            props = keyval(value, "driver", "-device")
            driver = props.get("driver", "")
            if driver in VGA_DEVICES:  # the same legacy window; every build has plain VGA
                kept += ["-device", f"VGA,id={props.get('id', 'video0')}"]
            elif driver in MEMORY_DEVICES or (driver in OTHER_DEVICES and driver != "vfio-pci"):
                kept += ["-device", _json(value, folder, drop=("bus", "addr")
                                          if driver not in ("pc-dimm", "nvdimm") else ())]
    return kept


def _json(value: str, folder: Path, drop: tuple[str, ...] = ()) -> str:
    if not value.startswith("{"):
        parts = [p for p in value.split(",") if p.split("=", 1)[0] not in drop]
        return ",".join(parts)
    data = json.loads(value)
    for key in drop:
        data.pop(key, None)
    if "mem-path" in data:
        data["mem-path"] = str(folder / data["id"])
    data.pop("prealloc", None)
    data.pop("prealloc-threads", None)
    return json.dumps(data, separators=(",", ":"))
