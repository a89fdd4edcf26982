qemu-system-x86_64 \
    -accel kvm \
    -machine q35 \
    -cpu host,host-phys-bits=off,phys-bits=39 \
    -smp 8 \
    -m 32G \
    -bios /usr/share/ovmf/OVMF.fd \
    -device vfio-pci,host=0000:01:00.0,id=hostdev0 \
    -device vfio-pci,host=0000:01:00.1,id=hostdev1
