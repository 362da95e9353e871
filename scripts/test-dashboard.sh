#!/usr/bin/env bash
# Browser tests of the pipeline dashboard (issue 18): the real `dashboard` binary over an SQLite
# database the test writes with the sqlite3 shell, the page in Debian's headless chromium driven
# by playwright-core, under node's test runner (tests/e2e/dashboard.test.mjs).
#
# DASHBOARD_SCREENSHOT=docs/dashboard.png also saves the screenshot of the table with complete,
# failed, running and not-triggered runs (the one in the README).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/chromium ] || missing+=("chromium (/usr/bin/chromium)")
[ -f tests/e2e/node_modules/playwright-core/package.json ] || missing+=("playwright-core (tests/e2e/node_modules)")
command -v node >/dev/null || missing+=("node")
command -v sqlite3 >/dev/null || missing+=("sqlite3 (the Debian package sqlite3)")
if [ ${#missing[@]} -gt 0 ]; then
    echo "test-dashboard: missing: ${missing[*]}; run scripts/setup-test-tools.sh" >&2
    exit 1
fi

cargo build --locked --bin dashboard
if [ -n "${DASHBOARD_SCREENSHOT:-}" ]; then
    DASHBOARD_SCREENSHOT=$(realpath -m "$DASHBOARD_SCREENSHOT")
    export DASHBOARD_SCREENSHOT
fi
cd tests/e2e
node --test --test-concurrency=1 dashboard.test.mjs
