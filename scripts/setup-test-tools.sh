#!/usr/bin/env bash
# Tools the tests need beyond cargo. Idempotent; every step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest"
    cargo install --locked cargo-nextest
fi

# Browser tests of the UI (scripts/test-ui.sh): Debian's chromium, driven by playwright-core
# (pinned in tests/e2e/package-lock.json) under node's test runner.
apt_updated=0
apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: installing $* needs root (apt-get)" >&2
        exit 1
    fi
    if [ $apt_updated -eq 0 ]; then
        apt-get update
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "installing node and npm (Debian packages)"
    apt_install nodejs npm
fi
if [ ! -x /usr/bin/chromium ]; then
    echo "installing chromium (Debian package)"
    apt_install chromium
fi
# The dashboard's browser tests (scripts/test-dashboard.sh) write their runs with the sqlite3 shell.
if ! command -v sqlite3 >/dev/null 2>&1; then
    echo "installing sqlite3 (Debian package)"
    apt_install sqlite3
fi
# The monitoring checks (scripts/test-monitoring.sh): Debian's Prometheus (with promtool) and
# node exporter, run on loopback by the script (its YAML checks use .venv's PyYAML).
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1 \
    || ! command -v prometheus-node-exporter >/dev/null 2>&1; then
    echo "installing prometheus and prometheus-node-exporter (Debian packages)"
    apt_install prometheus prometheus-node-exporter
fi
# The compose test (scripts/test-compose.sh): Debian's Docker engine (started by the test, no
# systemd), debootstrap for the base image (no registry is reachable), and the compose v2 CLI.
if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
    echo "installing docker.io and debootstrap (Debian packages)"
    apt_install docker.io debootstrap
fi
scripts/compose/setup-compose-cli.sh
pinned=$(node -p 'require("./tests/e2e/package-lock.json").packages["node_modules/playwright-core"].version')
installed=$(node -p 'try { require("./tests/e2e/node_modules/playwright-core/package.json").version } catch { "" }')
if [ "$pinned" != "$installed" ]; then
    echo "installing playwright-core $pinned (npm ci in tests/e2e)"
    (cd tests/e2e && npm ci --no-audit --no-fund)
fi

# MLflow for the registry tests (a real `mlflow server` on loopback), pinned, in .venv.
scripts/setup-mlflow.sh
