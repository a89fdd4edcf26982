"""KubeVirt-shaped inputs: the domain virt-launcher writes for a GPU VMI (tab-indented, double
quotes, empty elements written out, <metadata> with KubeVirt's namespace, a <qemu:commandline>,
the hostdev's source address with type="pci"), and its VMI as JSON."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.conftest import EXAMPLES

DATA = Path(__file__).parent / "data"
AMD = str(EXAMPLES / "hosts" / "amd-epyc-two-gpus")  # HyperTransport hole below 1 TiB; GPU 2a:00.0
NARROW = str(EXAMPLES / "hosts" / "intel-46bit-cpu-39bit-iommu")  # IOMMU maps 512 GiB; GPU 01:00.0
BUS = {AMD: "0x2a", NARROW: "0x01"}  # where the node's GPU is: virt-launcher writes it in
OVMF = "/usr/share/OVMF/OVMF_CODE_4M.fd"  # Debian 12's, known to layoutd's firmware model
EFI = (f'\t\t<loader readonly="yes" secure="no" type="pflash">{OVMF}</loader>\n'
       '\t\t<nvram template="/usr/share/OVMF/OVMF_VARS_4M.fd">/var/run/kubevirt-private/libvirt/'
       'qemu/nvram/llm-trainer_VARS.fd</nvram>\n')


def domain(host: str, firmware: str = "seabios") -> str:
    xml = (DATA / "gpu-domain.xml").read_text().replace("{bus}", BUS[host])
    if firmware == "ovmf":
        xml = xml.replace('\t\t<smbios mode="sysinfo"></smbios>\n',
                          f'\t\t<smbios mode="sysinfo"></smbios>\n{EFI}')
    return xml


def vmi(**status: Any) -> str:
    document = json.loads((DATA / "gpu-vmi.json").read_text())
    document = copy.deepcopy(document)
    document["status"].update(status)
    return json.dumps(document)


MIGRATING = {"migrationState": {"sourceNode": "gpu-node-a", "targetNode": "gpu-node-b",
                                "targetPod": "virt-launcher-llm-trainer-7xk2p",
                                "migrationUid": "0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f"}}
MIGRATED = {"migrationState": {**MIGRATING["migrationState"], "completed": True}}


def schema_ready(xml: str) -> str:
    """KubeVirt writes type="pci" on the hostdev's <source><address>: libvirt's parser takes it,
    its RNG schema does not. Dropped before virt-xml-validate, in the input as in the output."""
    return xml.replace('<address type="pci" domain=', '<address domain=')


def stuck_host(folder: Path) -> str:
    """The AMD host with its GPU group's reserved_regions a FIFO nobody writes: reading it never
    returns, so only a time limit ends the judgement."""
    import os
    import shutil

    root = folder / "stuck-host"
    shutil.copytree(AMD, root)
    regions = root / "sys/kernel/iommu_groups/27/reserved_regions"
    regions.unlink()
    os.mkfifo(regions)
    return str(root)
