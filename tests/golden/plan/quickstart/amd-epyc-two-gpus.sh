qemu-system-x86_64 \
    -accel kvm \
    -machine pc-q35-6.2 \
    -cpu host \
    -smp 8 \
    -m 1010G,slots=1,maxmem=1111G \
    -object memory-backend-ram,id=mem-dimm0,size=90G \
    -device pc-dimm,id=dimm0,memdev=mem-dimm0,addr=0x10000000000 \
    -device vfio-pci,host=0000:29:00.0,id=hostdev0
