#!/usr/bin/env bash
# `make bench`: every benchmark recorded in docs/benchmarks.md, one after another.
# Run on a quiet machine; each script prints the machine and date with its numbers.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== model (forward latency, training throughput)"
scripts/bench-model.sh resnet50
echo "== model server (raw forward vs wrk at c=1/8/32/64, RSS)"
scripts/bench-model-server.sh
echo "== backend (hop cost, save-image; REFERENCE=<dir> adds the Python reference side by side)"
scripts/bench-backend.sh
echo "== dashboard (GET /pipeline_runs?limit=50 over 100 000 runs in PostgreSQL at c=1/32, the page's refresh cost)"
scripts/bench-dashboard.sh
