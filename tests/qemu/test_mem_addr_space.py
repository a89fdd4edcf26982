"""QEMU's own phys-bits cases (tests/functional/test_mem_addr_space.py of qemu.git): each
command line run on the real 7.2, 10.0 and 11.1 paused, and on layoutd's model, which must
refuse exactly where QEMU refuses (in QEMU's words) and otherwise build the same map. Issue 22
item 8: the q35 + CXL cases, where layoutd said `phys-bits too low (40)` and QEMU started.
Also the AMD relocation with a memory device at a fixed address below 1 TiB (refused by QEMU:
`can't add memory device ..., usable range for memory devices [0x100...]`)."""

from pathlib import Path

import pytest

from tests.qemu.compare import compare

DIMM = ["-object", "memory-backend-ram,id=mem1,size=1G", "-device", "pc-dimm,id=vm0,memdev=mem1"]
CXL = ["-machine", "q35,cxl=on", "-device", "pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1"]
CASES = {
    "pentium-pse36-59.6G": ["-machine", "q35", "-m", "512,slots=1,maxmem=59.6G",
                            "-cpu", "pentium,pse36=on", *DIMM],
    "pentium-pae-59.6G": ["-machine", "q35", "-m", "512,slots=1,maxmem=59.6G",
                          "-cpu", "pentium,pae=on", *DIMM],
    "pentium-pse36-59.5G": ["-machine", "q35", "-m", "512,slots=1,maxmem=59.5G",
                            "-cpu", "pentium,pse36=on", *DIMM],
    "pentium-pae-59.5G": ["-machine", "q35", "-m", "512,slots=1,maxmem=59.5G",
                          "-cpu", "pentium,pae=on", *DIMM],
    "pentium2-59.5G": ["-machine", "q35", "-m", "512,slots=1,maxmem=59.5G", "-cpu", "pentium2",
                       *DIMM],
    "pentium-4G": ["-machine", "q35", "-m", "512,slots=1,maxmem=4G", "-cpu", "pentium", *DIMM],
    "q35-7.0-amd-988G": ["-machine", "pc-q35-7.0", "-m", "512,slots=1,maxmem=988G", *DIMM],
    "q35-7.1-amd-976G": ["-machine", "pc-q35-7.1", "-m", "512,slots=1,maxmem=976G", *DIMM],
    "q35-7.0-amd-987.5G": ["-machine", "pc-q35-7.0", "-m", "512,slots=1,maxmem=987.5G", *DIMM],
    "q35-7.1-amd-975.5G": ["-machine", "pc-q35-7.1", "-m", "512,slots=1,maxmem=975.5G", *DIMM],
    "q35-7.1-intel-976G": ["-cpu", "Skylake-Server", "-machine", "pc-q35-7.1",
                           "-m", "512,slots=1,maxmem=976G", *DIMM],
    "q35-7.1-amd-41bits-992G": ["-cpu", "EPYC,phys-bits=41", "-machine", "pc-q35-7.1",
                                "-m", "512,slots=1,maxmem=992G", *DIMM],
    "q35-7.1-amd-41bits-990G": ["-cpu", "EPYC,phys-bits=41", "-machine", "pc-q35-7.1",
                                "-m", "512,slots=1,maxmem=990G", *DIMM],
    "cxl-window-987G": ["-cpu", "Skylake-Server,phys-bits=40", *CXL, "-m", "512,slots=1,maxmem=987G",
                        "-M", "cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=1G"],
    "cxl-no-window-987G": ["-cpu", "Skylake-Server,phys-bits=40", *CXL,
                           "-m", "512,slots=1,maxmem=987G"],
    "cxl-window-986G": ["-cpu", "Skylake-Server,phys-bits=40", *CXL, "-m", "512,slots=1,maxmem=986G",
                        "-M", "cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=1G"],
    # AMD relocation (qemu64 under TCG is AMD): RAM and device memory past 1 TiB, so a DIMM or
    # virtio-mem at a fixed address below it is refused
    "amd-dimm-at-0x150000000": ["-machine", "q35", "-cpu", "qemu64,phys-bits=48",
                                "-m", "4G,slots=4,maxmem=1100G", "-object",
                                "memory-backend-ram,id=m0,size=1G",
                                "-device", "pc-dimm,id=d0,memdev=m0,addr=0x150000000"],
    "amd-virtio-mem-at-0x150000000": ["-machine", "q35", "-cpu", "qemu64,phys-bits=48",
                                      "-m", "4G,slots=4,maxmem=1100G", "-object",
                                      "memory-backend-ram,id=m0,size=1G", "-device",
                                      "virtio-mem-pci,id=v0,memdev=m0,memaddr=0x150000000"],
}


@pytest.mark.qemu
@pytest.mark.parametrize("version", ["7.2", "10.0", "11.1"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_qemus_own_phys_bits_cases(version: str, case: str) -> None:
    compare(version, "x86_64", CASES[case])


def test_a_libvirt_dimm_at_a_fixed_address_below_the_relocated_region_is_refused(tmp_path: Path) -> None:
    """The same DIMM as `amd-dimm-at-0x150000000` written as a libvirt domain (<address
    base='0x150000000'>, maxMemory 1100G, qemu64 under TCG): layoutd refuses it in QEMU's words,
    as the real QEMU refuses that argv above."""
    from tests.conftest import EXAMPLES, assert_clean_failure, run_layoutd

    domain = tmp_path / "amd.xml"
    domain.write_text("""<domain type='qemu'>
  <name>amdfix</name>
  <maxMemory slots='4' unit='GiB'>1100</maxMemory>
  <memory unit='GiB'>5</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact' check='none'>
    <model fallback='forbid'>qemu64</model>
    <maxphysaddr mode='emulate' bits='48'/>
    <numa><cell id='0' cpus='0-1' memory='4' unit='GiB'/></numa>
  </cpu>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <memory model='dimm'>
      <target><size unit='GiB'>1</size><node>0</node></target>
      <address type='dimm' slot='0' base='0x150000000'/>
    </memory>
  </devices>
</domain>
""")
    for version in ("7.2", "10.0"):
        result = run_layoutd("check", "--libvirt", str(domain), "--host",
                             str(EXAMPLES / "hosts/amd-epyc-two-gpus"), "--qemu-version", version)
        assert_clean_failure(result, 2, "QEMU would refuse this:", "addr=0x150000000: can't add "
                             "memory device [0x150000000:0x40000000], usable range for memory "
                             "devices [0x10080000000:0x11300000000]")
