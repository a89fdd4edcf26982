qemu-system-aarch64 \
    -machine virt \
    -cpu max \
    -smp 2 \
    -m 2G \
    -bios /usr/share/qemu-efi-aarch64/QEMU_EFI.fd \
    -device vfio-pci,host=0000:05:00.0,id=hostdev0
