# ruff: noqa: E501  (command lines read best one per line)
"""The dry run against real QEMU 7.2, 10.0 and 11.1: it builds what the VM's own command line
builds, with nothing of the host's memory, disks or devices."""

import shlex
from pathlib import Path

import pytest

from layoutd.dryrun import dry_run, safe_command
from layoutd.qemu import predict
from layoutd.qemu.versions import is_modelled as modelled
from tests.support.qemu_runner import Refused, line_args, qemu_binary, real_map, wrapper

pytestmark = pytest.mark.qemu

ALL = ("7.2", "10.0", "11.1")

# Lines safe to start as they are: the dry run must build exactly what they build.
SAME = [
    ("x86_64", "-machine q35 -cpu EPYC,phys-bits=48 -m 1100G"),
    ("x86_64", "-machine q35 -m 6G,slots=4,maxmem=32G -object memory-backend-ram,id=m0,size=1G,prealloc=on -object memory-backend-memfd,id=m1,size=3M -device pc-dimm,id=d0,memdev=m0 -device pc-dimm,id=d1,memdev=m1"),
    ("x86_64", "-machine pc -m 4G -object memory-backend-ram,id=n0,size=1G -object memory-backend-ram,id=n1,size=3G -numa node,memdev=n0 -numa node,memdev=n1 -vga std"),
    ("x86_64", "-machine q35 -m 2G,slots=2,maxmem=8G -object memory-backend-file,id=f0,size=1G,mem-path={tmp}/f0,align=1G -object memory-backend-ram,id=v0,size=1G -device pc-dimm,id=d0,memdev=f0 -device virtio-mem-pci,id=vm0,memdev=v0,requested-size=0"),
    ("x86_64", "-machine q35,memory-backend=mb -m 3G -object memory-backend-ram,id=mb,size=3G -device VGA"),
    ("aarch64", "-machine virt -cpu max -m 2G,slots=2,maxmem=8G {fw} -object memory-backend-ram,id=m0,size=1G -device pc-dimm,id=d0,memdev=m0"),
]

# Lines that take the host's things (devices, disks, NICs, chardevs, hugepages, prealloc):
# unsafe to start; the dry run must still build the map the model predicts.
HOSTILE = [
    "-machine q35 -cpu EPYC,phys-bits=48 -m 2T -mem-prealloc -device vfio-pci,host=0000:41:00.0 -drive file=/nonexistent.qcow2,if=virtio -netdev tap,id=n0,ifname=layoutd-none -device virtio-net-pci,netdev=n0 -chardev socket,id=c0,path=/nonexistent.sock -serial chardev:c0",
    "-machine q35 -m 4G,slots=2,maxmem=8G -object memory-backend-file,id=h0,size=2G,mem-path=/nonexistent/hugepages,prealloc=on,share=on -device pc-dimm,id=d0,memdev=h0 -device vfio-pci,host=0000:01:00.0,id=gpu",
    "-machine q35 -cpu qemu64,phys-bits=48 -m 4G,slots=2,maxmem=1100G -overcommit mem-lock=on -object memory-backend-ram,id=v0,size=1T -device virtio-mem-pci,id=vm0,memdev=v0,requested-size=1T,prealloc=on",
]



@pytest.mark.parametrize("version", ALL)
@pytest.mark.parametrize(("arch", "line"), SAME)
def test_dry_run_builds_what_the_line_builds(version: str, arch: str, line: str, tmp_path: Path) -> None:
    binary = qemu_binary(version, arch)
    args = line_args(line, tmp_path)
    real = real_map(binary, args)
    assert not isinstance(real, Refused), real.stderr
    run = dry_run(str(wrapper(binary, tmp_path / "bin")), [*args, "-nodefaults"], arch)
    assert run.version.startswith(version + ".")
    assert [(e.start, e.end, e.name, e.offset) for e in run.vm.ram] == [
        (e.start, e.end, e.name, e.offset) for e in real.ram]
    assert [(d.id, d.start, d.size, d.memdev) for d in run.vm.devices] == [
        (d["data"]["id"], d["data"].get("addr", d["data"].get("memaddr")),
         d["data"].get("max-size", d["data"]["size"]), d["data"]["memdev"].removeprefix("/objects/"))
        for d in real.memory_devices]


@pytest.mark.parametrize("version", ALL)
@pytest.mark.parametrize("line", HOSTILE)
def test_dry_run_drops_the_hosts_things(version: str, line: str, tmp_path: Path) -> None:
    args = shlex.split(line)
    safe = safe_command(args, "x86_64", whole=version == ALL[0])  # plan --verify keeps devices
    safe.close()
    assert not any(word.startswith(("vfio", "file=", "tap", "socket,id=c0")) or "hugepages" in word
                   for word in safe.argv), safe.argv
    assert "-mem-prealloc" not in safe.argv and not any("prealloc" in word for word in safe.argv)
    assert "-overcommit" not in safe.argv  # mem-lock=on would lock (so populate) all of it
    run = dry_run(str(wrapper(qemu_binary(version), tmp_path / "bin")), args, "x86_64")
    if modelled(version):
        guest = predict(args, version=version, arch="x86_64")
        assert [(r.start, r.end) for r in run.vm.layout()] == [(r.start, r.end) for r in guest.layout]


@pytest.mark.parametrize("version", ALL)
def test_arm_firmware_in_flash_keeps_dimms_pluggable(version: str, tmp_path: Path) -> None:
    """libvirt's arm domains load edk2 into pflash through -blockdev: the dry run drops the disk
    and gives QEMU a firmware image of its own (a memfd), so the ACPI GED and its DIMMs stay."""
    flash = '{"driver":"file","filename":"/nonexistent/AAVMF_CODE.fd","node-name":"p0","read-only":true}'
    args = ["-machine", "virt,gic-version=3", "-cpu", "max", "-m", "2G,slots=2,maxmem=8G",
            "-blockdev", flash, "-machine", "pflash0=p0",
            "-object", "memory-backend-ram,id=m0,size=1G", "-device", "pc-dimm,id=d0,memdev=m0"]
    run = dry_run(str(wrapper(qemu_binary(version, "aarch64"), tmp_path / "bin")), args, "aarch64")
    assert [(d.id, d.start) for d in run.vm.devices] == [("d0", 0xC0000000)]
    if modelled(version):
        guest = predict(args, version=version, arch="aarch64")
        assert [(r.start, r.end) for r in run.vm.layout()] == [(r.start, r.end) for r in guest.layout]


def test_whole_keeps_the_guests_own_devices() -> None:
    """plan --verify: a refused device (virtio-iommu-pci's reserved regions) must show."""
    safe = safe_command(["-m", "1G", "-fw_cfg", "name=opt/x,string=1",
                         "-device", "virtio-iommu-pci,aw-bits=39", "-device", "intel-iommu",
                         "-device", "vfio-pci,host=0000:01:00.0", "-device", "vhost-vsock-pci",
                         "-device", "usb-host,hostbus=1", "-device", "virtio-net-pci,netdev=n0",
                         "-object", "secret,id=s0,file=/nonexistent"], "x86_64", whole=True)
    safe.close()
    devices = [safe.argv[i + 1] for i, word in enumerate(safe.argv) if word == "-device"]
    assert devices == ["virtio-iommu-pci,aw-bits=39", "intel-iommu"]
    assert "name=opt/x,string=1" in safe.argv and not any("secret" in w for w in safe.argv)


def test_globals_that_take_host_memory_are_dropped() -> None:
    safe = safe_command(["-m", "1G", "-global", "virtio-mem-pci.prealloc=on",
                         "-global", "driver=memory-backend-ram,property=prealloc,value=on",
                         "-global", "virtio-mem-pci.block-size=4M"], "x86_64")
    safe.close()
    assert [w for w in safe.argv if "prealloc" in w] == []
    assert "virtio-mem-pci.block-size=4M" in safe.argv  # it changes the map: kept


@pytest.mark.parametrize("version", ["7.2", "10.0"])  # 11.1 has no machine type with -numa mem=
def test_legacy_numa_mem_keeps_boot_ram_as_it_is(version: str, tmp_path: Path) -> None:
    args = ["-machine", "pc-q35-5.0", "-m", "2G", "-numa", "node,mem=1G", "-numa", "node,mem=1G",
            "-nodefaults"]
    real = real_map(qemu_binary(version), args)
    assert not isinstance(real, Refused), real.stderr
    run = dry_run(str(wrapper(qemu_binary(version), tmp_path / "bin")), args, "x86_64")
    assert [(e.start, e.end, e.name) for e in run.vm.ram] == [(e.start, e.end, e.name) for e in real.ram]
