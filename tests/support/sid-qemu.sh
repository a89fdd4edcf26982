#!/bin/sh
# Run a program of the Debian sid root (QEMU 11.1) with chroot: sid-qemu.sh ROOT PROGRAM ARG...
# In a private mount namespace, the host's /tmp, /proc, /dev and /sys appear inside the root, so paths
# in arguments (QMP sockets, backend files, /proc/self/fd/N) mean the same inside and out; the
# mounts vanish with the process.
root=$1; shift
exec unshare --mount --propagation private -- sh -c '
    root=$1; shift
    mount --bind /tmp "$root/tmp" && mount --bind /proc "$root/proc" &&
        mount --bind /dev "$root/dev" && mount --bind /sys "$root/sys" || exit 125
    exec chroot "$root" "$@"' sh "$root" "$@"
