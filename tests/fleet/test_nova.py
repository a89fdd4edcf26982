"""OpenStack: layoutd's provider.yaml read by Nova's own code (nova.compute.provider_config from
the `nova` package), and a real Placement (`openstack-placement`, on sqlite, started here on
127.0.0.1): every example host becomes a resource provider with the traits Nova read, and
GET /allocation_candidates with a VM's required traits returns exactly the hosts on which
`layoutd check` accepts that VM's plan. Both packages live in their own venv
($LAYOUTD_CACHE/openstack-venv, scripts/openstack-venv.sh)."""

import json
import os
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, need
from tests.fleet.conftest import HOSTS, publish

CACHE = Path(os.environ.get("LAYOUTD_CACHE", Path.home() / ".cache" / "layoutd"))
VENV = CACHE / "openstack-venv"

READ_CONFIGS = """
import json, sys
from nova import exception
from nova.compute import provider_config
answers = {}
for folder in sys.argv[1:]:
    try:
        found = provider_config.get_provider_configs(folder)
    except exception.ProviderConfigException as error:
        answers[folder] = {"refused": str(error)}
    else:
        answers[folder] = {"providers": {key: sorted(value.get("traits", {}).get("additional", []))
                                         for key, value in found.items()}}
print(json.dumps(answers))
"""


def openstack_python() -> str:
    python = VENV / "bin" / "python"
    need(python.exists() and (VENV / "pins").exists(),
         f"nova and openstack-placement in {VENV} (scripts/openstack-venv.sh)")
    return str(python)


def nova_reads(*folders: Path) -> list[dict]:
    """What Nova's get_provider_configs makes of each provider_config_location folder."""
    result = subprocess.run([openstack_python(), "-W", "ignore", "-c", READ_CONFIGS,
                             *map(str, folders)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    return [answers[str(folder)] for folder in folders]


@pytest.fixture(scope="module")
def nova_traits(pools: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """host -> the traits Nova reads from `fleet publish --format nova` (one folder per host: each
    names $COMPUTE_NODE)."""
    openstack_python()
    folders = []
    for host in HOSTS:
        folders.append(tmp_path_factory.mktemp(host))
        (folders[-1] / "layoutd.yaml").write_text(publish(host, pools, "nova"))
    traits = {}
    for host, answer in zip(HOSTS, nova_reads(*folders), strict=True):
        assert "providers" in answer, answer
        traits[host] = answer["providers"].get("$COMPUTE_NODE", [])
    return traits


def test_nova_accepts_the_provider_yaml(nova_traits: dict[str, list[str]],
                                        published: dict[str, dict]) -> None:
    for host, facts in published.items():
        assert nova_traits[host] == sorted(facts["nova_traits"]), host
    assert any(nova_traits.values())


BREAKAGES = [  # (change to a good provider.yaml, what Nova's refusal says)
    (("CUSTOM_LAYOUTD_HOLE_AMD_HT", "HW_CPU_X86_AVX"), "only custom traits"),
    (("schema_version: '1.0'", "schema_version: '2.0'"), "major version"),
    (("uuid: $COMPUTE_NODE", "uuid: compute-node"), "did not pass validation"),
    (("CUSTOM_LAYOUTD_POOL_MIG_1100G", "CUSTOM_layoutd_pool"), "did not pass validation"),
]


def test_nova_refuses_a_broken_one(pools: dict[str, Path], tmp_path: Path) -> None:
    text = publish("amd-epyc-two-gpus", pools, "nova")
    folders = []
    for index, ((old, new), _) in enumerate(BREAKAGES):
        assert old in text
        folders.append(tmp_path / str(index))
        folders[-1].mkdir()
        (folders[-1] / "layoutd.yaml").write_text(text.replace(old, new))
    for ((old, _), needle), answer in zip(BREAKAGES, nova_reads(*folders), strict=True):
        assert needle in answer.get("refused", ""), (old, answer)


def test_maxphysaddr_is_refused_as_a_flavor_extra_spec_and_taken_as_an_image_property() -> None:
    """docs/fleet.md's claim, in Nova's own code: the flavor extra-spec validator (applied by the
    API from microversion 2.86) knows no hw:maxphysaddr_*; the image properties exist."""
    script = """
import json, warnings
warnings.simplefilter("ignore")
from nova import exception, objects
from nova.api.validation.extra_specs import validators
out = {}
for key, value in [("hw:maxphysaddr_mode", "emulate"), ("hw:maxphysaddr_bits", "40"),
                   ("trait:CUSTOM_LAYOUTD_POOL_SMALL", "required"),
                   ("trait:CUSTOM_LAYOUTD_HOLE_AMD_HT", "forbidden"), ("hw:cpu_policy", "dedicated")]:
    try:
        validators.validate(key, value)
        out[key] = "ok"
    except exception.ValidationError as error:
        out[key] = str(error)
objects.register_all()
props = objects.ImageMetaProps.from_dict({"hw_maxphysaddr_mode": "emulate", "hw_maxphysaddr_bits": 40})
out["image"] = [props.hw_maxphysaddr_mode, props.hw_maxphysaddr_bits]
print(json.dumps(out))
"""
    result = subprocess.run([openstack_python(), "-W", "ignore", "-c", script], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("hw:maxphysaddr_mode", "hw:maxphysaddr_bits"):
        assert "does not appear to be a valid extra spec" in out[key], out
    assert out["trait:CUSTOM_LAYOUTD_POOL_SMALL"] == out["trait:CUSTOM_LAYOUTD_HOLE_AMD_HT"] == "ok"
    assert out["hw:cpu_policy"] == "ok"
    assert out["image"] == ["emulate", 40]


class Placement:
    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, body: object = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "X-Auth-Token": "admin", "OpenStack-API-Version": "placement 1.39",
            "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                text = response.read()
                return response.status, json.loads(text) if text else {}
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")


@pytest.fixture(scope="module")
def placement(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Placement]:
    python = openstack_python()
    folder = tmp_path_factory.mktemp("placement")
    conf = folder / "placement.conf"
    conf.write_text("[api]\nauth_strategy = noauth2\n[placement_database]\n"
                    f"connection = sqlite:///{folder / 'placement.db'}\nsync_on_startup = True\n")
    script = ROOT / "tests" / "support" / "placement_server.py"
    server = subprocess.Popen([python, "-W", "ignore", str(script), str(conf)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        assert port.isdigit(), (port, server.stderr.read() if server.poll() is not None else "")
        yield Placement(f"http://127.0.0.1:{port}")
    finally:
        server.kill()
        server.communicate()


@pytest.fixture(scope="module")
def providers(placement: Placement, nova_traits: dict[str, list[str]]) -> dict[str, str]:
    """Every example host as a compute node provider, with the traits Nova read (what
    nova-compute does at start-up: ensure the custom traits exist, then set them). uuid -> host."""
    found = {}
    for host, traits in nova_traits.items():
        ident = str(uuid.uuid4())
        status, _ = placement.call("POST", "/resource_providers", {"name": host, "uuid": ident})
        assert status == 200, status
        status, _ = placement.call("PUT", f"/resource_providers/{ident}/inventories", {
            "resource_provider_generation": 0,
            "inventories": {"VCPU": {"total": 64}, "MEMORY_MB": {"total": 2 * 1024 * 1024}}})
        assert status == 200, status
        for trait in traits:
            assert placement.call("PUT", f"/traits/{trait}")[0] in (201, 204)
        status, _ = placement.call("PUT", f"/resource_providers/{ident}/traits",
                                   {"resource_provider_generation": 1, "traits": traits})
        assert status == 200, status
        found[ident] = host
    return found


def candidates(placement: Placement, providers: dict[str, str], required: str, memory_mb: int) -> set[str]:
    query = urllib.parse.urlencode({"resources": f"VCPU:4,MEMORY_MB:{memory_mb}", "required": required})
    status, body = placement.call("GET", f"/allocation_candidates?{query}")
    assert status == 200, body
    return {providers[ident] for ident in body["provider_summaries"]}


def test_allocation_candidates_are_the_hosts_that_map_the_vm(
        placement: Placement, providers: dict[str, str], pools: dict[str, Path],
        check_codes: dict[tuple[str, str], int | None], published: dict[str, dict]) -> None:
    for name, path in pools.items():
        plan = json.loads(path.read_text())
        memory_mb = sum(int(r["end"], 16) - int(r["start"], 16) + 1 for r in plan["layout"]) >> 20
        trait = "CUSTOM_LAYOUTD_POOL_" + name.upper().replace("-", "_").replace(".", "_")
        mapping = {host for host in HOSTS if check_codes[name, host] == 0}
        assert candidates(placement, providers, trait, memory_mb) == mapping, name
        assert mapping, name
    # a flavor may also forbid a hole: the small VM, but not on a host with AMD's HT hole
    small = {host for host in HOSTS if check_codes["small", host] == 0}
    amd = {host for host, facts in published.items() if any(h["kind"] == "amd-ht" for h in facts["holes"])}
    assert amd & small
    found = candidates(placement, providers, "CUSTOM_LAYOUTD_POOL_SMALL,!CUSTOM_LAYOUTD_HOLE_AMD_HT", 65536)
    assert found == small - amd
    # and require an IOMMU width class: only hosts whose IOMMU said its width
    found = candidates(placement, providers, "CUSTOM_LAYOUTD_IOMMU_MAPS_39BIT", 1024)
    assert found == {host for host, facts in published.items() if facts["iommu_bits"]} != set()
