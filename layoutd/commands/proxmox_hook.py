"""`layoutd proxmox-hook [--config FILE] VMID PHASE`: a Proxmox VE hookscript.

Proxmox runs a VM's hookscript (`qm set VMID --hookscript local:snippets/layoutd-hook`, a script
that execs this) as `SCRIPT VMID PHASE`; at `pre-start` a non-zero exit aborts the start, and
what it prints goes to the start task's log. Here `pre-start` asks `qm showcmd VMID` for the
command line Proxmox is about to run and checks it as `layoutd check` does: exit 1 only for a
proven collision (RAM or an assigned BAR in a host IOMMU hole) under `policy = enforce`; what
cannot be judged is logged and the VM starts. Every other phase returns 0 at once. The settings
are the libvirt hook's file (/etc/layoutd/hook.conf: policy, host, devices, qemu_version, log,
timeout). Standard-library imports only until a VM is judged.
"""

from __future__ import annotations

import os
import sys

from layoutd.libvirt import hookconf

TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

PHASES = ("pre-start", "post-start", "pre-stop", "post-stop")
USAGE = ("usage: layoutd proxmox-hook [--config FILE] VMID PHASE  (a Proxmox VE hookscript)\n"
         f"phases: {', '.join(PHASES)}; judged: pre-start (the VM's `qm showcmd VMID`)\n"
         "exit status: 0 the VM may start; 1 a proven collision (policy enforce); 2 bad input, "
         "3 the host could not be asked (policy enforce); Proxmox aborts the start on non-zero")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="hook configuration file "
                        f"(default: $LAYOUTD_HOOK_CONFIG, else {hookconf.DEFAULT_CONFIG})")
    parser.add_argument("vmid", metavar="VMID")
    parser.add_argument("phase", metavar="PHASE", help=", ".join(PHASES))


def run(args: argparse.Namespace) -> int:
    return main([*(["--config", args.config] if args.config else []), args.vmid, args.phase])


def main(args: Sequence[str]) -> int:
    rest = list(args)
    path = os.environ.get("LAYOUTD_HOOK_CONFIG") or hookconf.DEFAULT_CONFIG
    if rest[:1] == ["--config"] and len(rest) >= 2:
        path, rest = rest[1], rest[2:]
    if len(rest) != 2:
        print(f"layoutd proxmox-hook: expected VMID PHASE\n{USAGE}", file=sys.stderr)
        return 2
    vmid, phase = rest
    if phase != "pre-start":
        return 0
    config = hookconf.load(path)
    return hookconf.guarded(config, lambda: judge(vmid, config),
                            lambda code, text: verdict(config, vmid, code, text), "VMs")


def judge(vmid: str, config: hookconf.HookConfig) -> int:
    """Refuse only a proven collision; what layoutd cannot model or QEMU would refuse itself is
    logged and the VM starts (as the libvirt hook)."""
    # the judgement: pre-start only (the other phases return first)
    from layoutd.errors import LayoutdError, NotModelled, QemuRefusal, TimeLimit
    from layoutd.proxmox import judge as judge_argv
    from layoutd.proxmox import showcmd

    try:
        argv = showcmd(vmid)
        answer = judge_argv(argv, config.host_source, config.devices, config.qemu_version)
    except TimeLimit:
        raise
    except NotModelled as error:
        return allow(config, vmid, f"allowed unchecked (warning): layoutd cannot model this VM: "
                     f"{error.render()}")
    except QemuRefusal as error:
        return allow(config, vmid, f"allowed (warning): QEMU is expected to refuse this VM "
                     f"itself: {error.render()}")
    except LayoutdError as error:
        return verdict(config, vmid, error.exit_code, f"cannot check the VM: {error.render()}")
    except Exception as error:  # a hookscript must never print a traceback into the task log
        return verdict(config, vmid, 2, f"internal error: {type(error).__name__}: {error}")
    for warning in answer.warnings:
        hookconf.log_line(config, f"VM {vmid} pre-start: warning: {warning}")
    if answer.refusal:
        return verdict(config, vmid, 1, answer.refusal)
    return allow(config, vmid, f"ok: {answer.summary}")


def allow(config: hookconf.HookConfig, vmid: str, message: str) -> int:
    hookconf.log_line(config, f"VM {vmid} pre-start: {message}")
    print(f"layoutd: VM {vmid}: {message}")
    return 0


def verdict(config: hookconf.HookConfig, vmid: str, code: int, reason: str) -> int:
    """Enforce: refuse with the reason on stderr (the task log shows it). Warn: log and allow."""
    if config.policy == "warn":
        return allow(config, vmid, f"allowed (policy warn): {reason}")
    hookconf.log_line(config, f"VM {vmid} pre-start: refused: {reason}")
    print(f"layoutd: refusing to start VM {vmid}: {reason}", file=sys.stderr)
    return code
