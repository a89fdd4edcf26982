# ruff: noqa: E501  (a table of command lines reads best one per line)
"""A broad table of command lines: layoutd's prediction against real QEMU 7.2 and 10.0."""

from pathlib import Path

import pytest

from tests.qemu.compare import compare
from tests.support.qemu_runner import VERSIONS, line_args

pytestmark = pytest.mark.qemu

DIMMS = "-object memory-backend-ram,id=m0,size=1G -object memory-backend-ram,id=m1,size=2G"
EPYC = "-cpu EPYC"
SKX = "-cpu Skylake-Server"
CXL = "-device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1"

X86 = [
    # splits, small and large, both families, lowered splits
    "-machine q35 -m 128M",
    "-machine q35 -m 2815M",
    "-machine q35 -m 2816M",
    "-machine q35 -m 6G",
    "-machine q35,max-ram-below-4g=1G -m 4G",
    "-machine q35,max-ram-below-4g=1536M -m 8G",
    "-machine q35,max-ram-below-4g=2560M -m 2G",
    "-machine q35,max-ram-below-4g=512K -m 1G",
    "-machine q35 -machine max-ram-below-4g=3G -m 4G",
    "-machine pc -m 3583M",
    "-machine pc -m 3584M",
    "-machine pc -m 8G",
    "-machine pc,max-ram-below-4g=1G -m 2G",
    "-machine pc,max-ram-below-4g=4G -m 3968M",
    "-machine pc,max-ram-below-4g=3500M -m 8G",
    "-m 4G",
    "-machine pc-q35-7.1 -m 4G",
    "-machine pc-q35-7.2 -m 4G",
    "-machine pc-i440fx-7.1 -m 4G",
    "-machine pc-i440fx-7.2 -m 4G",
    "-M q35 -m size=4096",
    # the AMD 1 TiB rule, phys-bits, huge guests
    f"-machine q35 {EPYC} -m 978G",
    f"-machine q35 {EPYC} -m 979G",
    f"-machine q35 {EPYC},phys-bits=48 -m 1100G",
    f"-machine q35 {SKX},phys-bits=48 -m 1100G",
    f"-machine q35 {SKX} -m 1100G",
    f"-machine pc {EPYC},phys-bits=48 -m 2T",
    f"-machine q35 {EPYC},phys-bits=41 -m 3T",
    f"-machine q35 {SKX},phys-bits=42 -m 3T",
    f"-machine q35 {EPYC},phys-bits=44 -m 4T",
    "-machine q35 -cpu EPYC-Rome,phys-bits=48 -m 2G,slots=2,maxmem=1200G",
    "-machine q35 -cpu Cascadelake-Server,phys-bits=46 -m 1500G",
    "-machine q35 -m 1000G",
    "-machine q35 -cpu kvm64 -m 1010G",
    "-machine q35 -cpu max -m 1100G",
    "-machine q35 -cpu qemu64,phys-bits=39 -m 480G",
    "-machine q35 -cpu qemu64,phys-bits=32 -m 4G",
    f"-machine q35 {EPYC},host-phys-bits=on -m 1100G",
    f"-machine q35 {EPYC},phys-bits=60 -m 1G",
    "-machine q35 -cpu host -m 1G",
    # 64-bit PCI hole size
    f"-machine q35 {EPYC} -m 900G -global q35-pcihost.pci-hole64-size=64G",
    f"-machine q35 {EPYC} -m 900G -global q35-pcihost.pci-hole64-size=128G",
    f"-machine pc {EPYC} -m 960G -global i440FX-pcihost.pci-hole64-size=1G",
    f"-machine pc {EPYC} -m 1000G",
    f"-machine q35 {EPYC} -m 950G -global driver=q35-pcihost,property=pci-hole64-size,value=0",
    # device memory and DIMMs
    f"-machine q35 -m 6G,slots=4,maxmem=32G {DIMMS} -device pc-dimm,id=d0,memdev=m0,addr=0x240000000 -device pc-dimm,id=d1,memdev=m1",
    f"-machine q35 -m 6G,slots=4,maxmem=32G {DIMMS} -device pc-dimm,id=d0,memdev=m0 -device pc-dimm,id=d1,memdev=m1,slot=3",
    f"-machine pc -m 3G,slots=2,maxmem=8G {DIMMS} -device pc-dimm,id=d0,memdev=m0 -device pc-dimm,id=d1,memdev=m1",
    "-machine q35 -m 6G,slots=4,maxmem=32G -object memory-backend-memfd,id=m0,size=3M -object memory-backend-ram,id=m1,size=2M -device pc-dimm,id=d0,memdev=m0 -device pc-dimm,id=d1,memdev=m1",
    "-machine q35 -m 6G,slots=4,maxmem=32G -object memory-backend-ram,id=m1,size=2M -object memory-backend-file,id=m2,size=1G,mem-path={tmp}/f2,align=1G,reserve=off -device pc-dimm,id=d1,memdev=m1 -device pc-dimm,id=d2,memdev=m2",
    "-machine q35 -m 2G,slots=2,maxmem=8G -object memory-backend-file,id=m2,size=1G,mem-path={tmp}/f2,align=1G -device pc-dimm,id=d2,memdev=m2,addr=0x100200000",
    f"-machine q35 {EPYC},phys-bits=48 -m 900G,slots=4,maxmem=1000G {DIMMS} -device pc-dimm,id=d0,memdev=m0",
    f"-machine q35 {SKX},phys-bits=48 -m 900G,slots=4,maxmem=1000G {DIMMS} -device pc-dimm,id=d0,memdev=m0",
    f"-machine q35 {EPYC} -m 4G,slots=4,maxmem=1000G",
    "-machine q35,max-ram-below-4g=1G -m 1G,slots=2,maxmem=4G -object memory-backend-ram,id=m0,size=1G -device pc-dimm,id=d0,memdev=m0",
    f"-machine q35,nvdimm=on -m 6G,slots=4,maxmem=32G -object memory-backend-file,id=n0,size=1G,mem-path={{tmp}}/nv,share=on {DIMMS} -device pc-dimm,id=d0,memdev=m0 -device nvdimm,id=nv0,memdev=n0",
    "-machine q35 -m 6G,slots=4,maxmem=32G -object memory-backend-file,id=p0,size=1G,mem-path={tmp}/pm,share=on -device virtio-pmem-pci,id=vp0,memdev=p0",
    # virtio-mem: the whole region is RAM in the flat view, plugged or not
    "-machine q35 -m 6G,slots=4,maxmem=32G -object memory-backend-ram,id=m0,size=1G -device virtio-mem-pci,id=vm0,memdev=m0,requested-size=0",
    "-machine q35 -m 6G,slots=4,maxmem=32G -object memory-backend-ram,id=m0,size=1G -device virtio-mem-pci,id=vm0,memdev=m0,requested-size=256M",
    "-machine q35 -m 6G,slots=4,maxmem=32G -object memory-backend-ram,id=m0,size=1G -device virtio-mem-pci,id=vm0,memdev=m0,requested-size=1G,memaddr=0x300000000",
    "-machine q35 -m 6G,slots=4,maxmem=32G -object memory-backend-ram,id=m0,size=1G -object memory-backend-ram,id=m1,size=1G -device pc-dimm,id=d0,memdev=m0,addr=0x200200000 -device virtio-mem-pci,id=vm0,memdev=m1,block-size=1G",
    # NUMA and backends
    "-machine q35 -m 4G -object memory-backend-ram,id=n0,size=1G -object memory-backend-ram,id=n1,size=3G -numa node,nodeid=0,memdev=n0 -numa node,nodeid=1,memdev=n1",
    "-machine q35 -m 1G -object memory-backend-ram,id=n0,size=512K -object memory-backend-ram,id=n1,size=1047552K -numa node,memdev=n0 -numa node,memdev=n1",
    "-machine q35 -m 2G -object memory-backend-ram,id=n0,size=1G -object memory-backend-ram,id=n1,size=1G -numa node,memdev=n0 -numa node -numa node,memdev=n1",
    f"-machine q35 -m 4G,slots=2,maxmem=8G -object memory-backend-ram,id=n0,size=2G -object memory-backend-ram,id=n1,size=2G -numa node,memdev=n0 -numa node,memdev=n1 {DIMMS} -device pc-dimm,id=d0,memdev=m0,node=1",
    f"-machine q35 {EPYC},phys-bits=48 -m 1100G -object memory-backend-ram,id=n0,size=550G,reserve=off -object memory-backend-ram,id=n1,size=550G,reserve=off -numa node,memdev=n0 -numa node,memdev=n1",
    "-machine q35,memory-backend=mb -m 4G -object memory-backend-ram,id=mb,size=4G",
    "-machine q35,memory-backend=mb -object memory-backend-memfd,id=mb,size=3G,share=on",
    "-machine pc -m 2G -numa node -numa node",
    # VGA maps the legacy window over RAM
    "-machine q35 -m 1G -device VGA",
    "-machine pc -m 1G -vga std",
    "-machine q35,smm=off -m 1G -device VGA",
    "-machine pc-q35-7.2,smm=off -m 1G -device VGA",
    "-machine pc,smm=off -m 1G -device VGA",
    # machine types 5.0-7.0: no AMD 1 TiB rule (RAM crosses the HT range), the rest as 7.1+
    f"-machine pc-q35-6.2 {EPYC},phys-bits=48 -m 1100G",
    f"-machine pc-q35-7.0 {EPYC},phys-bits=48 -m 900G,slots=4,maxmem=1000G {DIMMS} -device pc-dimm,id=d0,memdev=m0",
    f"-machine pc-i440fx-6.0 {EPYC},phys-bits=48 -m 2T",
    f"-machine pc-q35-5.0 {EPYC} -m 950G -global q35-pcihost.pci-hole64-size=64G",
    "-machine pc-q35-5.0 -m 4G",
    "-machine pc-q35-5.1 -m 2816M",
    "-machine pc-i440fx-5.2 -m 8G",
    "-machine pc-i440fx-5.0,max-ram-below-4g=3500M -m 8G",
    "-machine pc-q35-6.0,max-ram-below-4g=1536M -m 8G",
    f"-machine pc-q35-6.1 -m 6G,slots=4,maxmem=32G {DIMMS} -device pc-dimm,id=d0,memdev=m0 -device pc-dimm,id=d1,memdev=m1,slot=3",
    f"-machine pc-i440fx-7.0 -m 3G,slots=2,maxmem=8G {DIMMS} -device pc-dimm,id=d0,memdev=m0 -device pc-dimm,id=d1,memdev=m1",
    "-machine pc-q35-5.2 -m 6G,slots=4,maxmem=32G -object memory-backend-ram,id=m0,size=1G -device virtio-mem-pci,id=vm0,memdev=m0,requested-size=256M",
    "-machine pc-q35-6.2 -m 4G -object memory-backend-ram,id=n0,size=1G -object memory-backend-ram,id=n1,size=3G -numa node,nodeid=0,memdev=n0 -numa node,nodeid=1,memdev=n1",
    "-machine pc-q35-6.2 -m 2G,slots=2,maxmem=8G -object memory-backend-file,id=m2,size=1G,mem-path={tmp}/f2,align=1G -device pc-dimm,id=d2,memdev=m2",
    "-machine pc-q35-7.0 -m 1G -device VGA",
    "-machine pc-q35-6.2 -cpu qemu64 -m 1100G",
    # 7.0 and older: virtio-mem's unplugged-inaccessible is off (QEMU warns first, then refuses)
    "-machine pc-q35-5.0 -m 512M,slots=0,maxmem=4608M -object memory-backend-memfd,id=b0,size=2M -device virtio-mem-pci,id=dev0,memdev=b0 -object memory-backend-ram,id=b1,size=2M -device pc-dimm,id=dev1,memdev=b1",
    "-machine pc-q35-7.0 -m 6G,slots=4,maxmem=32G -object memory-backend-memfd,id=m0,size=1G -device virtio-mem-pci,id=vm0,memdev=m0,requested-size=256M",
    # 32-bit CPU models: 36 bits with PSE36 (10.0+: or PAE), else 32; no hole64 (10.0+: RAM or
    # device memory end is checked, except on 8.1-and-older machine types)
    "-machine q35 -cpu pentium -m 8G",
    "-machine q35 -cpu pentium2 -m 40G",
    "-machine q35 -cpu pentium2 -m 70G",
    "-machine q35 -cpu qemu32 -m 60G",
    "-machine q35 -cpu athlon -m 30G",
    "-machine pc-q35-7.2 -cpu pentium -m 8G",
    "-machine pc-i440fx-8.1 -cpu pentium -m 8G",
    "-machine pc-q35-8.2 -cpu pentium -m 8G",
    "-machine q35 -cpu pentium,pse36=on -m 40G",
    "-machine q35 -cpu qemu32,pae=off -m 8G",
    "-machine q35 -cpu n270,-pae -m 8G",
    "-machine q35 -cpu coreduo -m 4G,slots=2,maxmem=70G",
    "-machine q35 -cpu kvm32-v1 -m 2G,slots=2,maxmem=60G -object memory-backend-ram,id=m0,size=1G -device pc-dimm,id=d0,memdev=m0",
    "-machine q35 -cpu pentium2,phys-bits=36 -m 1G",
    "-machine q35 -cpu qemu32,lm=on -m 8G",
    "-machine pc -cpu pentium3 -m 64G",
    "-machine q35 -cpu base -m 1G",
    # fractional sizes: QEMU truncates to bytes (7.2 then refuses maxmem off 4 KiB)
    "-machine q35 -m 4G,slots=2,maxmem=59.6G",
    "-machine q35 -m 3.3G",
    "-machine q35 -m 2G,slots=2,maxmem=8.5G -object memory-backend-ram,id=m0,size=1.5G -device pc-dimm,id=d0,memdev=m0",
    # q35/pc cxl=on: 1 MiB of host registers and the fixed memory windows between device memory
    # and the 64-bit PCI hole (they move the hole, so phys-bits checks and the AMD rule see them)
    f"-machine q35,cxl=on -m 4G,slots=2,maxmem=8G {CXL} -M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G,cxl-fmw.1.targets.0=cxl.1,cxl-fmw.1.size=8G -object memory-backend-ram,id=m0,size=1G -device pc-dimm,id=d0,memdev=m0",
    f"-machine q35,cxl=on -cpu qemu64,phys-bits=33 -m 1G {CXL} -M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G",
    f"-machine q35,cxl=on -cpu qemu64,phys-bits=35 -m 6G,slots=2,maxmem=10G {CXL} -M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G,cxl-fmw.0.interleave-granularity=8k",
    "-machine q35,cxl=on -cpu qemu64,phys-bits=35 -m 1G",
    "-machine pc,cxl=on -cpu qemu64,phys-bits=33 -m 1G -device pxb-cxl,bus_nr=12,bus=pci.0,id=cxl.1 -M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G",
    f"-machine q35,cxl=on {EPYC},phys-bits=48 -m 950G {CXL} -M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=32G",
    f"-machine q35 {EPYC},phys-bits=48 -m 950G {CXL}",
    f"-machine q35,cxl=on -m 1G {CXL} -M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=100M",
    f"-machine q35,cxl=on -m 1G {CXL} -M cxl-fmw.0.size=4G",
    f"-machine q35,cxl=on -m 1G {CXL} -M cxl-fmw.0.targets.0=nope,cxl-fmw.0.size=4G",
    # CPU model names are each binary's own (EPYC-v4 is 8.0+, EPYC-Turin and DiamondRapids 10.1+)
    "-machine q35 -cpu EPYC-v4 -m 1G",
    "-machine q35 -cpu EPYC-Turin,phys-bits=48 -m 1100G",
    "-machine q35 -cpu DiamondRapids -m 1G",
    "-machine q35 -cpu Skylake-Server-v9 -m 1G",
    # refusals, compared word for word
    "-machine q35,max-ram-below-4g=5G -m 1G",
    "-machine q35 -m 4G,slots=2,maxmem=4G",
    "-machine q35 -m 4G,maxmem=2G",
    "-machine q35 -m 4G,slots=2",
    "-machine q35 -m 4G -object memory-backend-ram,id=m0,size=1G -device pc-dimm,id=d0,memdev=m0",
    f"-machine q35 -m 4G,slots=1,maxmem=8G {DIMMS} -device pc-dimm,id=d0,memdev=m0 -device pc-dimm,id=d1,memdev=m1",
    "-machine q35 -m 4G,slots=2,maxmem=8G -object memory-backend-ram,id=m0,size=1G -device pc-dimm,id=d0,memdev=m0,addr=0x180100000",
    "-machine q35 -m 4G,slots=2,maxmem=8G -object memory-backend-ram,id=m0,size=1G -device pc-dimm,id=d0,memdev=m0,addr=0x100000000",
    f"-machine q35 -m 4G,slots=2,maxmem=8G {DIMMS} -device pc-dimm,id=d0,memdev=m0,addr=0x200000000 -device pc-dimm,id=d1,memdev=m1,addr=0x220000000",
    "-machine q35 -m 4G,slots=2,maxmem=8G -object memory-backend-ram,id=m0,size=5G -device pc-dimm,id=d0,memdev=m0",
    "-machine q35 -m 2G,slots=2,maxmem=4G -device pc-dimm,id=d0",
    "-machine q35 -m 2G,slots=2,maxmem=4G -object memory-backend-ram,id=m0,size=1G -device pc-dimm,id=d0,memdev=m0 -device pc-dimm,id=d1,memdev=m0",
    "-machine q35 -m 2G,slots=2,maxmem=4G -object memory-backend-ram,id=m0,size=1G -device nvdimm,id=d0,memdev=m0",
    "-machine q35,memory-backend=mb -m 2G -object memory-backend-ram,id=mb,size=4G",
    "-machine q35 -m 2G -object memory-backend-ram,id=n0,size=1G -numa node,memdev=n0 -numa node",
    "-machine q35 -m 2G,slots=2,maxmem=4G -object memory-backend-ram,id=m0,size=1G -device pc-dimm,id=d0,memdev=m0,node=1",
    "-machine q35 -m 2G,slots=2,maxmem=4G -object memory-backend-ram,id=m0,size=1G -device virtio-mem-pci,id=v0,memdev=m0,requested-size=3M",
    "-machine q35,acpi=off -m 2G,slots=2,maxmem=4G -object memory-backend-ram,id=m0,size=1G -device pc-dimm,id=d0,memdev=m0",
    "-machine q35 -m 2G -object memory-backend-ram,id=m0,size=1G -device virtio-mem-pci,id=v0,memdev=m0",
    "-machine pc-q35-11.0 -m 1G",
    # what libvirt passes (issue 13): virtio-pmem placed by memaddr, its addr= a PCI slot;
    # legacy -numa node,mem= on 5.0 types; NVDIMM label and alignment rounding the region down
    "-machine q35 -m 2G,slots=2,maxmem=8G -object memory-backend-file,id=p0,size=512M,mem-path={tmp}/p0,share=on -device virtio-pmem-pci,id=vp0,memdev=p0,memaddr=0x140000000,addr=0x5",
    "-machine q35 -m 2G,slots=2,maxmem=8G -object memory-backend-file,id=p0,size=512M,mem-path={tmp}/p0,share=on -device virtio-pmem-pci,id=vp0,memdev=p0,addr=0x5",
    "-machine pc-i440fx-5.0 -m 128 -numa node,nodeid=0,cpus=0,mem=64 -numa node,nodeid=1,cpus=1,mem=64 -smp 2",
    "-machine pc-q35-5.0 -m 4G -numa node,nodeid=0,mem=3072 -numa node,nodeid=1,mem=1024",
    "-machine pc-q35-5.0 -m 4G -numa node,nodeid=0,mem=3072 -numa node,nodeid=1,mem=512",
    "-machine pc-q35-5.1 -m 4G -numa node,nodeid=0,mem=3072 -numa node,nodeid=1,mem=1024",
    "-machine q35,nvdimm=on -m 2G,slots=2,maxmem=8G -object memory-backend-file,id=n0,size=512M,mem-path={tmp}/n0,share=on,align=2M -device nvdimm,id=nv0,memdev=n0,label-size=128K",
    "-machine q35,nvdimm=on -m 2G,slots=2,maxmem=8G -object memory-backend-file,id=n0,size=512M,mem-path={tmp}/n0,share=on -device nvdimm,id=nv0,memdev=n0,label-size=256K -object memory-backend-ram,id=m0,size=1G -device pc-dimm,id=d0,memdev=m0",
    "-machine q35,nvdimm=on -m 2G,slots=2,maxmem=8G -object memory-backend-file,id=n0,size=2M,mem-path={tmp}/n0,share=on,align=2M -device nvdimm,id=nv0,memdev=n0,label-size=128K",
    "-machine q35,nvdimm=on -m 2G,slots=2,maxmem=8G -object memory-backend-file,id=n0,size=512M,mem-path={tmp}/n0,share=on -device nvdimm,id=nv0,memdev=n0,label-size=64K",
    # machine types 2.5-4.2 (libvirt keeps a domain's type for ever): as 5.0, but file and memfd
    # backends named by QOM path up to 3.1
    "-machine pc-q35-2.5 -cpu EPYC -m 4G,slots=4,maxmem=1000G",
    "-machine pc-q35-2.12 -m 6G,slots=4,maxmem=32G -object memory-backend-memfd,id=m0,size=3M -object memory-backend-ram,id=m1,size=2M -device pc-dimm,id=d0,memdev=m0 -device pc-dimm,id=d1,memdev=m1",
    "-machine pc-q35-3.1,nvdimm=on -m 2G,slots=2,maxmem=8G -object memory-backend-file,id=n0,size=512M,mem-path={tmp}/n0,share=on,align=2M -device nvdimm,id=nv0,memdev=n0,label-size=128K",
    "-machine pc-q35-4.0,memory-backend=mb -object memory-backend-memfd,id=mb,size=3G,share=on",
    "-machine pc-q35-4.2 -m 2G -object memory-backend-ram,id=n0,size=1G -object memory-backend-file,id=n1,size=1G,mem-path={tmp}/n1 -numa node,nodeid=0,memdev=n0 -numa node,nodeid=1,memdev=n1",
    "-machine pc-i440fx-2.5 -m 8G",
    "-machine pc-i440fx-2.12,max-ram-below-4g=3500M -m 8G",
    "-machine pc-i440fx-3.0 -m 3G -numa node,nodeid=0,mem=2048 -numa node,nodeid=1,mem=1024",
    f"-machine pc-i440fx-4.1 {EPYC},phys-bits=48 -m 2T",
]

ARM = [
    "-machine virt -m 2G",
    "-machine virt -cpu max -m 300G",
    "-machine virt -cpu cortex-a57 -m 2T",
    "-machine virt-7.1 -cpu max -m 2G",
    "-machine virt,highmem=off -cpu max -m 3G",
    "-machine virt,gic-version=3 -cpu max -m 2G,slots=2,maxmem=8G {fw} " + DIMMS
    + " -device pc-dimm,id=d0,memdev=m0 -device pc-dimm,id=d1,memdev=m1",
    "-machine virt -cpu max -m 2G,slots=2,maxmem=8G {fw} -object memory-backend-ram,id=m0,size=1G -device pc-dimm,id=d0,memdev=m0,addr=0x140000000",
    "-machine virt -cpu max -m 3584M,slots=2,maxmem=260G {fw} -object memory-backend-ram,id=m0,size=1G -device virtio-mem-pci,id=v0,memdev=m0,requested-size=512M",
    "-machine virt,gic-version=3 -cpu max -m 2G {fw} -object memory-backend-ram,id=n0,size=1G -object memory-backend-ram,id=n1,size=1G -numa node,nodeid=0,memdev=n0 -numa node,nodeid=1,memdev=n1",
    "-machine virt -cpu max -m 2G,maxmem=4G -object memory-backend-ram,id=m0,size=1G -device virtio-mem-pci,id=v0,memdev=m0",
    "-machine virt -cpu max -m 2G -object memory-backend-ram,id=m0,size=1G -device virtio-mem-pci,id=v0,memdev=m0",
    # refusals
    "-machine virt,gic-version=3 -cpu max -m 2G,slots=2,maxmem=8G -object memory-backend-ram,id=m0,size=1G -device pc-dimm,id=d0,memdev=m0",
    "-machine virt -cpu max -m 2G,maxmem=4G {fw} -object memory-backend-ram,id=m0,size=1G -device pc-dimm,id=d0,memdev=m0",
    "-machine virt -cpu cortex-a53 -m 1T",
    "-machine virt -cpu cortex-a57 -m 16T",
    "-machine virt,highmem=off -cpu max -m 5G",
    "-m 1G",
    "-machine virt-11.0 -cpu max -m 2G",
    "-machine virt -cpu neoverse-v1 -m 2G",
    "-machine virt -cpu cortex-a99 -m 2G",
]



@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("line", X86)
def test_x86_matches_qemu(line: str, version: str, tmp_path: Path) -> None:
    compare(version, "x86_64", line_args(line, tmp_path))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("line", ARM)
def test_virt_matches_qemu(line: str, version: str, tmp_path: Path) -> None:
    compare(version, "aarch64", line_args(line, tmp_path))
