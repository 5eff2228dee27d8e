#!/usr/bin/env bash
# The test suite: set up (idempotent), then pytest against real Mosquitto and influxd it starts itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/pytest "$@"
