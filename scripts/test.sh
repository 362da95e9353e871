#!/usr/bin/env bash
# `make test`: install what the tests need, then formatting, lints and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "libtorch (PyPI wheels)"
scripts/setup-libtorch.sh

step "test tools"
scripts/setup-test-tools.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "crates without tch do not build libtorch"
scripts/check-deps.sh

step "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi

step "tch binaries run with an empty environment (rpath to .libtorch)"
target_dir=${CARGO_TARGET_DIR:-target}
for bin in model-server doodle-model; do
    [ -x "$target_dir/debug/$bin" ] || cargo build --locked --bin "$bin"
    if env -i ldd "$target_dir/debug/$bin" | grep 'not found'; then
        echo "error: $bin does not find its libraries with an empty environment" >&2
        exit 1
    fi
done
env -i "$target_dir/debug/doodle-model" --help >/dev/null
echo "ok: model-server and doodle-model resolve libtorch and run with no environment variables"

step "browser tests of the UI (headless chromium; real ui-server, backend and model server)"
scripts/test-ui.sh

step "browser tests of the pipeline dashboard (headless chromium; real dashboard over SQLite)"
scripts/test-dashboard.sh

step "monitoring: promtool, the Grafana files, a real Prometheus over the real services, alerts firing"
scripts/test-monitoring.sh

step "docker compose: the stack built and brought up on a real engine, used through its ports, torn down"
scripts/test-compose.sh
