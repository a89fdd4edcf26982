# Shell helpers for the guest side of the kernel tests (busybox sh, sourced by the run.sh the
# test writes into the results share). Every result goes to files under $R (the writable share).
R=/results

# find_pci VENDOR DEVICE -> the first matching PCI address
find_pci() {
    for d in /sys/bus/pci/devices/*; do
        if [ "$(cat "$d/vendor")" = "$1" ] && [ "$(cat "$d/device")" = "$2" ]; then
            basename "$d"; return 0
        fi
    done
    return 1
}

# bind_vfio BDF: hand the device to vfio-pci, the way a host admin does
bind_vfio() {
    echo vfio-pci > "/sys/bus/pci/devices/$1/driver_override"
    [ -e "/sys/bus/pci/devices/$1/driver" ] && echo "$1" > "/sys/bus/pci/devices/$1/driver/unbind"
    echo "$1" > /sys/bus/pci/drivers_probe
    basename "$(readlink "/sys/bus/pci/devices/$1/driver")"
}

group_of() { basename "$(readlink "/sys/bus/pci/devices/$1/iommu_group")"; }

# prepare_chroot ROOT [KEEP...]: the guest's /proc, /sys, /dev, a writable /tmp and the results
# inside ROOT; each KEEP is a host folder under /tmp (a checkout, a venv) that the tmpfs would hide
prepare_chroot() {
    root=$1; shift
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount -t devtmpfs devtmpfs "$root/dev"
    mkdir -p /.hosttmp && mount --bind "$root/tmp" /.hosttmp
    mount -t tmpfs tmpfs "$root/tmp"
    for keep in "$@"; do
        case "$keep" in /tmp/?*) ;; *) continue ;; esac
        mkdir -p "$root$keep" && mount --bind "/.hosttmp${keep#/tmp}" "$root$keep"
    done
    mkdir -p "$root/tmp/results"
    mount --bind "$R" "$root/tmp/results"
}

# step NAME CMD...: run CMD, keep its stdout, stderr, exit code and wall time under $R/NAME.*
step() {
    name=$1; shift
    t0=$(cut -d' ' -f1 /proc/uptime)
    "$@" > "$R/$name.out" 2> "$R/$name.err"
    echo $? > "$R/$name.rc"
    t1=$(cut -d' ' -f1 /proc/uptime)
    echo "$t0 $t1" | awk '{printf "%.2f\n", $2 - $1}' > "$R/$name.seconds"
    echo "LAYOUTD-STEP $name rc=$(cat "$R/$name.rc") $(cat "$R/$name.seconds")s"
}
