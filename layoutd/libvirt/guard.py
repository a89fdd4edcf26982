"""The check behind the hook and `check --libvirt`: domain XML -> argv -> predicted map -> holes."""

from __future__ import annotations

import re
from collections.abc import Sequence

from layoutd.checking import (
    Checked,
    bar_check,
    domain_ram_bars,
    dry_run_bars,
    dry_run_map,
    for_windows,
    merge_devices,
    place_ram_bars,
    probe_devices,
    same_binary,
    verified,
    verified_fixes,
    with_host,
)
from layoutd.collisions import Collision, check
from layoutd.dryrun import dry_run, guest_map
from layoutd.emulator import binary_version, data_dirs
from layoutd.errors import HostUnavailable, InputError, LayoutdError, NotModelled, UnknownDevice
from layoutd.fixes import fixes
from layoutd.host import probe_host
from layoutd.libvirt.argv import Translation, translate
from layoutd.libvirt.domain import Domain, read_domain
from layoutd.libvirt.edit import with_machine
from layoutd.libvirt.hookconf import HookConfig
from layoutd.libvirt.pci import pci_argv
from layoutd.libvirt_versions import LibvirtVersion, installed_libvirt, libvirt_target
from layoutd.models.common import GuestRegion, Hole
from layoutd.models.guest import GuestMap
from layoutd.models.host import HostView
from layoutd.qemu import predict
from layoutd.qemu.config import ram_bars_of
from layoutd.qemu.versions import Version, is_modelled, oldest_accepting
from layoutd.record import Record, replace

_MACHINE_VERSION = re.compile(r"-(\d+\.\d+)$")


class DomainCheck(Record, kw_only=False):
    translation: Translation
    version: str
    devices: tuple[str, ...]
    host: HostView | None  # None: no host device, nothing to check
    layout: tuple[GuestRegion, ...]
    collisions: tuple[Collision, ...]
    source: str = ""  # how the map is known: "QEMU 7.2 model", "dry run of /usr/bin/qemu-..."
    bars: tuple[Collision, ...] = ()  # assigned BARs the firmware puts in a host hole (proven)
    warnings: tuple[str, ...] = ()  # what was not checked, and BAR findings that do not refuse
    machine_fix: tuple[str, str] | None = None  # a machine type with which it passes, and why

    @property
    def name(self) -> str:
        return self.translation.domain.name

    @property
    def refusal(self) -> str | None:
        if not self.collisions and not self.bars:
            return None
        return refusal_message(self)

    @property
    def summary(self) -> str:
        if self.host is None:
            return "no host PCI device (<hostdev> or `devices` in the hook configuration): nothing to map"
        bars = " and every assigned 64-bit BAR" if self.bars_checked else ""
        return (f"{len(self.layout)} RAM region(s){bars} clear of the holes of "
                f"{', '.join(self.devices)} ({self.host.source}, {self.source})")

    @property
    def bars_checked(self) -> bool:
        return not any(text.startswith(BARS_UNCHECKED) for text in self.warnings)


def translate_domain(xml: bytes | str, source: str,
                     libvirt: LibvirtVersion | None = None) -> Translation:
    """The translation for `libvirt`, else the libvirt installed here; its version is asked only
    when the domain has an element whose meaning changed between versions (virtio <target>
    <address>, maxphysaddr's limit)."""
    domain = read_domain(xml, source)
    versioned = (any(dev.target_base is not None for dev in domain.memory_devices)
                 or domain.phys_bits_limit is not None)
    return translate(domain, libvirt or (installed_libvirt() if versioned else None))


def check_domain(xml: bytes | str, config: HookConfig, source: str = "<stdin>") -> DomainCheck:
    translation = translate_domain(xml, source)
    devices = translation.devices or config.devices
    version = qemu_version(translation, config.qemu_version)
    if not devices:
        return DomainCheck(translation, version, (), None, (), ())
    dirs = None if config.qemu_version else emulator_dirs(translation.domain)
    return check_translation(translation, version, devices, config.host_source, xml, dirs)


def check_translation(translation: Translation, version: str, devices: Sequence[str],
                      host_source: str | None, xml: bytes | str | None = None,
                      dirs: Sequence[str] | None = None) -> DomainCheck:
    """`dirs`: the folders the emulator loads firmware from (None: Debian's pairing)."""
    try:
        host = probe_host(host_source, list(devices) or None)
    except UnknownDevice as error:  # named as the domain's <hostdev>, else the hook's devices
        raise error.at({d: (translation.domain.source, f"<hostdev> {d}")
                        for d in translation.devices}) from error
    domain = translation.domain
    if is_modelled(version):
        try:
            if domain.arch not in ("x86_64", "aarch64"):
                raise NotModelled(f"architecture {domain.arch} is not modelled")
            guest = predict(translation.argv, version=version, host_cpu=host.cpu, arch=domain.arch,
                            host=host.platform)
            source = f"QEMU {version} model"
        except NotModelled as error:
            guest, source = emulator_map(translation, f"not modelled ({error.message})")
    else:
        guest, source = emulator_map(translation, f"QEMU {version} is not modelled")
    if source == f"QEMU {version} model" and xml is not None:  # <shmem>s, judged like RAM

        guest = domain_ram_bars(guest, host, with_buses(translation.argv, xml,
                                                        translation.domain.source), devices, dirs)
    layout = tuple(guest.layout)
    collisions = tuple(check(layout, host))
    bars: tuple[Collision, ...] = ()
    warnings: tuple[str, ...] = (f"{BARS_UNCHECKED}: the map is not the QEMU model's ({source})",)
    machine = None
    if source == f"QEMU {version} model" and xml is not None:
        bars, warnings = domain_bars(guest, host, translation, xml, devices, dirs)
        if collisions and not bars:
            machine = machine_fix(guest, host, translation, version, devices, host_source, xml,
                                  dirs)
    return DomainCheck(translation, version, tuple(devices), host, layout, collisions, source,
                       bars, warnings, machine)


def machine_fix(guest: GuestMap, host: HostView, translation: Translation, version: str,
                devices: Sequence[str], host_source: str | None, xml: bytes | str,
                dirs: Sequence[str] | None) -> tuple[str, str] | None:
    """The newer machine type that clears every collision (layoutd.fixes, on the model) and why,
    kept only when the domain with it in its <os><type machine> passes this very check (RAM and
    BARs): the simplest fix, named first in a refusal."""
    def again(changed: Sequence[str]) -> GuestMap:
        return predict(changed, version=version, host_cpu=host.cpu,
                       arch=translation.domain.arch, host=host.platform)

    try:
        found = [fix for fix in fixes(translation.argv, guest, again,
                                      lambda changed: not check(changed.layout, host),
                                      translation.domain.windows)
                 if fix.option == "machine"]
        if not found:
            return None
        edited = with_machine(xml, found[0].value, translation.domain.source)
        again_checked = check_translation(translate_domain(edited, translation.domain.source),
                                          version, devices, host_source, edited, dirs)
    except LayoutdError:
        return None
    if again_checked.collisions or again_checked.bars or not again_checked.bars_checked:
        return None
    return found[0].value, found[0].why


BARS_UNCHECKED = "BARs not checked"


def domain_bars(guest: GuestMap, host: HostView, translation: Translation, xml: bytes | str,
                devices: Sequence[str], dirs: Sequence[str] | None = None
                ) -> tuple[tuple[Collision, ...], tuple[str, ...]]:
    """The assigned BARs the firmware puts in a host hole (the hook refuses for those), and the
    rest said as warnings: a BAR left unassigned or beyond the guest's phys-bits (the domain
    starts; the guest may lose the device), a firmware or device layoutd does not model."""
    try:
        domain = translation.domain
        result = bar_check(guest, host, with_buses(translation.argv, xml, domain.source), devices,
                           dirs, domain.emulator or DEFAULT_EMULATOR.get(domain.arch))
    except LayoutdError as error:
        return (), (f"{BARS_UNCHECKED}: {error.render()}",)
    if result is None:
        return (), ()
    if result.firmware is None:
        return (), tuple(f"{BARS_UNCHECKED}: {note}" for note in result.notes[:1]) + tuple(
            result.notes[1:])
    proven = tuple(c for c in result.collisions if c.hole.type not in NOT_HOST_HOLES)
    others = tuple(c.describe() for c in result.collisions if c.hole.type in NOT_HOST_HOLES)
    booted = (f"BARs where {result.firmware} put them",) if result.how_known == "boot" else ()
    unjudged = ((f"{BARS_UNCHECKED}: {', '.join(result.not_judged)}",)
                if result.not_judged else ())
    return proven, (*booted, *others, *unjudged, *result.notes)


NOT_HOST_HOLES = ("guest-phys-bits",)  # the guest's own limit: QEMU maps it; the guest may not


def emulator_map(translation: Translation, why: str) -> tuple[GuestMap, str]:
    """Where the model cannot answer: the map the domain's own <emulator> builds, by a dry run
    (layoutd.dryrun). A dry run that cannot be made is NotModelled (the hook then lets the
    domain start with a warning); QEMU refusing it is QemuRefusal."""
    domain = translation.domain
    emulator = domain.emulator or DEFAULT_EMULATOR.get(domain.arch, "")
    arch = MODEL_ARCH.get(domain.arch, domain.arch)
    try:
        run = dry_run(emulator, translation.argv, arch)
    except HostUnavailable as error:
        raise NotModelled(f"{why}, and the dry run of {emulator} could not answer: "
                          f"{error.message}", file=domain.source) from error
    guest = guest_map(run, translation.argv, arch)
    return guest, f"{why}: map from a dry run of {emulator} (QEMU {run.version})"


DEFAULT_EMULATOR = {"x86_64": "/usr/bin/qemu-system-x86_64", "aarch64": "/usr/bin/qemu-system-aarch64",
                    "i686": "/usr/bin/qemu-system-i386"}
MODEL_ARCH = {"x86_64": "x86_64", "aarch64": "aarch64", "i686": "x86_64"}  # as the map reads


def qemu_version(translation: Translation, configured: str | None) -> str:
    return domain_qemu_version(translation.domain, configured)


def domain_qemu_version(domain: Domain, configured: str | None) -> str:
    """The configured version; else what the domain's <emulator> (or, without one, libvirt's
    default emulator for the arch) answers to --version; else the oldest modelled QEMU that
    accepts the domain's versioned machine type (pc-q35-6.2 -> 7.2)."""
    if configured:
        return configured
    emulator = domain.emulator or DEFAULT_EMULATOR.get(domain.arch)
    found = binary_version(emulator) if emulator else None
    if found:
        return str(found.release)
    match = _MACHINE_VERSION.search(domain.machine)
    oldest = oldest_accepting(Version.parse(match.group(1))) if match else None
    if oldest is not None:
        return str(oldest)
    raise NotModelled(
        "cannot tell which QEMU version runs this domain: its <emulator> did not answer "
        "--version and its machine type names no version a modelled QEMU accepts; set "
        "qemu_version in the hook configuration (or --qemu-version)", file=domain.source,
        field="<os><type machine>")


def emulator_dirs(domain: Domain) -> tuple[str, ...] | None:
    """The folders the domain's emulator loads firmware from (QEMU's own bios-256k.bin), asked
    as its version is; None when it cannot be asked (Debian's pairing is taken)."""
    emulator = domain.emulator or DEFAULT_EMULATOR.get(domain.arch)
    return data_dirs(emulator) if emulator else None


def refusal_message(check: DomainCheck) -> str:
    assert check.host is not None
    what = " and ".join(part for part, found in (("its guest RAM", check.collisions), (
        "the firmware's placement of assigned BARs", check.bars)) if found)
    lines = [
        f"{what} would overlap host IOMMU holes that VFIO cannot map for "
        f"{', '.join(check.devices)} (host {check.host.source}, {check.source}); "
        "QEMU would fail with vfio_dma_map ... = -22:"
    ]
    for collision in (*check.collisions, *check.bars):
        if collision.hole.type == "unassigned":
            lines.append(f"  {collision.describe()}")
            continue
        lines.append(f"  {collision.kind} {collision.id!r} {collision.start:#x}-{collision.end:#x} "
                     f"lies in the {_hole(collision.hole, check.host)}")
    if check.machine_fix:
        lines.append(
            f"Fix: `virsh edit {check.name}` and set <os><type machine='{check.machine_fix[0]}'> "
            f"({check.machine_fix[1]}; checked: the domain then passes this check, RAM and "
            "BARs). Or, keeping the machine type:")
    lines.append(
        ("" if check.machine_fix else "Fix: ") +
        "`layoutd libvirt fix DOMAIN.xml` rewrites the domain's memory around the holes "
        "(or write a spec and run `layoutd plan SPEC.yaml --format libvirt`); "
        "`layoutd check --libvirt DOMAIN.xml` shows the predicted map and every collision."
        + (" For the BARs, check shows where the firmware puts each one and what would work, "
           "when fewer phys-bits or OVMF's window does."
           if check.bars else "")
    )
    return "\n".join(lines)


def _hole(hole: Hole, host: HostView) -> str:
    if hole.devices or hole.group is None:
        return hole.describe()
    members = [device.address for device in host.devices if device.group == hole.group]
    return replace(hole, devices=tuple(members)).describe()


def _dry_run_checked(guest: GuestMap, host: HostView, argv: Sequence[str], devices: list[str],
                     emulator: str, unmodelled: str | None = None) -> Checked:
    """A domain the model cannot answer: its emulator's dry-run map, BARs judged as check's
    (`unmodelled`: an architecture no firmware model applies to: not judged)."""
    guest, bars = dry_run_bars(guest, host, argv, devices, emulator, unmodelled)
    return Checked(guest, host, devices, bars=bars)


def check_domain_file(path: str, *, host_source: str | None, given: Sequence[str] = (),
                      version: str | None = None, verify: bool = False,
                      windows: bool = False, libvirt: str | None = None) -> Checked:
    """`check --libvirt DOMAIN.xml`: the map the domain builds, as the hook translates it."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror}", file=path) from error
    target = libvirt_target(libvirt).version if libvirt else None
    translation = translate_domain(data, path, target)
    windows = windows or translation.domain.windows  # libosinfo's metadata says so too
    dirs = None if version else emulator_dirs(translation.domain)
    if version and not is_modelled(version):
        same_binary(translation.domain.emulator or DEFAULT_EMULATOR.get(translation.domain.arch, ""),
                    version, f"--qemu-version {version} is not modelled")
    version = qemu_version(translation, version)
    devices = merge_devices(translation.devices, list(given))
    host = probe_devices(host_source, devices,
                         {d: (path, f"<hostdev> {d}") for d in translation.devices})
    domain = translation.domain
    emulator = domain.emulator or DEFAULT_EMULATOR.get(domain.arch, "")
    arch = MODEL_ARCH.get(domain.arch, domain.arch)
    if not is_modelled(version) or domain.arch != arch:
        why = (f"QEMU {version} is not modelled" if domain.arch == arch
               else f"architecture {domain.arch} is not modelled")
        guest = dry_run_map(emulator, translation.argv, arch, why)
        return _dry_run_checked(guest, host, with_buses(translation.argv, data, path), devices,
                                emulator, None if domain.arch == arch else why)

    def predicted(changed: Sequence[str]) -> GuestMap:
        return predict(changed, version=version, host_cpu=host.cpu, arch=domain.arch,
                       host=host.platform)

    def again(changed: Sequence[str]) -> GuestMap:  # a fix, with the <shmem>s placed by the model
        return domain_ram_bars(predicted(changed), host, with_buses(changed, data, path), devices,
                               dirs)

    try:
        guest = with_host(host, lambda: predicted(translation.argv))
    except NotModelled as error:  # what the domain's own emulator builds, as the hook does
        guest = dry_run_map(emulator, translation.argv, arch, f"not modelled ({error.message})")
        return _dry_run_checked(guest, host, with_buses(translation.argv, data, path), devices,
                                emulator)
    if verify:
        guest = verified(guest, emulator, translation.argv, domain.arch)

    buses = with_buses(translation.argv, data, path)
    guest = replace(guest, ram_bars=ram_bars_of(buses))  # the <shmem>s
    bars = bar_check(guest, host, buses, devices, dirs, emulator, verify, libvirt)
    guest = place_ram_bars(guest, host, buses, devices, bars)
    return Checked(for_windows(guest, windows), host, devices,
                   verified_fixes(translation.argv, guest, again, host, windows),
                   language="libvirt", bars=bars)


def with_buses(argv: Sequence[str], data: bytes | str, source: str) -> list[str]:
    """The translated arguments with the domain's firmware, root ports and <hostdev> addresses
    (what the BAR placement needs) instead of the plain vfio-pci devices."""
    kept: list[str] = []
    for word in argv:
        if kept and kept[-1] == "-device" and word.startswith("vfio-pci,"):
            kept.pop()
        else:
            kept.append(word)
    return kept + pci_argv(data, source)
