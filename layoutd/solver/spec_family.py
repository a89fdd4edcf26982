"""Machine family of a machine type name (q35 | pc | virt)."""

from layoutd.models.spec import machine_family


def family_of(machine: str) -> str:
    return machine_family(machine) or "q35"
