"""`layoutd fleet publish`'s documents, one per engine: JSON, Nova's provider.yaml, an NFD
feature file and an NFD NodeFeature object. Pure: the facts (models/fleet.py) come from layoutd.fleet.

Nova (nova/compute/provider_config.py, SCHEMA_V1): only CUSTOM_ traits, on `$COMPUTE_NODE`.
NFD (pkg/apis/nfd/validate): label names are prefixed qualified names outside kubernetes.io,
values at most 63 characters of [A-Za-z0-9._-]; NodeFeature values are strings.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import yaml

from layoutd.models.fleet import IOMMU_CLASSES, Published, label_name, trait_name
from layoutd.models.warning_codes import coded
from layoutd.units import hex_addr

LABEL_PREFIX = "layoutd.io/"
NFD_NAMESPACE = "node-feature-discovery"
NODE_NAME_LABEL = "nfd.node.kubernetes.io/node-name"
FEATURES_D = "/etc/kubernetes/node-feature-discovery/features.d"
PROVIDER_CONFIG = "/etc/nova/provider_config"
PROVIDER_SCHEMA = "1.0"  # nova/compute/provider_config.py SUPPORTED_SCHEMA_VERSIONS: 1.0

COARSE_HOLES = {"amd-ht": "AMD_HT", "rmrr": "RMRR"}
"""Hole kinds published as a coarse trait and label (a flavor may forbid them); every hole is in
the JSON and the NodeFeature. An RMRR counts only when it blocks (type `direct`)."""


def coarse_holes(facts: Published) -> list[str]:
    return [kind for kind in COARSE_HOLES
            if any(hole.kind == kind and (kind != "rmrr" or hole.type == "direct")
                   for hole in facts.holes)]


def nova_traits(facts: Published) -> list[str]:
    """Pool traits (members only), IOMMU width classes (the host maps at least 2^N), and holes
    a flavor may forbid."""
    traits = [trait_name(pool) for pool in facts.members()]
    if facts.iommu_bits is not None:
        traits += [f"CUSTOM_LAYOUTD_IOMMU_MAPS_{bits}BIT" for bits in IOMMU_CLASSES
                   if facts.iommu_bits >= bits]
    return traits + [f"CUSTOM_LAYOUTD_HOLE_{COARSE_HOLES[kind]}" for kind in coarse_holes(facts)]


def nfd_labels(facts: Published) -> dict[str, str]:
    labels = {label_name(pool): "true" for pool in facts.members()}
    if facts.iommu_bits is not None:
        labels[LABEL_PREFIX + "iommu-bits"] = str(facts.iommu_bits)
    labels.update({LABEL_PREFIX + f"hole-{kind}": "true" for kind in coarse_holes(facts)})
    return labels


def as_json(facts: Published) -> dict[str, Any]:
    return {
        "source": facts.source,
        "arch": facts.arch,
        "cpu": {"vendor": facts.cpu_vendor, "phys_bits": facts.cpu_phys_bits},
        "iommu_bits": facts.iommu_bits,
        "aperture_end": None if facts.aperture_end is None else hex_addr(facts.aperture_end),
        "usable": [{"start": hex_addr(r.start), "end": hex_addr(r.end)} for r in facts.usable],
        "holes": [{"start": hex_addr(h.start), "end": hex_addr(h.end), "type": h.type,
                   "kind": h.kind, "groups": list(h.groups)} for h in facts.holes],
        "pools": [{"name": m.pool, "member": m.member, "reasons": list(m.reasons),
                   "warnings": list(m.warnings), "warning_codes": coded(m.warnings)}
                  for m in facts.pools],
        "nova_traits": nova_traits(facts),
        "nfd_labels": nfd_labels(facts),
        "warnings": list(facts.warnings),
        "warning_codes": coded(facts.warnings),
    }


def _comments(facts: Published) -> list[str]:
    lines = [f"written by `layoutd fleet publish` from {facts.source}"]
    for entry in facts.pools:
        if entry.member:
            lines.append(f"pool {entry.pool}: member")
        else:
            lines += [f"pool {entry.pool}: not a member: {reason}" for reason in entry.reasons]
    lines += [f"warning: {warning}" for warning in facts.warnings]
    if facts.iommu_bits is None:
        lines.append("the IOMMU's address width is unknown here: no CUSTOM_LAYOUTD_IOMMU_MAPS_* "
                     "trait or iommu-bits label is published")
    return [wrapped for line in lines
            for wrapped in textwrap.wrap(line, 98, initial_indent="# ", subsequent_indent="#   ")]


def nova_yaml(facts: Published) -> str:
    """A provider.yaml for nova-compute's [compute] provider_config_location."""
    document = {"meta": {"schema_version": PROVIDER_SCHEMA},
                "providers": [{"identification": {"uuid": "$COMPUTE_NODE"},
                               "traits": {"additional": nova_traits(facts)}}]}
    head = [*_comments(facts),
            f"# install as {PROVIDER_CONFIG}/layoutd.yaml; nova-compute reads it at start-up"]
    return "\n".join(head) + "\n" + yaml.safe_dump(document, sort_keys=False)


def nfd_features(facts: Published) -> str:
    """A feature file for NFD's local source: one label per line."""
    head = [*_comments(facts),
            f"# install as {FEATURES_D}/layoutd (write .layoutd, then rename it into place)"]
    return "\n".join([*head, *(f"{key}={value}" for key, value in nfd_labels(facts).items())]) + "\n"


def node_feature(facts: Published, node: str) -> str:
    """An NFD NodeFeature object (nfd.k8s-sigs.io/v1alpha1) for `node`: features for
    NodeFeatureRules, and the labels."""
    iommu = {"aperture_end": hex_addr(facts.aperture_end)} if facts.aperture_end is not None else {}
    if facts.iommu_bits is not None:
        iommu["bits"] = str(facts.iommu_bits)
    features = {
        "flags": {
            "layoutd.pool": {"elements": {pool: {} for pool in facts.members()}},
            "layoutd.hole": {"elements": {hole.kind: {} for hole in facts.holes}},
        },
        "attributes": {"layoutd.iommu": {"elements": iommu}},
        "instances": {"layoutd.reserved": {"elements": [
            {"attributes": {"start": hex_addr(h.start), "end": hex_addr(h.end), "type": h.type,
                            "kind": h.kind}} for h in facts.holes]}},
    }
    document = {
        "apiVersion": "nfd.k8s-sigs.io/v1alpha1",
        "kind": "NodeFeature",
        "metadata": {"name": f"layoutd-{node}", "namespace": NFD_NAMESPACE,
                     "labels": {NODE_NAME_LABEL: node}},
        "spec": {"features": features, "labels": nfd_labels(facts)},
    }
    return "\n".join(_comments(facts)) + "\n" + yaml.safe_dump(document, sort_keys=False)


def render(facts: Published, fmt: str, node: str | None = None) -> str:
    if fmt == "json":
        return json.dumps(as_json(facts), indent=2) + "\n"
    if fmt == "nova":
        return nova_yaml(facts)
    if fmt == "nfd-features":
        return nfd_features(facts)
    assert node is not None
    return node_feature(facts, node)
