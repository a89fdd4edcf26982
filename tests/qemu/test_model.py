"""The model without starting QEMU: argv parsing, what is refused as unmodelled, host CPUs."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from layoutd.errors import InputError, QemuRefusal, UnsupportedOption
from layoutd.qemu import predict
from layoutd.qemu.cpus import NeedsHostCpu
from layoutd.qemu.options import keyval, split_commas

GiB = 1 << 30
TiB = 1 << 40


@dataclass(frozen=True)
class FakeCpu:
    vendor: str
    phys_bits: int | None
    kvm_smm: bool | None = None


def test_comma_escape_and_implied_key() -> None:
    assert split_commas("a,,b,c") == ["a,b", "c"]
    assert keyval("pc-dimm,id=d0,memdev=m0", "driver", "-device") == {
        "driver": "pc-dimm", "id": "d0", "memdev": "m0"}


def test_json_device_is_the_same_as_keyval() -> None:
    base = ["-machine", "q35", "-m", "2G,slots=2,maxmem=4G", "-nodefaults",
            "-object", "memory-backend-ram,id=m0,size=1G"]
    plain = predict([*base, "-device", "pc-dimm,id=d0,memdev=m0"], version="7.2")
    as_json = predict([*base, "-device", '{"driver": "pc-dimm", "id": "d0", "memdev": "m0"}'],
                      version="7.2")
    assert plain.layout == as_json.layout
    assert plain.layout[-1].kind == "dimm" and plain.layout[-1].id == "d0"


def test_options_without_memory_are_ignored() -> None:
    quiet = predict(["-machine", "q35", "-m", "4G", "-nodefaults"], version="10.0")
    noisy = predict(["-name", "vm1", "-machine", "q35", "-smp", "8,sockets=2", "-m", "4G",
                     "-nodefaults", "-display", "none", "-serial", "mon:stdio", "-nographic",
                     "-qmp", "unix:/tmp/q,server=on,wait=off", "-device", "virtio-iommu-pci",
                     "-device", "vfio-pci,host=41:00.0", "-device", "intel-iommu,aw-bits=48",
                     "-bios", "/usr/share/seabios/bios.bin", "-S"], version="10.0")
    assert noisy.layout == quiet.layout
    assert noisy.vfio_devices == ("0000:41:00.0",)


def test_repeated_machine_options_merge() -> None:
    merged = predict(["-machine", "q35", "-machine", "max-ram-below-4g=1G", "-m", "4G",
                      "-nodefaults"], version="7.2")
    assert merged.machine == "pc-q35-7.2"
    assert merged.layout[1].end == GiB - 1


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["-readconfig", "vm.cfg"], "-readconfig"),
        (["-machine", "q35,cxl-fmw.0.frob=1"], "cxl-fmw.0.frob"),
        (["-machine", "pc-q35-2.4"], "pc-q35-2.4"),
        (["-machine", "microvm"], "microvm"),
        (["-cpu", "qemu64,lm=off"], "lm=off"),
        (["-object", "memory-backend-epc,id=e,size=1G"], "memory-backend-epc"),
        (["-global", "pc-dimm.addr=0x100000000"], "pc-dimm.addr"),
        (["-object", "memory-backend-ram,id=m,size=1G,frob=1"], "frob"),
    ],
)
def test_unmodelled_memory_options_are_named(argv: list[str], needle: str) -> None:
    with pytest.raises(UnsupportedOption) as error:
        predict(["-machine", "q35", *argv] if argv[0] != "-machine" else argv, version="7.2")
    assert needle in error.value.message


def test_unknown_cpu_model_is_refused_as_qemu_refuses_it() -> None:
    with pytest.raises(QemuRefusal, match="unable to find CPU model 'Frobozz'"):
        predict(["-cpu", "Frobozz"], version="7.2")


def test_unknown_option_is_bad_input() -> None:
    with pytest.raises(InputError, match="-frobnicate"):
        predict(["-frobnicate"], version="7.2")


def test_unknown_version_is_refused() -> None:
    with pytest.raises(InputError, match=r"8\.2"):
        predict(["-m", "1G"], version="8.2")


def test_host_phys_bits_under_kvm_take_the_host_bits() -> None:
    argv = ["-accel", "kvm", "-machine", "q35", "-cpu", "EPYC,host-phys-bits=on", "-m", "1100G"]
    guest = predict(argv, version="10.0", host_cpu=FakeCpu("amd", 48))
    assert guest.phys_bits == 48
    assert guest.layout[-1].start == 1 * TiB  # the AMD rule moved high RAM
    with pytest.raises(NeedsHostCpu):
        predict(argv, version="10.0")
    limited = predict([*argv[:5], "EPYC,host-phys-bits=on,host-phys-bits-limit=40", "-m", "8G"],
                      version="10.0", host_cpu=FakeCpu("amd", 48))
    assert limited.phys_bits == 40


def test_cpu_host_takes_the_host_vendor() -> None:
    argv = ["-enable-kvm", "-machine", "q35", "-cpu", "host", "-m", "1100G"]
    intel = predict(argv, version="7.2", host_cpu=FakeCpu("intel", 46))
    amd = predict(argv, version="7.2", host_cpu=FakeCpu("amd", 48))
    assert (intel.cpu_vendor, intel.layout[-1].start) == ("intel", 4 * GiB)
    assert (amd.cpu_vendor, amd.layout[-1].start) == ("amd", 1 * TiB)
    with pytest.raises(QemuRefusal, match="phys-bits too low"):
        predict(argv, version="7.2", host_cpu=FakeCpu("amd", 40))


def test_kvm_models_take_the_host_vendor_and_hygon_is_not_amd() -> None:
    """Under KVM QEMU advertises the host's vendor for every model (EPYC on Intel is Intel); a
    Hygon host's guests are not AMD for the 1 TiB rule, so their RAM is not moved."""
    from layoutd.host.sysfs import parse_cpuinfo

    argv = ["-accel", "kvm", "-machine", "q35", "-cpu", "EPYC,phys-bits=48", "-m", "1100G"]
    on_intel = predict(argv, version="10.0", host_cpu=FakeCpu("intel", 46))
    assert (on_intel.cpu_vendor, on_intel.layout[-1].start) == ("intel", 4 * GiB)
    hygon = parse_cpuinfo("vendor_id\t: HygonGenuine\naddress sizes\t: 48 bits physical, 48 bits virtual\n")
    assert hygon.vendor == "hygon"
    on_hygon = predict(argv, version="10.0", host_cpu=hygon)
    assert (on_hygon.cpu_vendor, on_hygon.layout[-1].start) == ("other", 4 * GiB)
    named = predict([*argv[:5], "EPYC,vendor=AuthenticAMD,phys-bits=48", "-m", "1100G"],
                    version="10.0")  # vendor= needs no host
    assert named.layout[-1].start == 1 * TiB


def test_host_phys_bits_is_ignored_under_tcg() -> None:
    guest = predict(["-cpu", "EPYC,host-phys-bits=on", "-m", "1G"], version="7.2",
                    host_cpu=FakeCpu("amd", 48))
    assert guest.phys_bits == 40


def test_numa_nodes_name_the_layout() -> None:
    guest = predict(["-machine", "q35", "-m", "4G", "-nodefaults",
                     "-object", "memory-backend-ram,id=a,size=1G",
                     "-object", "memory-backend-ram,id=b,size=3G",
                     "-numa", "node,memdev=a", "-numa", "node,memdev=b"], version="7.2")
    assert [(r.id, r.node) for r in guest.layout] == [("a", 0), ("a", 0), ("b", 1), ("b", 1)]


@dataclass(frozen=True)
class Mount:
    path: str
    page_size: int


@dataclass(frozen=True)
class Platform:
    """The host facts QEMU's memory backends take (HostPlatform's shape)."""

    arch: str | None
    hugepage_size: int | None = None
    hugetlbfs: tuple[Mount, ...] = ()


def test_backend_alignment_comes_from_the_host_facts() -> None:
    """memory-backend-ram aligns to QEMU_VMALLOC_ALIGN, 2 MiB on Linux aarch64 as on x86_64,
    whatever machine layoutd runs on; a mem-path inside a hugetlbfs mount takes its page size."""
    dimm = ["-machine", "q35", "-m", "2G,slots=2,maxmem=8G", "-object",
            "memory-backend-ram,id=m0,size=1G", "-device", "pc-dimm,id=d0,memdev=m0,addr=0x100100000"]
    for arch in ("aarch64", "x86_64", None):
        with pytest.raises(QemuRefusal, match="address must be aligned to 0x200000"):
            predict(dimm, version="10.0", host=Platform(arch))
    quiet = predict(dimm, version="10.0", host=Platform("sparc64"))  # the base page there
    assert quiet.memory_devices[0].addr == 0x100100000
    file = ["-machine", "q35", "-m", "2G,slots=2,maxmem=8G", "-object",
            "memory-backend-file,id=m0,size=1G,mem-path=/dev/hugepages1G/vm",
            "-device", "pc-dimm,id=d0,memdev=m0,addr=0x100200000"]
    assert predict(file, version="10.0", host=Platform("x86_64")).memory_devices[0].addr \
        == 0x100200000  # no hugetlbfs there: 4 KiB pages
    huge = Platform("x86_64", 2 << 20, (Mount("/dev/hugepages1G", GiB),))
    with pytest.raises(QemuRefusal, match="address must be aligned to 0x40000000"):
        predict(file, version="10.0", host=huge)


def test_an_aarch64_host_source_records_its_facts(tmp_path: Path) -> None:
    """A host tree says its architecture, hugepage sizes and hugetlbfs mounts; `check` models
    QEMU on that host, not on the machine layoutd runs on."""
    import shutil

    from layoutd.host import probe_host
    from tests.conftest import EXAMPLES, run_layoutd

    tree = tmp_path / "host"
    shutil.copytree(EXAMPLES / "hosts" / "arm-hisilicon-d05", tree, symlinks=True)
    (tree / "proc" / "meminfo").write_text("MemTotal: 1 kB\nHugepagesize:     524288 kB\n")
    (tree / "proc" / "mounts").write_text(
        "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=512M 0 0\n")
    platform = probe_host(str(tree)).platform
    assert (platform.arch, platform.hugepage_size) == ("aarch64", 512 << 20)
    assert [(m.path, m.page_size) for m in platform.hugetlbfs] == [("/dev/hugepages", 512 << 20)]
    argv = ["--", "qemu-system-aarch64", "-machine", "virt", "-cpu", "max", "-bios", "x.fd",
            "-m", "2G,slots=2,maxmem=8G", "-object",
            "memory-backend-file,id=m0,size=1G,mem-path=/dev/hugepages/vm",
            "-device", "pc-dimm,id=d0,memdev=m0,addr=0x190000000"]
    result = run_layoutd("check", "--host", str(tree), "--qemu-version", "10.0", *argv)
    assert result.returncode == 2 and "aligned to 0x20000000" in result.stderr, result.stderr
