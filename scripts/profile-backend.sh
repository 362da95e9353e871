#!/usr/bin/env bash
# Instructions the backend spends per relayed POST /invocations/ (docs/benchmarks.md, "Backend").
#
# Wall-clock numbers on a shared 2-core VM swing by 10 % from minute to minute; callgrind's
# instruction counts do not (the same binary and inputs give the same total however busy the
# machine is). The release backend runs under `valgrind --tool=callgrind` against a fixed-answer
# upstream (scripts/fixed-upstream.py) and gets FEW and then MANY keep-alive requests at c=1 with
# the drawing the other benchmarks send; (total(MANY) - total(FEW)) / (MANY - FEW) is the cost of
# one request with start-up and shutdown cancelled out. Once with the default log level and once
# with RUST_LOG=warn (no access log line).
#
# Usage: scripts/profile-backend.sh [results dir]   (default target/profile-backend/<UTC time>)
# Env:   FEW (100), MANY (600), UPSTREAM_PORT (15300), BACKEND_PORT (18300)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
FEW="${FEW:-100}"
MANY="${MANY:-600}"
UPSTREAM_PORT="${UPSTREAM_PORT:-15300}"
BACKEND_PORT="${BACKEND_PORT:-18300}"
OUT="${1:-target/profile-backend/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
cargo build --release --locked -p doodle-backend --bin backend
BIN="$REPO/target/release/backend"

python3 "$REPO/scripts/fixed-upstream.py" "$UPSTREAM_PORT" > "$OUT/fixed_upstream.out" 2>&1 &
upstream=$!
trap 'kill "$upstream" 2>/dev/null || true' EXIT

# total instructions of one backend process that answered $1 requests, with RUST_LOG=$2
instructions() {
    local n="$1" level="$2" pid
    local cg="$OUT/callgrind.$level.$n"
    RUST_LOG="$level" DOODLE_BACKEND__PORT="$BACKEND_PORT" IMG_DATA_LOCATION="$OUT/img" \
        DOODLE_TELEMETRY__LOG_DIR="$OUT/logs.$level.$n" \
        MLFLOW_HOSTED_MODEL_URL="http://127.0.0.1:$UPSTREAM_PORT/invocations" \
        valgrind --tool=callgrind --callgrind-out-file="$cg" "$BIN" > "$OUT/backend.$level.$n.out" 2>&1 &
    pid=$!
    python3 - "$REPO/../shared/data/quickdraw/train/cat.npy" "$BACKEND_PORT" "$n" <<'PY'
import base64, http.client, json, sys, time
npy, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(npy, "rb").read()
header_len = int.from_bytes(data[8:10], "little")
row = data[10 + header_len:10 + header_len + 784]
body = json.dumps({"inputs": base64.b64encode(row).decode()})
for _ in range(600):                       # start-up under valgrind takes seconds
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("GET", "/health"); c.getresponse().read()
        break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit("backend did not start")
for _ in range(n):
    c.request("POST", "/invocations/", body, {"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
    kill -TERM "$pid"
    wait "$pid" || true
    sed -n 's/^\(totals\|summary\): //p' "$cg" | head -n 1
}

: > "$OUT/results.txt"
{
    echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "git: $(git rev-parse --short HEAD)$(git diff --quiet -- crates || echo ' (+ uncommitted changes)')"
    echo "valgrind: $(valgrind --version)"
} | tee "$OUT/env.txt"
for level in info warn; do
    few=$(instructions "$FEW" "$level")
    many=$(instructions "$MANY" "$level")
    echo "RUST_LOG=$level: $few instructions for $FEW requests, $many for $MANY;" \
        "per request: $(( (many - few) / (MANY - FEW) ))" | tee -a "$OUT/results.txt"
done
echo "results in $OUT"
