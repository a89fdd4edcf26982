"""What the firmware model reads from a command line: firmware file (-bios, -drive if=pflash,
libvirt's -blockdev + -machine pflash0=), OVMF's window, devices, slots and buses."""

import json

from layoutd.firmware import place
from layoutd.firmware.builds import OVMF_12, SEABIOS_12
from layoutd.firmware.guest import board, read_argv
from layoutd.qemu import predict

OVMF = "/usr/share/OVMF/OVMF_CODE_4M.fd"


def test_libvirt_style_pflash_and_fw_cfg_without_name() -> None:
    found = read_argv([
        "-nodefaults", "-fw_cfg", "opt/ovmf/X-PciMmio64Mb,string=65536",
        "-blockdev", json.dumps({"driver": "file", "filename": OVMF, "node-name": "libvirt-pflash0-storage"}),
        "-blockdev", '{"node-name":"libvirt-pflash0-format","driver":"raw","file":"libvirt-pflash0-storage"}',
        "-machine", "pc-q35-7.2,pflash0=libvirt-pflash0-format"], "q35", {})
    assert (found.firmware, found.firmware_pflash, found.mmio64_mb) == (OVMF, True, 65536)


def test_slots_in_creation_order_after_the_defaults() -> None:
    found = read_argv(["-device", "pci-testdev,membar=1G,id=a", "-device", "pcie-root-port,id=rp",
                       "-device", "pci-testdev,membar=2G,id=b,bus=rp",
                       "-device", "pci-testdev,membar=4G,id=c,addr=0x10.0x1"], "q35", {})
    slots = {device.id: (device.slot, device.function, device.port) for device in found.devices}
    assert slots["vga"] == (1, 0, None) and slots["nic"] == (2, 0, None)
    assert slots["a"] == (3, 0, None) and slots["b"] == (0, 0, "rp") and slots["c"] == (0x10, 1, None)
    assert [(port.id, port.slot) for port in found.ports] == [("rp", 4)]


def test_unknown_bus_and_sysfsdev_are_said() -> None:
    found = read_argv(["-nodefaults", "-device", "pci-testdev,membar=1G,bus=nowhere,id=x",
                       "-device", "vfio-pci,sysfsdev=/sys/bus/pci/devices/0000:01:00.0"], "pc", {})
    assert [device.id for device in found.devices] == ["0000:01:00.0"]
    assert any("bus nowhere" in note for note in found.notes)
    assert any("did not say its BARs" in note for note in found.notes)


def test_bridges_behind_bridges() -> None:
    """A pci-bridge behind a pci-bridge: both bridges (with their 64-bit SHPC BAR), the device
    behind the inner one, placed by SeaBIOS's and OVMF's models."""
    args = ["-nodefaults", "-device", "pci-bridge,id=b1,chassis_nr=1",
            "-device", "pci-bridge,id=b2,bus=b1,chassis_nr=2",
            "-device", "pci-testdev,membar=1G,bus=b2,id=x"]
    found = read_argv(args, "pc", {})
    assert [(p.id, p.port, p.hotplug, p.shpc, p.bars[0].is64) for p in found.ports] == [
        ("b1", None, True, True, True), ("b2", "b1", True, True, True)]
    assert [(d.id, d.port) for d in found.devices] == [("x", "b2")] and not found.notes
    guest = predict(["-machine", "pc", "-m", "2G", "-nodefaults"], version="7.2")
    seabios = place(SEABIOS_12, board(guest, found, False))
    assert all(p.start is not None for p in seabios.bars)
    ovmf = place(OVMF_12, board(guest, found, False))
    assert all(p.start is not None for p in ovmf.bars) and not ovmf.notes


def test_nvme_bar0_follows_its_queues_and_vectors() -> None:
    """QEMU's nvme BAR0 (64-bit, non-prefetchable), sizes read with query-pci on QEMU 7.2, 10.0
    and 11.1: 16 KiB by default, 32 KiB with 1000 queue pairs, 1 MiB with 65535 and 2048 vectors."""
    found = read_argv(["-nodefaults", "-device", "nvme,serial=a,id=n1",
                       "-device", "nvme,serial=b,id=n2,max_ioqpairs=1000",
                       "-device", "nvme,serial=c,id=n3,max_ioqpairs=65535,msix_qsize=2048",
                       "-device", "nvme,serial=d,id=n4,cmb_size_mb=64"], "q35", {})
    bars = {device.id: [(b.index, b.size, b.is64, b.prefetchable) for b in device.bars]
            for device in found.devices if device.id.startswith("n")}
    assert bars == {"n1": [(0, 16384, True, False)], "n2": [(0, 32768, True, False)],
                    "n3": [(0, 1 << 20, True, False)], "n4": [(0, 16384, True, False)]}
    assert any("CMB and PMR" in note for note in found.notes)


def test_an_empty_romfile_or_rombar_0_leaves_no_rom() -> None:
    found = read_argv(["-nodefaults", "-device", "virtio-net-pci,id=a",
                       "-device", "virtio-net-pci,id=b,romfile=", "-device", "e1000e,id=c,rombar=0"],
                      "q35", {})
    assert {device.id: device.rom for device in found.devices if device.id in "abc"} == {
        "a": 256 * 1024, "b": 0, "c": 0}
