"""docs/kubevirt.md's ConfigMap and annotations work as written: the ConfigMap's onDefineDomain
script, run the way KubeVirt's sidecar-shim runs it (`onDefineDomain --vmi JSON --domain XML`
found on PATH), prints the fixed domain; each annotation is the JSON list KubeVirt reads, and the
shim's one names that ConfigMap and key at the shim's hook path."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT
from tests.kubevirt.domains import AMD, domain, vmi

DOC = ROOT / "docs" / "kubevirt.md"
SIDECAR_KEYS = {"image", "imagePullPolicy", "command", "args", "configMap", "pvc"}


def yaml_blocks() -> list[Any]:
    return [yaml.safe_load(block) for block in
            re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)]


def sidecars(block: Any) -> list[dict[str, Any]]:
    listed = json.loads(block["metadata"]["annotations"]["hooks.kubevirt.io/hookSidecars"])
    assert isinstance(listed, list)
    for sidecar in listed:
        assert set(sidecar) <= SIDECAR_KEYS, sidecar
    return listed


def test_the_configmap_script_is_what_the_shim_runs(tmp_path: Path) -> None:
    blocks = yaml_blocks()
    configmap = next(block for block in blocks if block.get("kind") == "ConfigMap")
    shim, server = (sidecars(block) for block in blocks if "metadata" in block
                    and "annotations" in block["metadata"])
    (entry,) = shim
    assert entry["args"] == ["--version", "v1alpha3"]
    assert entry["configMap"] == {"name": configmap["metadata"]["name"],
                                  "key": "onDefineDomain", "hookPath": "/usr/bin/onDefineDomain"}
    (serving,) = server
    assert serving["command"][:3] == ["layoutd", "kubevirt", "serve"]
    assert serving["command"][serving["command"].index("--socket") + 1].startswith(
        "/var/run/kubevirt-hooks/")

    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "onDefineDomain"
    script.write_text(configmap["data"]["onDefineDomain"])
    script.chmod(0o755)
    env = {**os.environ, "LAYOUTD_HOST": AMD,
           "PATH": os.pathsep.join([str(folder), str(Path(sys.executable).parent),
                                    os.environ.get("PATH", "")])}
    result = subprocess.run(["onDefineDomain", "--vmi", vmi(), "--domain", domain(AMD)],
                            capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "<address type='dimm'" in result.stdout and "QEMU 10.0" in result.stderr
