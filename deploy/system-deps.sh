#!/usr/bin/env bash
# System packages and services the full test suite uses (run as root, e.g. by .ci/run).
# Without them the affected tests skip with a reason on a developer laptop.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: not root; skipping apt installs (PostgreSQL/Chromium/Airflow tests will skip)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless libpostgresql-jdbc-java chromium zip >/dev/null
# PostgreSQL (the JDBC store tests, 127.0.0.1:5432, user postgres, trust auth). A server that
# already answers is used as it is; otherwise Debian's is installed (with trust for loopback
# TCP only, on a cluster this script created) and its cluster started.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if [ ! -d /etc/postgresql ]; then
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
      sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/' "$hba"
    done
  fi
  pg_ver="$(ls /etc/postgresql | sort -V | tail -1)"
  pg_ctlcluster --skip-systemctl-redirect "$pg_ver" main start || true
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  pg_isready -h 127.0.0.1 -p 5432
fi
# Spectral lints the API's OpenAPI document (tests/test_api_server_contract.py); pinned.
SPECTRAL_VERSION=6.16.3
command -v npm >/dev/null || apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
if [ "$(spectral --version 2>/dev/null)" != "$SPECTRAL_VERSION" ]; then
  npm install -g --silent --no-fund --no-audit "@stoplight/spectral-cli@$SPECTRAL_VERSION" >/dev/null
fi
