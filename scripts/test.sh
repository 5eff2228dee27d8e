#!/usr/bin/env bash
# The test suite: set up (idempotent), check the package import rules ([tool.importlinter] in
# pyproject.toml), then pytest against real Mosquitto and influxd it starts itself. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/lint-imports --no-cache --config pyproject.toml
exec .venv/bin/pytest "$@"
