#!/usr/bin/env bash
# Set up everything the project needs on Debian 12, idempotently:
# Debian packages (mosquitto, influxdb, chromium for the form tests), a .venv, the project with dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_passwd >/dev/null 2>&1 || need+=(mosquitto)
command -v influxd >/dev/null 2>&1 || [ -x /usr/bin/influxd ] || need+=(influxdb)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# Headless Chromium: the inspectors' web form (tests/cloud/inspections/test_form_browser.py, over the
# DevTools pipe: no driver binary, no network) and the resident's report (docs/health.md).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# Optional: a CJK font for the Chinese labels of the dashboard pictures (gumei dashboards render);
# without one the pictures keep only the English half of each label.
if ! { fc-list :lang=zh 2>/dev/null | grep -q . || dpkg -s fonts-wqy-microhei >/dev/null 2>&1; }; then
  if [ "$(id -u)" -eq 0 ]; then
    need+=(fonts-wqy-microhei)
  else
    echo "setup: note: no CJK font for the dashboard pictures (optional): apt-get install -y fonts-wqy-microhei" >&2
  fi
fi
if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages; run as root: apt-get update && apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The packages enable system services; this project runs its own instances.
  systemctl disable --now mosquitto influxdb >/dev/null 2>&1 || true
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.gumei-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing the project and its dev extras into .venv"
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi
