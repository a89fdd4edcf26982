"""The hook's configuration file and log. Standard library only: read at every hook call.

/etc/layoutd/hook.conf, one `key = value` per line, `#` comments:

    policy = enforce          # enforce | warn
    host = live               # a host source (live, a tree, a dump); empty: $LAYOUTD_HOST, else live
    devices =                 # PCI addresses to check when the domain has no <hostdev> (comma list)
    qemu_version =            # empty: ask the domain's <emulator> (--version), else its machine type
    log = /var/log/layoutd/hook.log
    timeout = 60              # seconds for the whole check (prepare, migrate or restore begin)
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import typing

DEFAULT_CONFIG = "/etc/layoutd/hook.conf"
DEFAULT_LOG = "/var/log/layoutd/hook.log"
POLICIES = ("enforce", "warn")
KEYS = ("policy", "host", "devices", "qemu_version", "log", "timeout")


class ConfigError(Exception):
    """The configuration cannot be read; the message says which file, line and key."""


class HookConfig:
    """The file's settings (a plain class: dataclasses cost the hook's no-op answers time)."""

    def __init__(self, path: str = DEFAULT_CONFIG, policy: str = "enforce",
                 host: str | None = None, devices: tuple[str, ...] = (),
                 qemu_version: str | None = None, log: str = DEFAULT_LOG,
                 timeout: float = 60.0) -> None:
        self.path, self.policy, self.host, self.devices = path, policy, host, devices
        self.qemu_version, self.log, self.timeout = qemu_version, log, timeout
        self.problems: list[str] = []  # why the file could not be read

    @property
    def host_source(self) -> str:
        """The config's host, else LAYOUTD_HOST, else live."""
        return self.host or os.environ.get("LAYOUTD_HOST") or "live"


def load(path: str = DEFAULT_CONFIG) -> HookConfig:
    """Never raises: a missing file gives the defaults; a broken one lists its `problems`."""
    config = HookConfig(path=path)
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read(1 << 20).splitlines()
    except FileNotFoundError:
        return config
    except OSError as error:
        config.problems.append(f"{path}: cannot read: {error.strerror or error}")
        return config
    for number, line in enumerate(lines, 1):
        try:
            _apply(config, line)
        except ConfigError as error:
            config.problems.append(f"{path}: line {number}: {error}")
    return config


def _apply(config: HookConfig, line: str) -> None:
    text = line.split("#", 1)[0].strip()
    if not text:
        return
    key, sep, value = (part.strip() for part in text.partition("="))
    if not sep or key not in KEYS:
        raise ConfigError(f"expected one of {', '.join(KEYS)} as `key = value`, got {text!r}")
    if key == "policy":
        if value not in POLICIES:
            raise ConfigError(f"policy must be enforce or warn, not {value!r}")
        config.policy = value
    elif key == "timeout":
        try:
            config.timeout = float(value)
        except ValueError:
            raise ConfigError(f"timeout must be a number of seconds, not {value!r}") from None
        if not 1 <= config.timeout <= 3600:
            raise ConfigError("timeout must be between 1 and 3600 seconds")
    elif key == "devices":
        config.devices = tuple(item.strip() for item in value.split(",") if item.strip())
    elif key == "host":
        config.host = value or None
    elif key == "qemu_version":
        config.qemu_version = value or None
    else:
        config.log = value or DEFAULT_LOG


def render(policy: str, host: str | None, devices: list[str], log: str) -> str:
    return (
        "# layoutd libvirt hook configuration (written by `layoutd install-hook`).\n"
        "# enforce: refuse a domain whose guest RAM touches a host IOMMU hole; warn: log only.\n"
        f"policy = {policy}\n"
        "# Host source: live, a copied host tree, or a dump; empty: $LAYOUTD_HOST, else live.\n"
        f"host = {host or ''}\n"
        "# PCI devices checked when a domain has no <hostdev> (comma list); empty: none.\n"
        f"devices = {','.join(devices)}\n"
        "# QEMU version to model; empty: ask the domain's <emulator>, else its machine type.\n"
        "qemu_version =\n"
        f"log = {log}\n"
        "# Seconds allowed for the whole check (prepare, migrate or restore begin).\n"
        "timeout = 60\n"
    )


def log_line(config: HookConfig, message: str) -> None:
    """Append one line to the hook log; if the log cannot be written, say so on stderr."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    line = f"{stamp} layoutd-hook[{os.getpid()}]: {message}\n"
    try:
        os.makedirs(os.path.dirname(config.log) or ".", exist_ok=True)
        with open(config.log, "a", encoding="utf-8") as handle:
            handle.write(line)
    except OSError:
        sys.stderr.write(line)


def guarded(config: HookConfig, work: typing.Callable[[], int],
            refuse: typing.Callable[[int, str], int], starts: str) -> int:
    """work() for a judged operation, unless the configuration is broken (refuse with exit 2) or
    work runs past the time limit (refuse with exit 3); `starts` names what the hook lets start.
    Shared by the libvirt and Proxmox hooks."""
    if config.problems:
        return refuse(2, "the hook configuration is broken: " + "; ".join(config.problems)
                      + f". Fix the file, or set `policy = warn` to let {starts} start unchecked")
    return within_time(config.timeout, work, lambda: refuse(
        3, f"the check did not finish within {config.timeout:g} s (timeout in {config.path})"))


def within_time(seconds: float, work: typing.Callable[[], int],
                late: typing.Callable[[], int]) -> int:
    """work() under a SIGALRM time limit; late() when it runs past it (errors.TimeLimit, which
    work must let through). Shared by the libvirt and Proxmox hooks."""
    # a judged operation only: the hook's no-op answers load neither (enum, typing)
    import signal

    from layoutd.errors import TimeLimit

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return work()
    except TimeLimit:
        return late()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _expired(_signum: int, _frame: object) -> None:
    from layoutd.errors import TimeLimit  # as within_time

    raise TimeLimit("the check ran past its time limit")
