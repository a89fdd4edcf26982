"""`-readconfig FILE`: QEMU's configuration file format, turned into the options it stands for.
Pure: the caller reads the file.

    [device "ich9-pcie-port-1"]
      driver = "pcie-root-port"
      bus = "pcie.0"

becomes `-device driver=pcie-root-port,id=ich9-pcie-port-1,bus=pcie.0`. Groups named as options
(device, drive, chardev, netdev, object, machine, numa, global, ...) map to that option; QEMU's
`memory`, `smp-opts` and `boot-opts` to -m, -smp and -boot.

Proxmox starts every q35 VM with `-readconfig /usr/share/qemu-server/pve-q35-4.0.cfg` (its USB
controllers, root ports ich9-pcie-port-1..4 where `hostpci` devices sit, the DMI bridge and the
PCI bridges pci.0-pci.3). Where that file is not on this machine (a command line of a Proxmox
host checked elsewhere), layoutd uses what qemu-server's file defines (PROXMOX_FILES, written
from its device list) and says so.
"""

from __future__ import annotations

import re

from layoutd.errors import InputError
from layoutd.qemu.options import WITH_ARGUMENT

GROUP_OPTIONS = {"memory": "m", "smp-opts": "smp", "boot-opts": "boot"}
_GROUP = re.compile(r'^\[\s*([\w-]+)(?:\s+"([^"]*)")?\s*\]$')
_ENTRY = re.compile(r'^([\w.-]+)\s*=\s*"(.*)"$')


def options_of(text: str, path: str) -> list[str]:
    """The command-line options a configuration file stands for, in its order."""
    found: list[tuple[str, str | None, list[tuple[str, str]]]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        group, entry = _GROUP.match(line), _ENTRY.match(line)
        if group:
            found.append((group.group(1), group.group(2), []))
        elif entry and found:
            found[-1][2].append((entry.group(1), entry.group(2)))
        else:
            raise InputError(f"line {number}: not a [group \"id\"] or key = \"value\" line",
                             file=path)
    argv: list[str] = []
    for name, ident, entries in found:
        option = GROUP_OPTIONS.get(name, name)  # a [group] names the option it stands for
        if option not in WITH_ARGUMENT:
            raise InputError(f"group [{name}] is not a QEMU option layoutd knows", file=path)
        pairs = ([("id", ident)] if ident is not None else []) + entries
        argv += [f"-{option}", ",".join(f"{key}={value.replace(',', ',,')}" for key, value in pairs)]
    return argv


def _ports(driver: str) -> str:
    """qemu-server's q35 layout: USB, audio, four root ports of `driver`, DMI and PCI bridges."""
    usb = "".join(
        f'[device "{name}"]\n driver = "{kind}"\n multifunction = "on"\n bus = "pcie.0"\n'
        f' addr = "{addr}"\n' + (f' masterbus = "{master}.0"\n firstport = "{port}"\n' if master else "")
        for name, kind, addr, master, port in (
            ("ehci", "ich9-usb-ehci1", "1d.7", "", ""),
            ("uhci-1", "ich9-usb-uhci1", "1d.0", "ehci", "0"),
            ("uhci-2", "ich9-usb-uhci2", "1d.1", "ehci", "2"),
            ("uhci-3", "ich9-usb-uhci3", "1d.2", "ehci", "4"),
            ("ehci-2", "ich9-usb-ehci2", "1a.7", "", ""),
            ("uhci-4", "ich9-usb-uhci4", "1a.0", "ehci-2", "0"),
            ("uhci-5", "ich9-usb-uhci5", "1a.1", "ehci-2", "2"),
            ("uhci-6", "ich9-usb-uhci6", "1a.2", "ehci-2", "4")))
    audio = '[device "audio0"]\n driver = "ich9-intel-hda"\n bus = "pcie.0"\n addr = "1b.0"\n'
    ports = "".join(
        f'[device "ich9-pcie-port-{n}"]\n driver = "{driver}"\n multifunction = "on"\n'
        f' bus = "pcie.0"\n addr = "1c.{n - 1}"\n port = "{n}"\n chassis = "{n}"\n'
        for n in range(1, 5))
    dmi = '[device "pcidmi"]\n driver = "i82801b11-bridge"\n bus = "pcie.0"\n addr = "1e.0"\n'
    bridges = "".join(
        f'[device "pci.{n}"]\n driver = "pci-bridge"\n bus = "pcidmi"\n addr = "{n + 1}.0"\n'
        f' chassis_nr = "{n + 1}"\n' for n in range(4))
    return usb + audio + ports + dmi + bridges


PROXMOX_FILES = {
    "/usr/share/qemu-server/pve-q35-4.0.cfg": _ports("pcie-root-port"),  # machine types 4.0+
    "/usr/share/qemu-server/pve-q35.cfg": _ports("ioh3420"),  # older machine types
}
"""What qemu-server's q35 configuration files define (src/usr/pve-q35*.cfg), for a command line
read where they are not installed. Their root ports' x-speed/x-width change no address."""
