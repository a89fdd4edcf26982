qemu-system-x86_64 \
    -accel kvm \
    -machine q35 \
    -cpu Skylake-Server,phys-bits=46 \
    -smp 4 \
    -m 1100G,slots=2,maxmem=1200G \
    -object memory-backend-ram,id=ram-node0,size=600G,reserve=off \
    -object memory-backend-ram,id=ram-node1,size=500G,reserve=off \
    -numa node,nodeid=0,cpus=0-1,memdev=ram-node0 \
    -numa node,nodeid=1,cpus=2-3,memdev=ram-node1
