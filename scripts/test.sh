#!/usr/bin/env bash
# The test suite: set up (idempotent); the lint gates (ruff's rules and formatter, the package import
# rules of [tool.importlinter], mypy over the whole tree as [tool.mypy] says); then pytest against
# real Mosquitto and influxd it starts itself.
# Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check .
.venv/bin/lint-imports --no-cache --config pyproject.toml
.venv/bin/mypy
exec .venv/bin/pytest "$@"
