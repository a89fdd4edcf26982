"""Run inside a private mount namespace: bind private folders over libvirt's, then run libvirtd
as a child subreaper, so the QEMU processes libvirt orphans are reaped at once.

usage: unshare -m python reaper.py STATE_DIR CACHE_DIR [ROOT]  (tests/libvirt/daemon.py starts it)
With ROOT (a Debian root made by scripts/trixie-root.sh), the folders are bound inside it and
libvirtd runs there with chroot, with /proc, /sys and /dev of the host.
"""

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36
MOUNTS = ("/etc/libvirt", "/run/libvirt", "/var/lib/libvirt", "/var/log/libvirt")
HUGETLBFS = {"/run/libvirt/hugepages-2M": "2M", "/run/libvirt/hugepages-1G": "1G"}


def bind(source: str, target: str) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    subprocess.run(["mount", "--bind", source, target], check=True)


def add_accounts(state: str, root: str = "") -> None:
    """libvirt's QEMU driver resolves its built-in user libvirt-qemu before reading qemu.conf;
    Debian's libvirt-daemon-system would create it. Add it to private copies of passwd/group."""
    extra = {"passwd": "libvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin\n",
             "group": "libvirt-qemu:x:64055:\nkvm:x:64056:\n"}
    for name, lines in extra.items():
        with open(f"{root}/etc/{name}") as handle:
            text = handle.read()
        wanted = "".join(line + "\n" for line in lines.splitlines()
                         if f"\n{line.split(':')[0]}:" not in "\n" + text)
        copy = os.path.join(state, name)
        with open(copy, "w") as handle:
            handle.write(text.rstrip("\n") + "\n" + wanted)
        bind(copy, f"{root}/etc/{name}")


def main() -> int:
    state, cache = sys.argv[1], sys.argv[2]
    root = sys.argv[3] if len(sys.argv) > 3 else ""
    for target in MOUNTS:  # STATE is a small root: STATE/etc/libvirt is bound over /etc/libvirt
        bind(state + target, root + target)
    add_accounts(state, root)
    bind(cache, root + "/var/cache/libvirt")
    for target, size in HUGETLBFS.items():  # private hugetlbfs mounts (no page is taken)
        os.makedirs(root + target, exist_ok=True)
        subprocess.run(["mount", "-t", "hugetlbfs", "-o", f"pagesize={size}", "none",
                        root + target], check=True)
    if root:
        subprocess.run(["mount", "-t", "proc", "proc", f"{root}/proc"], check=True)
        for name in ("/sys", "/dev"):
            subprocess.run(["mount", "--rbind", name, root + name], check=True)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # The default pid file, /run/libvirtd.pid, lies outside the private folders: a second test
    # session (another checkout, CI next to a developer) would find it locked and exit at once.
    chroot = ["chroot", root] if root else []
    daemon = subprocess.Popen([*chroot, "libvirtd", "-f", "/etc/libvirt/libvirtd.conf",
                               "--pid-file", "/run/libvirt/libvirtd.pid"])
    signal.signal(signal.SIGTERM, lambda *_: daemon.terminate())
    status = 0
    while True:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            return status
        except InterruptedError:
            continue
        if pid == daemon.pid:
            status = os.waitstatus_to_exitcode(code)
            for orphan in _children():
                os.kill(orphan, signal.SIGKILL)


def _children() -> list[int]:
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:
                found.append(int(entry))
    return found


if __name__ == "__main__":
    sys.exit(main())
