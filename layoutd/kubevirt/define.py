"""OnDefineDomain: the domain virt-launcher is about to define, fixed for this node's IOMMU.

One rule for the sidecar-shim command and the gRPC server:

- a start: the domain gets what `layoutd libvirt fix` writes (maxphysaddr, the RAM split, DIMMs,
  the PCI window), planned for this node and read back through the libvirt hook's judgement;
  where no layout can be planned (or layoutd cannot model the domain), the domain is judged as
  given: a proven collision refuses (NoAnswer, naming the hole), anything else passes unchanged
  with a note saying what was not done;
- a migration target (the VMI's migrationState names a target and is neither completed nor
  failed): virt-launcher discards what the hook returns, so the domain is never rewritten; the
  hook only vetoes, when the domain as given collides here and no layout planned for it fits
  here either;
- no host PCI device in the domain: nothing VFIO maps, passed unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from layoutd.errors import InputError, NoAnswer, NoLayout, NotModelled, QemuRefusal
from layoutd.libvirt.domain import read_domain
from layoutd.libvirt.fix import fix
from layoutd.libvirt.guard import DomainCheck, check_domain
from layoutd.libvirt.hookconf import HookConfig
from layoutd.models.plan import Plan
from layoutd.record import Record

VMI_SOURCE = "--vmi"
DOMAIN_SOURCE = "--domain"
UNPLANNED = (NoLayout, NotModelled, QemuRefusal)
"""Why a layout could not be planned that leaves the domain to be judged as given."""


class Vmi(Record):
    name: str  # namespace/name, for messages
    migration_target: bool


class Decision(Record):
    xml: bytes  # the domain to define (unchanged unless `changed`)
    changed: bool
    notes: tuple[str, ...]  # what was done or not judged, for the log


def read_vmi(data: bytes | str, source: str = VMI_SOURCE) -> Vmi:
    """The VMI virt-launcher passes (JSON): its name and whether this is a migration target."""
    try:
        vmi = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(f"not a JSON document: {error}", file=source) from error
    if not isinstance(vmi, dict):
        raise InputError(f"a VirtualMachineInstance is a JSON object, not {type(vmi).__name__}",
                         file=source)
    kind = vmi.get("kind", "VirtualMachineInstance")
    if kind != "VirtualMachineInstance":
        raise InputError(f"kind is {kind!r}, not 'VirtualMachineInstance'", file=source,
                         field="kind")
    metadata = _object(vmi, "metadata", source)
    status = _object(vmi, "status", source)
    migration = _object(status, "migrationState", source, "status.")
    name = "/".join(str(metadata[key]) for key in ("namespace", "name") if metadata.get(key))
    target = bool(migration.get("targetNode") or migration.get("targetPod"))
    ended = bool(migration.get("completed") or migration.get("failed"))
    return Vmi(name=name or "(unnamed)", migration_target=target and not ended)


def _object(parent: dict[str, Any], key: str, source: str, prefix: str = "") -> dict[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"must be a JSON object, not {type(value).__name__}", file=source,
                         field=prefix + key)
    return value


def on_define_domain(vmi_data: bytes | str, domain_data: bytes | str, host: str,
                     qemu_version: str | None = None) -> Decision:
    """The domain to define, or NoAnswer for a proven collision on this node."""
    vmi = read_vmi(vmi_data)
    xml = domain_data.encode() if isinstance(domain_data, str) else domain_data
    domain = read_domain(xml, DOMAIN_SOURCE)
    if not domain.hostdevs:
        return Decision(xml=xml, changed=False, notes=(
            f"{vmi.name}: no host PCI device (<hostdev>) in the domain: nothing VFIO maps, "
            "passed unchanged",))
    config = HookConfig(host=host, qemu_version=qemu_version)
    try:
        fixed, plan = fix(xml, DOMAIN_SOURCE, [host], qemu_version)
    except NoLayout as error:
        xml_words = error.say
        spoken = error.speaking(lambda idea: vmi_suggestion(idea, xml_words))
        return _as_given(vmi, xml, config, f"no layout planned: {spoken.render()}")
    except UNPLANNED as error:
        return _as_given(vmi, xml, config, f"no layout planned: {error.render()}")
    if vmi.migration_target:
        return Decision(xml=xml, changed=False, notes=(
            f"{vmi.name}: migration target: a layout of this VM fits this node ({_said(plan)}); "
            "passed unchanged (virt-launcher discards the result here, and the source's own "
            "layout is not visible to the hook)",))
    report = check_domain(fixed, config, DOMAIN_SOURCE)
    if report.refusal:  # the plan is made to avoid this; said, never passed
        raise NoAnswer(f"refusing VMI {vmi.name!r} on this node: {report.refusal}")
    warnings = dict.fromkeys((*plan.warnings, *report.warnings))  # each said once
    notes = (f"{vmi.name}: domain fixed for this node ({_said(plan)}); {report.summary}",
             *(f"{vmi.name}: warning: {text}" for text in warnings))
    return Decision(xml=fixed, changed=fixed != xml, notes=notes)


VMI_FIELDS = {"memory.size": "spec.domain.memory.guest", "machine": "spec.domain.machine.type",
              "memory.hugepages": "spec.domain.memory.hugepages.pageSize"}
"""Spec paths a VMI has a field for; sizes in Kubernetes quantities (480G -> 480Gi)."""


def vmi_suggestion(idea: Any, otherwise: Any) -> str:
    """A plan suggestion said as the VMI's fields where the VMI has them, else as `otherwise`
    says it (the domain XML)."""
    said = []
    for path, value in idea.change.items():
        text = str(value)
        if path == "devices":
            said.append(f"only the host devices {', '.join(value) or '(none)'} "
                        "(spec.domain.devices.gpus / hostDevices)")
        elif path in VMI_FIELDS:
            size = path != "machine" and text[-1:] in "KMGT"
            said.append(f"{VMI_FIELDS[path]}: {text}{'i' if size else ''}")
        else:
            return str(otherwise(idea) if otherwise else idea.text())
    return f"{'; '.join(said)} ({idea.full_why()})"


def _said(plan: Plan) -> str:
    regions = ", ".join(f"{r.kind} {r.start:#x}-{r.end:#x}" for r in plan.layout)
    own = "; QEMU's own layout already fits" if plan.default_layout else ""
    return f"QEMU {plan.qemu_version} RAM {regions}{own}"


def _as_given(vmi: Vmi, xml: bytes, config: HookConfig, why: str) -> Decision:
    """No layout planned: judge the domain as given. On a start it is what will be defined, so a
    proven collision refuses; on a migration target it refuses too, since no layout planned for
    this VM fits this node either (the source's hook could not have moved it clear)."""
    try:
        report: DomainCheck = check_domain(xml, config, DOMAIN_SOURCE)
    except (NotModelled, QemuRefusal) as error:
        return Decision(xml=xml, changed=False, notes=(
            f"{vmi.name}: passed unchanged, not judged: {why}; and the domain as given could "
            f"not be checked: {error.render()}",))
    if report.refusal:
        where = "as a migration target " if vmi.migration_target else ""
        raise NoAnswer(f"refusing VMI {vmi.name!r} {where}on this node: {report.refusal}\n"
                       f"layoutd could not plan a layout that avoids them ({why})")
    return Decision(xml=xml, changed=False, notes=(
        f"{vmi.name}: passed unchanged ({why}); as given: {report.summary}",
        *(f"{vmi.name}: warning: {text}" for text in report.warnings)))
