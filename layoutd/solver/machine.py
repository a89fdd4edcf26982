"""The fixed facts of each machine type that the solver builds on (see reference/qemu-layout.md)."""

from layoutd.units import GiB, MiB, TiB

FOUR_GIB = 4 * GiB
AMD_HT_START = 0xFD00000000
AMD_ABOVE_1TB = 1 * TiB
ARM_RAM_START = 1 * GiB
ARM_HIGH_IO_FLOOR = 256 * GiB
SLOT_ALIGN = 1 * GiB  # device memory grows by this per slot; its base is aligned to it
TCG_DEFAULT_PHYS_BITS = 40
MAX_SLOTS = 256
ROM_WINDOW = (0xC0000, 0xFFFFF)  # x86: option ROMs and BIOS, mapped as ROM, not RAM
VGA_AND_ROM_WINDOW = (0xA0000, 0xFFFFF)  # with QEMU's default VGA, 0xa0000-0xbffff is not RAM either
MIN_LOW_RAM = 256 * MiB  # below this, firmware has no room to run
HOLE64_DEFAULT = {"q35": 32 * GiB, "pc": 2 * GiB}
HOLE64_GLOBAL = {"q35": "q35-pcihost", "pc": "i440FX-pcihost"}
BOOT_REGION = {"q35": "pc.ram", "pc": "pc.ram", "virt": "mach-virt.ram"}

_AMD_MODELS = ("epyc", "opteron", "phenom", "athlon", "qemu64", "qemu32", "dhyana")
_INTEL_MODELS = (
    "skylake",
    "cascadelake",
    "cooperlake",
    "icelake",
    "sapphirerapids",
    "graniterapids",
    "haswell",
    "broadwell",
    "sandybridge",
    "ivybridge",
    "nehalem",
    "westmere",
    "penryn",
    "conroe",
    "core2duo",
    "coreduo",
    "kvm32",
    "kvm64",
    "n270",
    "pentium",
    "486",
    "denverton",
    "snowridge",
    "knightsmill",
    "sierraforest",
    "clearwaterforest",
)


def default_low(family: str, ram: int) -> int:
    """QEMU's own split: how much boot RAM stays below 4 GiB before max-ram-below-4g."""
    if family == "q35":
        return 0x80000000 if ram >= 0xB0000000 else 0xB0000000
    return 0xC0000000 if ram >= 0xE0000000 else 0xE0000000


def low_size(family: str, ram: int, max_below_4g: int | None) -> int:
    lowmem = min(default_low(family, ram), max_below_4g or FOUR_GIB)
    return min(ram, lowmem)


def guest_vendor(model: str, declared: str | None, host_vendor: str) -> str:
    """The vendor QEMU's CPUID reports for a -cpu model (qemu64 is AMD; host/max follow the host)."""
    if declared:
        return declared
    name = model.lower().split(",")[0]
    if name in ("host", "max"):
        return host_vendor
    if name.startswith(_AMD_MODELS):
        return "amd"
    if name.startswith(_INTEL_MODELS):
        return "intel"
    if name.startswith(("cortex", "neoverse", "a64fx")):
        return "arm"
    return "unknown"


def default_cpu_model(arch: str) -> str:
    return "max" if arch == "aarch64" else "qemu64"
