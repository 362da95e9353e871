#!/usr/bin/env bash
# The small test model the browser and monitoring tests serve: a resnet18 trained once on the
# shared Quick, Draw! data into target/e2e-model/ and reused while the training settings, the
# categories and the model crate's checkpoint format stay the same (a stamp file says which).
# Needs target/debug/doodle-model (the callers build it). Prints the model's folder last.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
data_dir=${E2E_DATA_DIR:-$repo/../shared/data/quickdraw/train}
categories_file=${E2E_CATEGORIES_FILE:-$repo/../shared/data/quickdraw/categories.txt}
target_dir=${CARGO_TARGET_DIR:-$repo/target}
model_dir=$target_dir/e2e-model
# A small model: enough to tell a house from a rainbow, a few minutes on 2 cores.
train_args=(--arch resnet18 --epochs 2 --limit 1000 --seed 42)

stamp_value=$(
    {
        echo "${train_args[*]}"
        sha256sum "$categories_file" | cut -d' ' -f1
        cat crates/model/src/checkpoint.rs crates/model/src/net.rs crates/model/src/input.rs 2>/dev/null || true
    } | sha256sum | cut -d' ' -f1
)
if [ ! -f "$model_dir/.e2e-stamp" ] || [ "$(cat "$model_dir/.e2e-stamp")" != "$stamp_value" ]; then
    [ -f "$data_dir/house.npy" ] || { echo "e2e-model: no training data in $data_dir" >&2; exit 1; }
    echo "e2e-model: training the test model (${train_args[*]}) into $model_dir; cached for later runs" >&2
    rm -rf "$model_dir" "$model_dir.tmp"
    nice -n 10 "$target_dir/debug/doodle-model" --quiet train "${train_args[@]}" \
        --data "$data_dir" --categories "$categories_file" --out "$model_dir.tmp" >&2
    mv "$model_dir.tmp" "$model_dir"
    echo "$stamp_value" >"$model_dir/.e2e-stamp"
else
    echo "e2e-model: using the cached test model in $model_dir" >&2
fi
echo "$model_dir"
