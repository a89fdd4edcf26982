"""NFD: the NodeFeature layoutd publishes and the NodeFeatureRule example validate against NFD's
published CRD schema (tests/fleet/data, with jsonschema), and every label follows NFD's label
rules (pkg/apis/nfd/validate: a prefixed qualified name outside kubernetes.io, a label value).
No API server can run here; the schema and the rules are what the API server and nfd-master
apply."""

import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import EXAMPLES, run_layoutd
from tests.fleet.conftest import HOSTS, pool_args, publish

CRDS = Path(__file__).parent / "data" / "nfd-api-crds.yaml"
RULE = EXAMPLES / "fleet" / "nodefeaturerule.yaml"

# k8s.io/apimachinery/pkg/util/validation: IsQualifiedName, IsValidLabelValue, IsDNS1123Subdomain
NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def label_errors(key: str, value: str) -> list[str]:
    """NFD's validate.Label: what is wrong with a label (empty: nothing)."""
    errors = []
    prefix, slash, name = key.rpartition("/")
    if not slash or not prefix:
        errors.append("unprefixed keys are not allowed")
    elif len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix):
        errors.append(f"prefix {prefix!r} is not a DNS-1123 subdomain")
    elif (prefix == "kubernetes.io" or prefix.endswith(".kubernetes.io")) and prefix not in (
            "feature.node.kubernetes.io", "profile.node.kubernetes.io") and not prefix.endswith(
            (".feature.node.kubernetes.io", ".profile.node.kubernetes.io")):
        errors.append("namespace is not allowed")
    if len(name) > 63 or not NAME.match(name):
        errors.append(f"name {name!r} is not a qualified name")
    if len(value) > 63 or (value and not NAME.match(value)):
        errors.append(f"value {value!r} is not a label value")
    return errors


def test_label_rules_refuse_what_nfd_refuses() -> None:
    assert label_errors("layoutd.io/pool-gpu", "true") == []
    assert label_errors("feature.node.kubernetes.io/x", "1") == []
    assert label_errors("pool-gpu", "true")  # unprefixed
    assert label_errors("node.kubernetes.io/pool", "true")  # denied namespace
    assert label_errors("layoutd.io/pool-" + "x" * 59, "true")  # name over 63
    assert label_errors("layoutd.io/pool", "0x7fffffffff-")  # value must end alphanumeric
    assert label_errors("layoutd.io/pool", "v" * 64)


def crd_schema(kind: str) -> dict:
    for document in yaml.safe_load_all(CRDS.read_text()):
        if document and document["spec"]["names"]["kind"] == kind:
            (version,) = [v for v in document["spec"]["versions"] if v["name"] == "v1alpha1"]
            assert document["spec"]["group"] == "nfd.k8s-sigs.io"
            return version["schema"]["openAPIV3Schema"]
    raise AssertionError(kind)


def validate(document: dict, kind: str) -> None:
    assert document["apiVersion"] == "nfd.k8s-sigs.io/v1alpha1" and document["kind"] == kind
    jsonschema.Draft7Validator(crd_schema(kind)).validate(document)
    name = document["metadata"]["name"]
    assert len(name) <= 253 and DNS1123_SUBDOMAIN.match(name), name


def test_the_schema_refuses_a_broken_nodefeature() -> None:
    """The copy of the schema is strict enough to mean something."""
    good = {"apiVersion": "nfd.k8s-sigs.io/v1alpha1", "kind": "NodeFeature",
            "metadata": {"name": "n"}, "spec": {"labels": {"layoutd.io/a": "true"}}}
    validate(good, "NodeFeature")
    for broken in ({"spec": {"labels": {"layoutd.io/a": True}}},
                   {"spec": {"features": {"attributes": {"layoutd.iommu": {"elements": {"bits": 39}}}}}},
                   {"spec": {"features": {"flags": {"layoutd.pool": {"elements": ["small"]}}}}}):
        with pytest.raises(jsonschema.ValidationError):
            validate({**good, **broken}, "NodeFeature")


@pytest.fixture(scope="module")
def node_features(pools: dict[str, Path]) -> dict[str, dict]:
    found = {}
    for index, host in enumerate(HOSTS):
        text = publish(host, pools, "nodefeature", "--node", f"worker-{index}.example.com")
        found[host] = yaml.safe_load(text)
    return found


def test_nodefeatures_validate_and_carry_the_labels(node_features: dict[str, dict],
                                                    published: dict[str, dict]) -> None:
    for index, (host, document) in enumerate(node_features.items()):
        validate(document, "NodeFeature")
        node = f"worker-{index}.example.com"
        assert document["metadata"]["labels"] == {"nfd.node.kubernetes.io/node-name": node}
        labels = document["spec"]["labels"]
        assert labels == published[host]["nfd_labels"]
        for key, value in labels.items():
            assert label_errors(key, value) == [], (host, key, value)
        # an object label (Kubernetes' syntax; NFD's namespace rule is for node labels)
        assert [e for e in label_errors(*next(iter(document["metadata"]["labels"].items())))
                if e != "namespace is not allowed"] == []
        members = {p["name"] for p in published[host]["pools"] if p["member"]}
        assert set(document["spec"]["features"]["flags"]["layoutd.pool"]["elements"]) == members
        assert {k for k in labels if "/pool-" in k} == {f"layoutd.io/pool-{m}" for m in members}


def matches(rule: dict, features: dict) -> bool:
    """NFD's matchFeatures for the operators the example uses (Exists, DoesNotExist, In, Gt)."""
    for term in rule["matchFeatures"]:
        elements = {}
        for kind in ("flags", "attributes"):
            elements.update(features.get(kind, {}).get(term["feature"], {}).get("elements", {}))
        for key, expression in term["matchExpressions"].items():
            if not holds(expression["op"], expression.get("value", []), elements.get(key)):
                return False
    return True


def holds(op: str, values: list[str], value: str | None) -> bool:
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op == "In":
        return value in values
    if op == "Gt":
        return value is not None and int(value) > int(values[0])
    raise AssertionError(f"operator {op} is not evaluated here")


def test_nodefeaturerule_example(node_features: dict[str, dict], published: dict[str, dict]) -> None:
    rule_doc = yaml.safe_load(RULE.read_text())
    validate(rule_doc, "NodeFeatureRule")
    rules = rule_doc["spec"]["rules"]
    for rule in rules:
        for key, value in rule["labels"].items():
            assert label_errors(key, value) == []
    labelled = {rule["name"]: {h for h, doc in node_features.items()
                               if matches(rule, doc["spec"]["features"])} for rule in rules}
    small = {h for h, facts in published.items() if facts["iommu_bits"] is not None
             and any(p["name"] == "small" and p["member"] for p in facts["pools"])}
    assert labelled[rules[0]["name"]] == small == {"intel-46bit-cpu-39bit-iommu", "intel-4gpu-39bit"}
    intel = {h for h in HOSTS if h.startswith("intel-")}
    assert labelled[rules[1]["name"]] == intel


def test_feature_file_lines_follow_nfds_rules(pools: dict[str, Path]) -> None:
    for host in HOSTS:
        text = publish(host, pools, "nfd-features")
        assert len(text.encode()) < 64 * 1024  # NFD ignores a larger feature file
        for line in text.splitlines():
            if line.startswith("#"):
                assert not line.startswith("# +"), line  # no accidental directive
                continue
            key, _, value = line.partition("=")
            assert label_errors(key, value) == [], (host, line)


def test_a_long_node_name_is_refused(pools: dict[str, Path]) -> None:
    result = run_layoutd("fleet", "publish", "--host", str(EXAMPLES / "hosts" / HOSTS[0]),
                         *pool_args(pools), "--format", "nodefeature", "--node", "n" * 64)
    assert result.returncode == 2 and "--node" in result.stderr
