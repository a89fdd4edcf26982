qemu-system-aarch64 \
    -machine virt,gic-version=3,highmem-mmio=off \
    -cpu max \
    -smp 4 \
    -m 2944M,slots=2,maxmem=24G \
    -bios /usr/share/qemu-efi-aarch64/QEMU_EFI.fd \
    -object memory-backend-ram,id=mem-dimm0,size=13440M \
    -device pc-dimm,id=dimm0,memdev=mem-dimm0,addr=0x100000000 \
    -device virtio-iommu-pci,aw-bits=39 \
    -device vfio-pci,host=0000:05:00.0,id=hostdev0
