#!/usr/bin/env bash
# The README's first command: install layoutd and run it on a bundled example host.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
set -x
.venv/bin/layoutd probe --host examples/hosts/amd-epyc-two-gpus
