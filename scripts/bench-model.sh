#!/usr/bin/env bash
# Model speed benchmark (docs/benchmarks.md, "Model"): forward latency at batch 1/32/128 and
# training throughput at batch 64/128 (full network and final layer only), with the peak
# memory of the process from /usr/bin/time -v when it is installed.
# Usage: scripts/bench-model.sh [resnet50|resnet18] [extra doodle-model bench flags]
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${1:-resnet50}
shift || true
cargo build --release --locked -p doodle-model --bin doodle-model
mkdir -p target/bench
out=target/bench/model-$arch.json
if [ -x /usr/bin/time ]; then
    /usr/bin/time -v target/release/doodle-model bench --arch "$arch" --json "$out" "$@" \
        2> >(grep -E 'Maximum resident|Elapsed|INFO' >&2)
else
    target/release/doodle-model bench --arch "$arch" --json "$out" "$@"
fi
echo "results: $out"
