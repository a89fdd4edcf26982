#!/usr/bin/env bash
# OpenStack Nova (for its provider.yaml validator) and Placement (run on sqlite by the fleet
# tests), in their own venv under the cache so that their many dependencies never meet layoutd's
# .venv. Idempotent: a venv whose pins file matches is kept (the file is written last).
set -euo pipefail
CACHE=${LAYOUTD_CACHE:-$HOME/.cache/layoutd}
VENV="$CACHE/openstack-venv"
PINS=(nova==34.0.0 openstack-placement==16.0.0)
if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/pins" 2>/dev/null)" = "${PINS[*]}" ]; then
    exit 0
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "${PINS[@]}"
"$VENV/bin/python" -c 'import nova.compute.provider_config, placement.deploy'
echo "${PINS[*]}" > "$VENV/pins"
