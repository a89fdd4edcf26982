#!/usr/bin/env bash
# The README's first command: install layoutd into ./.venv and run it on a bundled example:
# an AMD EPYC host whose GPUs' IOMMU cannot map the HyperTransport hole below 1 TiB.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
host=examples/hosts/amd-epyc-two-gpus
run() { echo; echo "\$ layoutd $*"; .venv/bin/layoutd "$@"; }
run probe --host "$host"
# QEMU's own layout for 1100G on a machine type older than 7.1 (no AMD 1 TiB rule) crosses the
# hole: check says no (exit 1).
echo
echo "# This check is meant to fail (exit 1): QEMU's own layout crosses the host's hole."
run check --host "$host" --qemu-version 7.2 -- qemu-system-x86_64 -accel kvm -machine pc-q35-6.2 \
    -cpu host -m 1100G -device vfio-pci,host=0000:29:00.0 || echo "(exit $?, as expected)"
echo
echo "# plan finds a layout that avoids the hole:"
# plan finds a layout that avoids it, and prints the QEMU arguments.
run plan examples/specs/quickstart.yaml --host "$host" --qemu-version 7.2
run plan examples/specs/quickstart.yaml --host "$host" --qemu-version 7.2 --format argv
