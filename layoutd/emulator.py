"""The one way to ask a QEMU binary its version (`PATH --version`) and the folders it loads
firmware from (`PATH -L help`), cached per binary.

The answer is cached by the binary's path, size and mtime in $LAYOUTD_CACHE or ~/.cache/layoutd:
starting QEMU costs more than the rest of `layoutd check`.
"""

from __future__ import annotations

import json
import os
import re

from layoutd.errors import InputError
from layoutd.qemu import versions
from layoutd.qemu.versions import Version

TIMEOUT = 10.0
ANSWER = r"QEMU emulator version (\d+\.\d+(?:\.\d+)?)"


def binary_version(path: str) -> Version | None:
    """What `path --version` says, or None when it cannot be run or names no QEMU version."""
    cached = _cached(path, "")
    if cached is not None:
        try:
            return Version.parse(cached)
        except InputError:
            pass  # a cache entry another layoutd wrote in some other form: ask the binary again

    import subprocess  # ~2.5 ms of every start: only a binary not in the cache is run

    try:
        result = subprocess.run([path, "--version"], capture_output=True, text=True,
                                timeout=TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(ANSWER, result.stdout)
    if result.returncode != 0 or not match:
        return None
    _remember(path, "", match.group(1))
    return Version.parse(match.group(1))


def on_path(name: str) -> str | None:
    """Where `name` runs from: itself when it names a folder, else the first PATH entry that has
    it executable (shutil.which without importing shutil: start-up time)."""
    if os.sep in name:
        return name if os.access(name, os.X_OK) else None
    for folder in os.get_exec_path():
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def data_dirs(path: str) -> tuple[str, ...] | None:
    """The folders `path` searches for firmware files (-bios NAME, its own bios-256k.bin), in
    QEMU's order, as `path -L help` lists them; None when it cannot be asked."""
    cached = _cached(path, " -L help")
    if cached is not None:
        return tuple(line for line in cached.split("\n") if line)

    import subprocess  # as binary_version

    try:
        result = subprocess.run([path, "-L", "help"], capture_output=True, text=True,
                                timeout=TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    folders = tuple(os.path.normpath(line.strip()) for line in result.stdout.splitlines()
                    if line.strip().startswith("/"))
    _remember(path, " -L help", "\n".join(folders))
    return folders


def version_of_binary(path: str, *, modelled_only: bool = True) -> str:
    """The major.minor `path` says it is; an InputError when it says none, or (modelled_only)
    when the table has no row for it. Unmodelled versions are for the dry run to answer."""
    found = binary_version(path)
    if found is None:
        raise InputError(f"{path} --version did not say a QEMU version (cannot run it, or not "
                         "QEMU)")
    if modelled_only and not versions.is_modelled(found):
        raise InputError(f"{path} is QEMU {found}; only {versions.names()} are modelled (pass "
                         "--qemu-version to use a model anyway, or --verify to ask the binary "
                         "itself)")
    return str(found.release)


def _cache_file() -> str:
    root = os.environ.get("LAYOUTD_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                           "layoutd")
    return os.path.join(root, "qemu-versions.json")


def _key(path: str) -> str | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return f"{os.path.realpath(path)}:{info.st_size}:{info.st_mtime_ns}"


def _load() -> dict[str, str]:
    try:
        with open(_cache_file()) as handle:
            data = json.loads(handle.read())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _cached(path: str, question: str) -> str | None:
    key = _key(path)
    return _load().get(key + question) if key else None


def _remember(path: str, question: str, answer: str) -> None:
    """Best effort: an unwritable cache only costs the next run a QEMU start."""
    key = _key(path)
    if key is None:
        return
    data = _load()
    data[key + question] = answer
    target = _cache_file()
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        temporary = f"{os.path.splitext(target)[0]}.{os.getpid()}.tmp"
        with open(temporary, "w") as handle:
            handle.write(json.dumps(data, indent=1, sort_keys=True))
        os.replace(temporary, target)
    except OSError:
        pass
