"""Whether a folder may hold what layoutd trusts later (hotplug locks, the boot cache): a real
folder owned by this user and writable by no one else. The hook runs as root: a folder another
user can write to could feed it a lock or a cached answer."""

import os
import stat


def untrusted(folder: str | os.PathLike[str]) -> str | None:
    """Why `folder` cannot hold our locks, or None."""
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode):
        return "not a folder: a symlink or a file"
    if info.st_uid != os.getuid():
        return f"owned by uid {info.st_uid}, not {os.getuid()}"
    if info.st_mode & 0o022:
        return f"writable by others (mode {stat.S_IMODE(info.st_mode):o})"
    if not os.access(folder, os.W_OK):
        return "not writable"
    return None
