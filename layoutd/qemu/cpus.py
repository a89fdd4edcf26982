"""Guest CPU models: vendor (the AMD 1 TiB rule) and physical address bits.

x86 (target/i386/cpu.c): phys-bits is 40 unless `phys-bits=` is given, or `host-phys-bits=on`
under KVM (`-cpu host` and `-cpu max` under KVM imply it). Under TCG host-phys-bits is ignored
and `host` does not exist. Under TCG the vendor is the model's (qemu64 and max AMD, kvm64
Intel); under KVM every model takes the host CPU's vendor (x86_cpu_load_model(): "Normally we
advertise the actual CPU vendor"), so `-cpu EPYC` on an Intel host is Intel. `vendor=` wins.
arm (target/arm/cpu64.c): the PA size is ID_AA64MMFR0.PARange of the model (arm_pamax()).
"""

from collections.abc import Mapping
from typing import Protocol

from layoutd.errors import InputError, QemuRefusal, UnsupportedOption
from layoutd.qemu.options import parse_bool, parse_int
from layoutd.qemu.versions import QemuRelease
from layoutd.record import Record

DEFAULT_PHYS_BITS = 40  # TCG_PHYS_ADDR_BITS, also the default under KVM without host-phys-bits
MAX_PHYS_BITS = 52

AMD_PREFIXES = ("EPYC", "Opteron_G", "phenom", "qemu64")
INTEL_PREFIXES = (
    "kvm64", "core2duo", "Conroe", "Penryn", "Nehalem", "Westmere", "SandyBridge", "IvyBridge",
    "Haswell", "Broadwell", "Skylake-Client", "Skylake-Server", "Cascadelake-Server",
    "Cooperlake", "Icelake-Server", "SapphireRapids", "GraniteRapids", "SierraForest",
    "ClearwaterForest", "DiamondRapids", "Snowridge", "Denverton", "KnightsMill",
)
OTHER_PREFIXES = ("Dhyana", "YongFeng")  # Hygon and Zhaoxin: not AMD for QEMU's rule
# 32-bit models (no long mode): (PSE36, PAE) by default, read from each binary with qom-get
# phys-bits and pse36=/pae= (target/i386/cpu.c builtin_x86_defs); athlon is AMD, base has no vendor
THIRTY_TWO_BIT = {
    "pentium": (False, False), "486": (False, False), "base": (False, False),
    "pentium2": (True, True), "pentium3": (True, True), "athlon": (True, True),
    "kvm32": (True, True), "coreduo": (False, True), "n270": (False, True), "qemu32": (False, True),
}
VENDOR_ID = {"amd": "AuthenticAMD", "intel": "GenuineIntel"}  # the `vendor=` property's values
VENDOR_IDS = {name: vendor for vendor, name in VENDOR_ID.items()}
DEFAULT_MODEL = {"x86_64": "qemu64", "aarch64": "cortex-a15"}  # without -cpu

ARM_PA_BITS = {
    "max": 52, "cortex-a57": 44, "cortex-a72": 44, "cortex-a53": 40, "cortex-a35": 40,
    "cortex-a55": 40, "cortex-a76": 40, "cortex-a15": 40, "cortex-a7": 40, "a64fx": 40,
    "neoverse-n1": 48, "neoverse-v1": 48, "neoverse-n2": 48, "cortex-a710": 40,
}
ARM_32BIT = ("cortex-a15", "cortex-a7")


class NeedsHostCpu(InputError):
    """The guest CPU takes something from the host CPU, and no host CPU was given."""


class HostCpu(Protocol):
    @property
    def vendor(self) -> str: ...

    @property
    def phys_bits(self) -> int | None: ...

    @property
    def kvm_smm(self) -> bool | None: ...  # KVM_CAP_X86_SMM; None: unknown


class GuestCpu(Record, kw_only=False):
    model: str
    vendor: str  # amd | intel | arm | other
    phys_bits: int
    aarch64: bool = True
    long_mode: bool = True  # x86: False for the 32-bit models (pentium, qemu32, ...)


def guest_cpu(model: str | None, props: Mapping[str, str], accel: str, qemu: QemuRelease,
              host: HostCpu | None, arch: str) -> GuestCpu:
    """The guest CPU QEMU `qemu` makes of `-cpu MODEL,PROPS` under `accel` (tcg | kvm).

    x86: vendor (from the model, the host under KVM, or `vendor=`) and phys-bits; aarch64: the
    PA size (arm takes no properties that change it). Raises QemuRefusal, UnsupportedOption.
    """
    if arch == "aarch64":
        return arm_cpu(model, accel, qemu)
    return x86_cpu(model, props, accel, qemu, host)


def x86_cpu(model: str | None, props: Mapping[str, str], accel: str, qemu: QemuRelease,
            host: HostCpu | None) -> GuestCpu:
    name = model or DEFAULT_MODEL["x86_64"]
    kvm = accel == "kvm"
    declared = VENDOR_IDS.get(props["vendor"], "other") if "vendor" in props else None
    vendor, host_bits_default = _x86_vendor(name, kvm, qemu, host, declared)
    base = _base_name(name)
    long_mode = parse_bool(props.get("lm", "off" if base in THIRTY_TWO_BIT else "on"), "-cpu lm")
    if base in THIRTY_TWO_BIT and not long_mode:
        return GuestCpu(name, vendor, _x86_32bit_phys_bits(base, props, qemu), long_mode=False)
    if not long_mode:
        raise UnsupportedOption(f"-cpu {name},lm=off: a 64-bit model without long mode is not "
                                "modelled", field="qemu argv")
    return GuestCpu(name, vendor, _x86_phys_bits(props, kvm, host_bits_default, host, qemu))


def _base_name(name: str) -> str:
    return name.split("-v")[0] if "-v" in name else name


def _x86_32bit_phys_bits(base: str, props: Mapping[str, str], qemu: QemuRelease) -> int:
    """x86_cpu_realizefn without long mode: 36 bits with PSE36 (or PAE where the row says
    pae_gives_36_bits), else 32; phys-bits= is refused."""
    if "phys-bits" in props:
        raise QemuRefusal("phys-bits is not user-configurable in 32 bit")
    pse36, pae = THIRTY_TWO_BIT[base]
    pse36 = parse_bool(props.get("pse36", "on" if pse36 else "off"), "-cpu pse36")
    pae = parse_bool(props.get("pae", "on" if pae else "off"), "-cpu pae")
    return 36 if pse36 or (pae and qemu.pae_gives_36_bits) else 32


def _x86_vendor(name: str, kvm: bool, qemu: QemuRelease, host: HostCpu | None,
                declared: str | None) -> tuple[str, bool]:
    """(vendor, host-phys-bits default) of a model. `declared` (vendor=) wins, and then the
    host is not asked; otherwise KVM gives the host's vendor, TCG the model's."""
    if name == "host" and not kvm:
        raise QemuRefusal("CPU model 'host' requires KVM or HVF")
    own = "amd" if name in ("host", "max") else _model_vendor(name, qemu)
    vendor = declared or (_host_vendor(host, name) if kvm else own)
    return vendor, kvm and name in ("host", "max")


def _model_vendor(name: str, qemu: QemuRelease) -> str:
    """The vendor in a named model's definition (what TCG reports)."""
    if not qemu.knows_cpu_model(name, "x86_64"):
        raise QemuRefusal(f"unable to find CPU model '{name}'")
    base = _base_name(name)
    if base in THIRTY_TWO_BIT:
        return {"athlon": "amd", "base": "other"}.get(base, "intel")
    for prefixes, vendor in ((AMD_PREFIXES, "amd"), (INTEL_PREFIXES, "intel"),
                             (OTHER_PREFIXES, "other")):
        if base.startswith(prefixes):
            return vendor
    raise UnsupportedOption(f"-cpu {name}: unknown CPU model, its vendor is not modelled",
                            field="qemu argv")


def _host_vendor(host: HostCpu | None, name: str) -> str:
    """The vendor a KVM guest reports: the host's (Hygon counts as other, as in QEMU)."""
    if host is not None and host.vendor == "hygon":
        return "other"
    if host is None or host.vendor not in ("amd", "intel"):
        raise NeedsHostCpu(f"-cpu {name} under KVM takes the host CPU's vendor, and the host's is "
                           "unknown (give a --host source with /proc/cpuinfo, or vendor=)")
    return host.vendor


def _x86_phys_bits(props: Mapping[str, str], kvm: bool, host_bits: bool,
                   host: HostCpu | None, qemu: QemuRelease) -> int:
    bits = parse_int(props["phys-bits"], "-cpu phys-bits") if "phys-bits" in props else 0
    if bits and bits < 32 and qemu.phys_bits_unbounded:
        raise QemuRefusal(f"phys-bits should be at least 32 (but is {bits})")
    if bits and not 32 <= bits <= MAX_PHYS_BITS and not qemu.phys_bits_unbounded:
        raise QemuRefusal(f"phys-bits should be between 32 and {MAX_PHYS_BITS}  (but is {bits})")
    use_host = parse_bool(props.get("host-phys-bits", "on" if host_bits else "off"),
                          "host-phys-bits")
    if kvm and use_host:
        if host is None or not host.phys_bits:
            raise NeedsHostCpu("host-phys-bits=on takes the host's physical address bits, and the "
                               "host's are unknown (give a --host source with /proc/cpuinfo, or "
                               "host-phys-bits=off,phys-bits=)")
        bits = host.phys_bits
        limit = parse_int(props.get("host-phys-bits-limit", "0"), "-cpu host-phys-bits-limit")
        if limit and bits > limit:
            bits = limit
    return bits or DEFAULT_PHYS_BITS


def address_limit(phys_bits: int) -> int:
    """((hwaddr)1 << phys_bits) - 1 as the x86_64 C code computes it: the shift count is taken
    modulo 64 (phys-bits=64 gives 0, 65 gives 1)."""
    return ((1 << (phys_bits & 63)) - 1) & ((1 << 64) - 1)


def arm_cpu(model: str | None, accel: str, qemu: QemuRelease | None = None) -> GuestCpu:
    name = model or DEFAULT_MODEL["aarch64"]
    if qemu is not None and not qemu.knows_cpu_model(name, "aarch64"):
        raise QemuRefusal(f"unable to find CPU model '{name}'")
    if accel == "kvm":
        raise UnsupportedOption("-accel kvm on arm: the IPA size of the host is not modelled",
                                field="qemu argv")
    if name not in ARM_PA_BITS:
        raise UnsupportedOption(f"-cpu {name}: its physical address size is not modelled",
                                field="qemu argv")
    return GuestCpu(name, "arm", ARM_PA_BITS[name], aarch64=name not in ARM_32BIT)
