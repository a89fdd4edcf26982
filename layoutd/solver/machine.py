"""The solver's own choices about the guest CPU; QEMU's rules come from `layoutd.qemu`.

The plan's command line names the spec's accelerator (`-accel kvm` by default on x86_64). Under
KVM `host` and `max` take the host CPU's vendor and address bits; under TCG `max` is an AMD CPU
and `host` does not exist.
"""

from layoutd.errors import InputError, QemuRefusal, UnsupportedOption
from layoutd.models.spec import VmSpec
from layoutd.qemu.cpus import DEFAULT_MODEL, VENDOR_ID, GuestCpu, NeedsHostCpu, guest_cpu
from layoutd.qemu.versions import QemuRelease
from layoutd.record import Record
from layoutd.units import MiB

MIN_LOW_RAM = 256 * MiB  # below this, firmware has no room to run


class TargetCpu(Record, kw_only=False):
    """The host CPU facts QEMU reads under KVM (`host`, `max`, host-phys-bits)."""

    vendor: str
    phys_bits: int | None
    kvm_smm: bool | None = None


class PlannedCpu(Record, kw_only=False):
    model: str  # the -cpu model the plan emits
    vendor: str  # amd | intel | arm | other: what QEMU's CPUID says (the AMD 1 TiB rule)
    default_bits: int  # physical address bits QEMU gives it without phys-bits=
    vendor_id: str | None  # `vendor=` the plan sets so QEMU reports the spec's cpu.vendor


def default_cpu_model(arch: str) -> str:
    """QEMU's default on x86; on arm `max`, as QEMU's cortex-a15 is 32-bit (no memory devices)."""
    return "max" if arch == "aarch64" else DEFAULT_MODEL[arch]


def planned_cpu(spec: VmSpec, host: TargetCpu, qemu: QemuRelease,
                mixed_vendors: bool = False) -> PlannedCpu:
    """The guest CPU QEMU `qemu` makes of the spec's cpu.model and cpu.vendor (the QEMU model).

    Under KVM the guest takes each host's vendor: across hosts of different vendors (migration)
    the plan pins the first host's with `vendor=`, so the layout is the same on every host.
    """
    model = spec.cpu.model or default_cpu_model(spec.arch)
    accel = spec.accelerator
    base: dict[str, str] = {}  # what the emitted -cpu adds that decides the bits (emit/argv.py)
    if accel == "kvm" and model in ("host", "max") and spec.cpu.phys_bits:
        base = {"host-phys-bits": "off", "phys-bits": str(spec.cpu.phys_bits)}
    declared: str | None = spec.cpu.vendor
    pin = declared is None and accel == "kvm" and mixed_vendors and host.vendor in VENDOR_ID
    if pin:
        declared = host.vendor
    if declared is not None and spec.arch == "x86_64" and declared in VENDOR_ID:
        own = None if accel == "kvm" and host.vendor not in VENDOR_ID else _ask(
            model, base, host, qemu, spec.arch, accel)
        if own is not None and own.vendor == declared and not pin:
            return PlannedCpu(model, own.vendor, own.phys_bits, None)
        vendor_id = VENDOR_ID[declared]  # also where the host's vendor is unknown
        cpu = _ask(model, {**base, "vendor": vendor_id}, host, qemu, spec.arch, accel)
        return PlannedCpu(model, cpu.vendor, cpu.phys_bits, vendor_id)
    cpu = _ask(model, base, host, qemu, spec.arch, accel)
    if declared is None or declared == cpu.vendor:
        return PlannedCpu(model, cpu.vendor, cpu.phys_bits, None)
    raise InputError(
        f"{declared} is not a vendor QEMU can give an {spec.arch} {model} CPU "
        f"(it reports {cpu.vendor}); x86 CPUs take amd or intel",
        field="cpu.vendor",
    )


def _ask(model: str, props: dict[str, str], host: TargetCpu, qemu: QemuRelease, arch: str,
         accel: str) -> GuestCpu:
    try:
        return guest_cpu(model, props, accel, qemu, host, arch)
    except NeedsHostCpu as error:
        raise InputError(
            f"{error.message.split(' (give')[0]}: no host source given says (a host tree needs "
            "proc/cpuinfo). Under KVM (accel: kvm, the default) the guest CPU takes the host's "
            "vendor; set cpu.vendor (and cpu.phys_bits for host or max), or accel: tcg",
            field="cpu.model") from error
    except (QemuRefusal, UnsupportedOption) as error:
        raise InputError(f"{error.message} (QEMU {qemu.version}, accel {accel})",
                         field="cpu.model") from error
