"""A small cache of `QEMU --version` answers, keyed by the binary's path, size and mtime."""

import json
import os
from pathlib import Path


def _cache_file() -> Path:
    root = os.environ.get("LAYOUTD_CACHE") or os.path.join(Path.home(), ".cache", "layoutd")
    return Path(root) / "qemu-versions.json"


def _key(path: str) -> str | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return f"{os.path.realpath(path)}:{info.st_size}:{info.st_mtime_ns}"


def _load() -> dict[str, str]:
    try:
        data = json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def cached_version(path: str) -> str | None:
    key = _key(path)
    return _load().get(key) if key else None


def remember_version(path: str, version: str) -> None:
    """Best effort: an unwritable cache only costs the next run a QEMU start."""
    key = _key(path)
    if key is None:
        return
    data = _load()
    data[key] = version
    target = _cache_file()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(data, indent=1, sort_keys=True))
        temporary.replace(target)
    except OSError:
        pass
