#!/usr/bin/env bash
# Model server benchmark (issue 4 targets), one run, one machine:
#   raw forward pass in-process (batch 1 p50, batch 32 throughput) next to
#   wrk against POST /invocations at concurrency 1, 8, 32, 64 with real Quick, Draw! drawings;
#   resident memory of the server with ResNet50 loaded.
# Usage: scripts/bench-model-server.sh [seconds per level] [checkpoint dir]
# (default: 20 s; freshly initialised ResNet50 weights, which cost exactly what trained ones do)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
checkpoint=${2:-}
data=${QUICKDRAW_DIR:-$(pwd)/../shared/data/quickdraw}/train
port=${BENCH_PORT:-15102}
# Raw forward and server under the same OpenMP policy (the server's default: a short spin).
[ -n "${OMP_WAIT_POLICY:-}" ] || export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-10000}

command -v wrk >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y wrk >/dev/null; }
scripts/setup-libtorch.sh >/dev/null
cargo build --release --locked -p doodle-model-server --bin model-server --bin model-bench

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-model-server.XXXXXX")
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

dir=$(target/release/model-bench setup "$work/registry" "$work/post.lua" "$data" $checkpoint)
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "== raw forward (in-process): the network as loaded, then the serving copy as configured"
target/release/model-bench raw "$dir" 30

DOODLE_REGISTRY__LOCAL_DIR="$work/registry" DOODLE_MODEL_SERVER__PORT=$port \
DOODLE_TELEMETRY__LOG_DIR="$work/logs" DOODLE_TELEMETRY__LEVEL=warn \
    target/release/model-server &
server=$!
for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 0.2
done
curl -sf "http://127.0.0.1:$port/health" >/dev/null || { echo "model server did not become healthy" >&2; exit 1; }
echo "== model server: $(grep VmRSS /proc/$server/status | xargs) after load"

url="http://127.0.0.1:$port/invocations"
wrk -t1 -c8 -d3s -s "$work/post.lua" "$url" >/dev/null   # warm-up
for c in 1 8 32 64; do
    threads=$(( c == 1 ? 1 : 2 ))
    echo "== wrk -t$threads -c$c -d${seconds}s POST /invocations"
    wrk -t$threads -c$c -d${seconds}s --latency -s "$work/post.lua" "$url" \
        | grep -E 'Requests/sec|^ +(50|90|99)%|Non-2xx|Socket errors|requests in'
done
echo "== model server: $(grep -E 'VmRSS' /proc/$server/status | xargs), peak $(grep VmHWM /proc/$server/status | xargs)"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^doodle_inference_batch_size_(sum|count)|^doodle_inference_rejected_total'
