qemu-system-x86_64 \
    -accel kvm \
    -machine q35 \
    -cpu Skylake-Server \
    -smp 8 \
    -m 448G \
    -device intel-iommu,aw-bits=39 \
    -device vfio-pci,host=0000:01:00.0,id=hostdev0 \
    -device vfio-pci,host=0000:04:00.0,id=hostdev1
