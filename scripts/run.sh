#!/usr/bin/env bash
# The main job: set up (idempotent), then run the whole pipeline with simulated devices until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/gumei run "$@"
