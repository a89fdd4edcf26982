"""The libvirt-oracle corpus: domains drawn from the memory part of libvirt's schema
(hypothesis), domains in the shape `virt-install --print-xml` writes for GPU VMs, and the
project's own domains (tests/libvirt/data, `plan --format libvirt` of every example spec)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

MiB_K = 1024  # sizes below are in KiB, libvirt's default unit
GiB_K = 1024 * 1024
MACHINES = ("q35", "pc", "pc-q35-7.2", "pc-i440fx-7.2", "pc-q35-6.2", "pc-i440fx-5.0",
            "pc-q35-2.12")
CPU_MODELS = ("qemu64", "EPYC", "Skylake-Client", "Nehalem")
ARM_MACHINES = ("virt", "virt-7.2", "virt-4.2")
ARM_CPU_MODELS = ("cortex-a57", "max", "cortex-a15")
UNITS = (("KiB", 1), ("MiB", 1024), ("GiB", 1024 * 1024), ("b", None), ("KB", None))
VIDEOS = (None, "vga", "virtio", "qxl", "cirrus", "none")


def _size(value_kib: int, unit: str) -> tuple[str, str]:
    """A size in KiB written in `unit` (exactly for binary units, rounded for decimal ones)."""
    factor = dict((u, f) for u, f in UNITS)[unit]
    if unit == "b":
        return str(value_kib * 1024 - 7), "b"  # libvirt rounds up to whole KiB
    if unit == "KB":
        return str(value_kib * 1024 // 1000), "KB"
    assert factor is not None
    return str(max(1, value_kib // factor)), unit


@st.composite
def sizes(draw: st.DrawFn, low_kib: int, high_kib: int) -> tuple[str, str]:
    value = draw(st.one_of(st.integers(low_kib, high_kib),
                           st.integers(low_kib // MiB_K, high_kib // MiB_K).map(lambda m: m * MiB_K)))
    unit = draw(st.sampled_from([u for u, _ in UNITS]))
    return _size(value, unit)


@st.composite
def domains(draw: st.DrawFn, index: int = 0) -> str:
    """One domain XML of type 'qemu' (TCG) exercising libvirt's memory elements."""
    vcpus = draw(st.integers(1, 4))
    hotplug = draw(st.booleans())
    # libvirt 9.0 wants a NUMA cell for memory hotplug on x86: mostly give one
    ncells = draw(st.sampled_from([1, 1, 2, 3, 0] if hotplug else [0, 0, 1, 2, 3]))
    cells = []
    for cell in range(min(ncells, vcpus)):
        value, unit = draw(sizes(64 * MiB_K, 1536 * MiB_K))
        access = draw(st.sampled_from(["", "", " memAccess='shared'"]))
        cells.append(f"<cell id='{cell}' cpus='{cell}' memory='{value}' unit='{unit}'{access}/>")
    slots = draw(st.integers(1, 8))
    shift = draw(st.integers(0, slots - 1))  # explicit slots (index + shift) % slots stay distinct
    count = draw(st.integers(0, min(slots, 4))) if hotplug else 0
    devices = [draw(memory_device(len(cells), (index + shift) % slots)) for index in range(count)]
    if not hotplug and draw(st.integers(0, 9)) == 0:
        devices = [draw(memory_device(len(cells), 0))]  # libvirt refuses: no <maxMemory>
    parts = ["<domain type='qemu'>", f"<name>lt-oracle-{index}</name>"]
    if hotplug:
        parts.append(f"<maxMemory slots='{slots}' unit='GiB'>{draw(st.integers(8, 64))}</maxMemory>")
    if not cells or draw(st.booleans()):
        # as libvirt writes it back: the initial memory plus the devices
        value, unit = draw(sizes(128 * MiB_K, 4 * GiB_K))
        value_kib = int(value) * dict((u, f or 1) for u, f in UNITS)[unit] + sum(
            kib for _, kib in devices)
        parts.append(f"<memory unit='KiB'>{value_kib}</memory>")
        if draw(st.booleans()):
            parts.append(f"<currentMemory unit='KiB'>{value_kib}</currentMemory>")
    devices_xml = [text for text, _ in devices]
    backing = draw(st.sampled_from(["", "", "<memoryBacking><source type='memfd'/></memoryBacking>",
                                    "<memoryBacking><access mode='shared'/></memoryBacking>",
                                    "<memoryBacking><hugepages/></memoryBacking>",
                                    "<memoryBacking><hugepages><page size='2048' unit='KiB'/>"
                                    "</hugepages></memoryBacking>"]))
    parts.append(backing)
    parts.append(f"<vcpu placement='static'>{vcpus}</vcpu>")
    arm = draw(st.integers(0, 4)) == 0
    machine = draw(st.sampled_from(ARM_MACHINES if arm else MACHINES))
    arch = "aarch64" if arm else "x86_64"
    loader = ("<loader readonly='yes' type='pflash'>/usr/share/AAVMF/AAVMF_CODE.fd</loader>"
              if arm and draw(st.booleans()) else "")
    parts.append(f"<os><type arch='{arch}' machine='{machine}'>hvm</type>{loader}</os>")
    features = draw(st.sampled_from(["<acpi/>", "<acpi/>", "", "<acpi/><apic/>"]))
    if arm:  # libvirt: ACPI on arm needs UEFI
        features = "<acpi/>" if loader and draw(st.booleans()) else ""
    parts.append(f"<features>{features}</features>" if features else "")
    parts.append(cpu_element(draw, cells, arm))
    parts.append(f"<devices><emulator>/usr/bin/qemu-system-{arch}</emulator>")
    parts += devices_xml
    video = draw(st.sampled_from(VIDEOS)) if not arm else None
    if video:
        parts.append(f"<video><model type='{video}'/></video>")
        if video not in ("none", "cirrus") and draw(st.integers(0, 3)) == 0:  # a primary after it
            parts.append("<video><model type='vga' primary='yes'/></video>")
    if draw(st.integers(0, 2)) == 0:  # without <video>, libvirt adds its default one
        parts.append("<graphics type='vnc' port='-1' autoport='yes'/>")
    if not arm and draw(st.integers(0, 4)) == 0:
        root = "pcie-root" if "q35" in machine else "pci-root"
        hole = draw(st.sampled_from([2 * GiB_K, 64 * GiB_K, 1024 * GiB_K]))
        parts.append(f"<controller type='pci' index='0' model='{root}'>"
                     f"<pcihole64 unit='KiB'>{hole}</pcihole64></controller>")
    parts.append("</devices></domain>")
    return "\n".join(part for part in parts if part)


def cpu_element(draw: st.DrawFn, cells: list[str], arm: bool = False) -> str:
    model = draw(st.sampled_from([None, *(ARM_CPU_MODELS if arm else CPU_MODELS)]))
    inner = f"<model fallback='allow'>{model}</model>" if model else ""
    if not arm and draw(st.integers(0, 3)) == 0:
        inner += f"<maxphysaddr mode='emulate' bits='{draw(st.integers(39, 46))}'/>"
    if cells:
        inner += "<numa>" + "".join(cells) + "</numa>"
    if not arm and not model and draw(st.integers(0, 5)) == 0:  # TCG: libvirt expands it
        return f"<cpu mode='host-model' check='none'>{inner}</cpu>"
    if not inner:
        return ""
    return f"<cpu mode='custom' check='none'>{inner}</cpu>"


@st.composite
def memory_device(draw: st.DrawFn, ncells: int, slot: int) -> tuple[str, int]:
    """(XML, size in KiB); `slot` if it gets an explicit one."""
    model = draw(st.sampled_from(["dimm", "dimm", "nvdimm", "virtio-mem", "virtio-pmem"]))
    kib = draw(st.one_of(st.integers(128 * MiB_K, 2 * GiB_K),
                         st.integers(128, 2048).map(lambda m: m * MiB_K)))
    value, unit = str(kib), "KiB"
    node = f"<node>{draw(st.integers(0, ncells - 1))}</node>" if ncells else ""
    target = f"<size unit='{unit}'>{value}</size>{node}"
    source = ""
    address = ""
    base = draw(st.sampled_from([None, 0x100000000, 0x140000000, 0x180000000, 0x200000000,
                                 0x280000000]))
    if model in ("dimm", "nvdimm") and draw(st.booleans()):
        address = (f"<address type='dimm' slot='{slot}'"
                   + (f" base='{base:#x}'" if base else "") + "/>")
    if model == "nvdimm":
        source = "<source><path>/tmp/nvdimm</path>"
        if draw(st.booleans()):
            source += "<alignsize unit='KiB'>2048</alignsize>"
        if draw(st.integers(0, 3)) == 0:
            source += "<pmem/>"
        source += "</source>"
        if draw(st.booleans()):
            target += f"<label><size unit='KiB'>{draw(st.sampled_from([128, 256, 2048]))}</size></label>"
    if model == "virtio-mem":
        target += "<block unit='KiB'>2048</block>"
        if draw(st.booleans()):
            target += f"<requested unit='MiB'>{draw(st.sampled_from([0, 128, 256]))}</requested>"
    if model == "virtio-pmem":
        source = "<source><path>/tmp/virtio_pmem</path></source>"
        target = f"<size unit='{unit}'>{value}</size>"
    if model in ("virtio-mem", "virtio-pmem") and base:
        target += f"<address base='{base:#x}'/>"
    if model == "dimm" and draw(st.integers(0, 3)) == 0:
        source = "<source><pagesize unit='KiB'>2048</pagesize></source>"
    access = " access='shared'" if model in ("virtio-pmem", "nvdimm") else ""
    return (f"<memory model='{model}'{access}>{source}<target>{target}</target>{address}</memory>",
            kib)


def gpu_domain(name: str, machine: str, memory_gib: int, cpus: int, firmware: bool,
               extra_cpu: str = "", features: str = "<acpi/><apic/>",
               devices: str = "") -> str:
    """A domain as `virt-install --print-xml` writes it for a GPU VM (its element order and
    defaults: q35, host-passthrough, UEFI, a VGA-less console, one <hostdev>)."""
    loader = ("<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"
              if firmware else "")
    return f"""<domain type='kvm'>
  <name>{name}</name>
  <memory unit='KiB'>{memory_gib * GiB_K}</memory>
  <currentMemory unit='KiB'>{memory_gib * GiB_K}</currentMemory>
  <vcpu placement='static'>{cpus}</vcpu>
  <os>
    <type arch='x86_64' machine='{machine}'>hvm</type>
    {loader}
    <boot dev='hd'/>
  </os>
  <features>
    {features}
    <vmport state='off'/>
  </features>
  <cpu mode='host-passthrough' check='none' migratable='on'>{extra_cpu}</cpu>
  <clock offset='utc'>
    <timer name='rtc' tickpolicy='catchup'/>
    <timer name='pit' tickpolicy='delay'/>
    <timer name='hpet' present='no'/>
  </clock>
  <pm><suspend-to-mem enabled='no'/><suspend-to-disk enabled='no'/></pm>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='qemu-xhci' ports='15'/>
    <controller type='pci' model='{"pcie-root" if "q35" in machine else "pci-root"}'/>
    <interface type='network'><source network='default'/><model type='virtio'/></interface>
    <console type='pty'/>
    <video><model type='virtio' heads='1' primary='yes'/></video>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x2a' slot='0x00' function='0x0'/></source>
    </hostdev>
    {devices}
    <memballoon model='virtio'/>
  </devices>
</domain>
"""


def gpu_domains() -> dict[str, str]:
    """Typical GPU VMs: a workstation, a large AMD host VM on an old machine type, one with
    1 GiB hugepages and NUMA, one with a 48-bit address limit and DIMM hotplug."""
    numa = ("<numa><cell id='0' cpus='0-7' memory='64' unit='GiB'/>"
            "<cell id='1' cpus='8-15' memory='64' unit='GiB'/></numa>")
    dimm = ("<memory model='dimm'><target><size unit='GiB'>16</size><node>0</node></target>"
            "</memory>")
    return {
        "gpu-workstation": gpu_domain("gpu-ws", "pc-q35-7.2", 32, 8, True),
        "gpu-old-type": gpu_domain("gpu-old", "pc-q35-6.2", 1100, 32, True),
        "gpu-numa-hugepages": gpu_domain("gpu-numa", "q35", 128, 16, True, numa).replace(
            "<vcpu", "<memoryBacking><hugepages><page size='1048576' unit='KiB'/></hugepages>"
            "</memoryBacking>\n  <vcpu"),
        "gpu-hotplug": gpu_domain("gpu-hp", "q35", 48, 4, False,
                                  "<maxphysaddr mode='emulate' bits='48'/><numa><cell id='0' "
                                  "cpus='0-3' memory='32' unit='GiB'/></numa>",
                                  devices=dimm).replace(
            "<memory unit", "<maxMemory slots='4' unit='GiB'>256</maxMemory>\n  <memory unit"),
        "gpu-no-acpi": gpu_domain("gpu-noacpi", "pc-i440fx-7.2", 8, 2, False, features=""),
    }


VIRT_INSTALL = {
    # name: virt-install options (each also gets --print-xml, --disk none, --network none,
    # --graphics none, --osinfo linux2022 and a name)
    "vi-gpu-workstation": ["--virt-type", "kvm", "--machine", "q35", "--memory", "32768",
                           "--vcpus", "8", "--cpu", "host-passthrough", "--boot", "uefi"],
    "vi-numa-hugepages": ["--virt-type", "kvm", "--machine", "q35", "--memory", "131072",
                          "--vcpus", "16", "--memorybacking",
                          "hugepages.page0.size=1,hugepages.page0.unit=G",
                          "--cpu", "host-passthrough,numa.cell0.id=0,numa.cell0.cpus=0-7,"
                          "numa.cell0.memory=67108864,numa.cell1.id=1,numa.cell1.cpus=8-15,"
                          "numa.cell1.memory=67108864", "--boot", "uefi"],
    "vi-dimm-hotplug": ["--virt-type", "qemu", "--machine", "q35", "--memory",
                        "memory=4096,maxMemory=65536,maxMemory.slots=4", "--vcpus", "2",
                        "--cpu", "EPYC,numa.cell0.id=0,numa.cell0.cpus=0-1,"
                        "numa.cell0.memory=3145728",
                        "--memdev", "dimm,target.size=1024,target.node=0"],
    "vi-old-type-tcg": ["--virt-type", "qemu", "--machine", "pc-q35-6.2", "--memory", "921600",
                        "--vcpus", "2", "--cpu", "EPYC"],
    "vi-i440fx-no-acpi": ["--virt-type", "qemu", "--machine", "pc", "--memory", "8000",
                          "--vcpus", "2", "--features", "acpi=off", "--graphics", "vnc"],
}


def virt_install(uri: str, name: str) -> str:
    """What `virt-install --print-xml` writes for VIRT_INSTALL[name], asked of the daemon at
    `uri` (virt-install reads its capabilities; nothing is defined)."""
    import subprocess

    options = VIRT_INSTALL[name]
    defaults = [] if "--graphics" in options else ["--graphics", "none"]
    result = subprocess.run(["virt-install", "--connect", uri, "--print-xml", "--name", name,
                             "--osinfo", "linux2022", "--disk", "none", "--network", "none",
                             *defaults, *options], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def project_domains(root: Path) -> dict[str, str]:
    """The domains the project ships or writes: tests/libvirt/data/*.xml."""
    data = root / "tests" / "libvirt" / "data"
    return {path.stem: path.read_text() for path in sorted(data.glob("*.xml"))}
