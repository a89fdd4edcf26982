#!/usr/bin/env bash
# The README's second command: install every test dependency, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
.venv/bin/ruff check layoutd tests benchmarks
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
