#!/usr/bin/env bash
# Only crates that need tch may depend on it: a crate without tch must build
# without libtorch present. Fails when a crate outside the allow-list pulls in torch-sys.
set -euo pipefail
cd "$(dirname "$0")/.."

# Crates that are allowed to link libtorch.
allowed=" doodle-model doodle-model-server doodle-retrain "

status=0
for manifest in crates/*/Cargo.toml; do
    name=$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -1)
    if cargo tree --locked -p "$name" -e normal,build --prefix none 2>/dev/null | grep -q '^torch-sys '; then
        if [[ "$allowed" != *" $name "* ]]; then
            echo "error: $name depends on torch-sys but is not allowed to (scripts/check-deps.sh)" >&2
            status=1
        fi
    else
        echo "ok: $name does not link libtorch"
    fi
done
exit $status
