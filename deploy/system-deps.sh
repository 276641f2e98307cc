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
apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless libpostgresql-jdbc-java chromium >/dev/null
