#!/usr/bin/env bash
# Install layoutd into ./.venv (Debian 12: needs python3-venv). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
extra=${1:-}
.venv/bin/python -m pip install -qq --upgrade pip
if [ -n "$extra" ]; then
    .venv/bin/python -m pip install -qq -e ".[$extra]"
else
    .venv/bin/python -m pip install -qq -e .
fi
