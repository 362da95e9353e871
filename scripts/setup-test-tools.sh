#!/usr/bin/env bash
# Tools the tests need beyond cargo. Idempotent; every step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest"
    cargo install --locked cargo-nextest
fi
