#!/usr/bin/env bash
# Backend benchmarks (issue 5), recorded in docs/benchmarks.md under "Backend".
#
# Starts the release model server (a ResNet50 checkpoint from a throwaway local registry) and the
# release backend on loopback, then measures with wrk (5 s warm-up + RUN_S s measured each):
#   1. POST /invocations  on the model server directly   vs   POST /invocations/ through the
#      backend, at -t1 -c1 and -t2 -c64, alternating direct/backend, ROUNDS times;
#   2. POST /invocations/ through the backend at -t2 -c32 (the reference's concurrency);
#   3. POST /save-image/ at -t1 -c1 and -t2 -c32, then PNG files on disk vs 200 answers and the
#      saves the backend logged (0 lost is the target), and a decode check of every file;
#   4. the hop alone: a fixed-answer upstream (a few lines of Python asyncio) direct vs through a
#      second backend, at -t1 -c1, ROUNDS times (the model's latency swings hide it otherwise).
# Each c=1 round against the model server also reads the model server's own request-time sum and
# count from its /metrics around the measured run (c1_split.txt): wrk's mean minus the model
# server's mean is the time spent outside the model server, so "through the backend minus direct"
# of that is the hop's cost with the real model server, net of the model's own drift from round to
# round (its own mean moved by up to 0.7 ms between 20 s runs in run 9 on a 2-core VM).
# The drawing is row 0 of the real Quick, Draw! data ($REPO/../shared/data/quickdraw/train/cat.npy),
# as the reference's bench.sh sends it.
#
# Usage: scripts/bench-backend.sh [results dir]      (default target/bench-backend/<UTC time>)
# Env:   RUN_S (20), WARM_S (5), ROUNDS (2), CHECKPOINT (a checkpoint folder to serve; default:
#        a ResNet50 trained for one tiny epoch, which costs the same per forward pass as a real one),
#        MODEL_PORT (15102), BACKEND_PORT (18100),
#        REFERENCE (a writable copy of ../shared/reference with its .venv set up, see its README):
#        when set, its own bench.sh runs right after ours (our servers stopped first), with the same
#        RUN_S/WARM_S, the same wrk and the same drawing, into <results dir>/reference.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
RUN_S="${RUN_S:-20}"
WARM_S="${WARM_S:-5}"
ROUNDS="${ROUNDS:-2}"
MODEL_PORT="${MODEL_PORT:-15102}"
BACKEND_PORT="${BACKEND_PORT:-18100}"
DATA="$REPO/../shared/data/quickdraw"
OUT="${1:-target/bench-backend/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="$OUT/work"
rm -rf "$WORK"
mkdir -p "$WORK/logs"

if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk"
    apt-get update -qq && apt-get install -y -qq wrk
fi
[ -f "$DATA/train/cat.npy" ] || { echo "no drawings at $DATA/train/cat.npy" >&2; exit 1; }

echo "== release build"
cargo build --release --locked -p doodle-model-server -p doodle-backend -p doodle-model -p doodle-registry
BIN="$REPO/target/release"

# --- payloads: row 0 of cat.npy (a .npy v1 file: magic, header, then uint8 rows) ------------------
python3 - "$DATA/train/cat.npy" "$WORK" <<'EOF'
import base64, json, struct, sys
path, out = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    assert f.read(6) == b"\x93NUMPY"
    major, _ = f.read(2)
    (hlen,) = struct.unpack("<H" if major == 1 else "<I", f.read(2 if major == 1 else 4))
    header = f.read(hlen).decode("latin1")
    assert "'|u1'" in header and "784" in header, header
    row = f.read(784)
b64 = base64.b64encode(row).decode("ascii")
bodies = {
    "invocations.json": {"inputs": b64},
    "save_c1.json": {"image": b64, "category": "bench_c1"},
    "save_c32.json": {"image": b64, "category": "bench_c32"},
    "save_warm.json": {"image": b64, "category": "warm"},
}
for name, body in bodies.items():
    with open(f"{out}/{name}", "w") as f:
        json.dump(body, f)
open(f"{out}/drawing.raw", "wb").write(row)
EOF

cat > "$WORK/post.lua" <<'EOF'
-- POST the file named by $BODY; print one JSON line of results at the end.
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    'RESULT {"requests": %d, "rps": %.1f, "mean_ms": %.3f, "p50_ms": %.3f, "p90_ms": %.3f, ' ..
    '"p99_ms": %.3f, "max_ms": %.1f, "non2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.requests / secs, latency.mean / 1000, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
EOF

# --- a model to serve ---------------------------------------------------------------------------
CKPT="${CHECKPOINT:-}"
if [ -z "$CKPT" ]; then
    CKPT="$WORK/checkpoint"
    echo "== a ResNet50 checkpoint (one tiny epoch; the forward pass costs what a trained one does)"
    "$BIN/doodle-model" --quiet train --arch resnet50 --data "$DATA/train" \
        --categories "$DATA/categories.txt" --limit 4 --epochs 1 --no-tta --out "$CKPT" \
        > "$WORK/logs/train.txt" 2>&1
fi
export DOODLE_REGISTRY__KIND=local
export DOODLE_REGISTRY__LOCAL_DIR="$WORK/registry"
export DOODLE_TELEMETRY__LOG_DIR="$WORK/logs"
"$BIN/doodle-registry" register "$CKPT" --deploy > "$WORK/logs/register.txt"

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

wait_for() {  # url what
    for _ in $(seq 600); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    echo "$2 did not become ready ($1); logs in $WORK/logs" >&2
    exit 1
}

DOODLE_MODEL_SERVER__PORT="$MODEL_PORT" "$BIN/model-server" > "$WORK/logs/model_server.out" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$MODEL_PORT/health" "model server"
DOODLE_BACKEND__PORT="$BACKEND_PORT" IMG_DATA_LOCATION="$WORK/img" \
    MLFLOW_HOSTED_MODEL_URL="http://127.0.0.1:$MODEL_PORT/invocations" \
    "$BIN/backend" > "$WORK/logs/backend.out" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$BACKEND_PORT/ready" "backend"

MODEL="http://127.0.0.1:$MODEL_PORT/invocations"
BACKEND="http://127.0.0.1:$BACKEND_PORT/invocations/"
SAVE="http://127.0.0.1:$BACKEND_PORT/save-image/"

{
    echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(uname -srm), $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "wrk: $(wrk --version 2>&1 | head -1)"
    echo "git: $(git rev-parse --short HEAD)$(git diff --quiet -- crates || echo ' (+ uncommitted changes)')"
    echo "model: $(curl -fsS "http://127.0.0.1:$MODEL_PORT/model" | head -c 300)"
    echo "run_s: $RUN_S warm_s: $WARM_S rounds: $ROUNDS"
} | tee "$OUT/env.txt"
curl -fsS -H 'Content-Type: application/json' --data-binary @"$WORK/invocations.json" "$BACKEND" \
    > "$OUT/sample_response.json"

server_times() {  # the model server's POST /invocations request-time sum and count
    curl -fsS "http://127.0.0.1:$MODEL_PORT/metrics" | awk '
        /^doodle_http_request_duration_seconds_sum\{method="POST",route="\/invocations"\}/ { s = $2 }
        /^doodle_http_request_duration_seconds_count\{method="POST",route="\/invocations"\}/ { c = $2 }
        END { print s, c }'
}

run() {  # name url threads conns body [warm body]; SPLIT=1: also write a c1_split.txt line
    local name="$1" url="$2" t="$3" c="$4" body="$5" warm="${6:-$5}" before=""
    BODY="$warm" wrk -t"$t" -c"$c" -d"${WARM_S}s" --timeout 30s -s "$WORK/post.lua" "$url" > /dev/null 2>&1
    [ -z "${SPLIT:-}" ] || before=$(server_times)
    BODY="$body" wrk -t"$t" -c"$c" -d"${RUN_S}s" --timeout 30s --latency -s "$WORK/post.lua" "$url" \
        > "$OUT/$name.txt" 2>&1
    local result
    result=$(sed -n 's/^RESULT //p' "$OUT/$name.txt")
    printf '%-22s %s\n' "$name" "$result" | tee -a "$OUT/results.txt"
    if [ -n "${SPLIT:-}" ]; then
        python3 - "$name" "$result" "$before" "$(server_times)" <<'EOF' | tee -a "$OUT/c1_split.txt"
import json, sys
name, result, before, after = sys.argv[1:]
(s0, c0), (s1, c1) = (map(float, x.split()) for x in (before, after))
wrk_mean, server_mean = json.loads(result)["mean_ms"], 1000 * (s1 - s0) / (c1 - c0)
print(f"{name:22} wrk_mean_ms={wrk_mean:.3f} model_server_mean_ms={server_mean:.3f} "
      f"outside_model_server_ms={wrk_mean - server_mean:.3f} model_server_requests={c1 - c0:.0f}")
EOF
    fi
    sleep 1
}

: > "$OUT/results.txt"
: > "$OUT/c1_split.txt"
echo "== /invocations: direct vs through the backend"
for r in $(seq "$ROUNDS"); do
    SPLIT=1 run "direct_c1_r$r" "$MODEL" 1 1 "$WORK/invocations.json"
    SPLIT=1 run "backend_c1_r$r" "$BACKEND" 1 1 "$WORK/invocations.json"
    run "direct_c64_r$r" "$MODEL" 2 64 "$WORK/invocations.json"
    run "backend_c64_r$r" "$BACKEND" 2 64 "$WORK/invocations.json"
done
run backend_c32 "$BACKEND" 2 32 "$WORK/invocations.json"
ps -o pid,rss,args -p "$(IFS=,; echo "${pids[*]}")" > "$OUT/ps.txt" || true
curl -fsS "http://127.0.0.1:$MODEL_PORT/metrics" > "$OUT/model_server_metrics.txt"

echo "== /save-image/"
run save_c1 "$SAVE" 1 1 "$WORK/save_c1.json" "$WORK/save_warm.json"
run save_c32 "$SAVE" 2 32 "$WORK/save_c32.json" "$WORK/save_warm.json"
sleep 2   # requests still in flight when wrk stopped

: > "$OUT/saves.txt"
for c in c1 c32; do
    dir="$WORK/img/bench_$c"
    ok=$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d['requests']-d['non2xx'])" \
        "$(sed -n 's/^RESULT //p' "$OUT/save_$c.txt")")
    files=$(find "$dir" -maxdepth 1 -name '*.png' | wc -l)
    others=$(find "$dir" -maxdepth 1 ! -name '*.png' ! -path "$dir" | wc -l)
    logged=$(grep -c "Image saved successfully: $dir/" "$WORK/logs/app.log" || true)
    distinct=$(grep -o "Image saved successfully: $dir/[^ ]*" "$WORK/logs/app.log" | sort -u | wc -l)
    identical=$(python3 - "$dir" "$WORK/drawing.raw" <<'EOF'
import os, sys, zlib
folder, raw = sys.argv[1], open(sys.argv[2], "rb").read()
def pixels(path):  # 8-bit gray, non-interlaced PNG: inflate the IDAT data, undo the row filters
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big"); kind = data[pos + 4:pos + 8]
        if kind == b"IHDR":
            w, h = int.from_bytes(data[pos + 8:pos + 12], "big"), int.from_bytes(data[pos + 12:pos + 16], "big")
            assert (w, h, data[pos + 16], data[pos + 17]) == (28, 28, 8, 0), "28x28 8-bit gray"
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    rows, prev, out = zlib.decompress(idat), bytearray(28), bytearray()
    for y in range(28):
        f, line = rows[y * 29], bytearray(rows[y * 29 + 1:(y + 1) * 29])
        for x in range(28):
            a = line[x - 1] if x else 0; b = prev[x]; c = prev[x - 1] if x else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + b) & 255
            elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += line; prev = line
    return bytes(out)
names = [n for n in os.listdir(folder) if n.endswith(".png")]
print(sum(pixels(os.path.join(folder, n)) == raw for n in names))
EOF
)
    echo "save_$c: wrk_200=$ok logged_saves=$logged distinct_logged=$distinct png_files=$files" \
        "other_files=$others identical_to_sent=$identical lost=$((ok > files ? ok - files : 0))" \
        | tee -a "$OUT/saves.txt"
done
curl -fsS "http://127.0.0.1:$BACKEND_PORT/metrics" > "$OUT/backend_metrics.txt"

# --- the hop alone: a fixed-answer upstream, direct vs through a second backend -------------------
# On a busy machine the model's own latency swings by tens of ms, which hides a sub-millisecond
# hop. Against an upstream that answers instantly, the difference is the backend's cost alone.
echo "== the backend hop alone (fixed-answer upstream)"
HOP_PORT=$((MODEL_PORT + 1))
python3 "$REPO/scripts/fixed-upstream.py" "$HOP_PORT" > "$WORK/logs/fixed_upstream.out" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$HOP_PORT/" "fixed-answer upstream"
HOP_BACKEND_PORT=$((BACKEND_PORT + 1))
DOODLE_BACKEND__PORT="$HOP_BACKEND_PORT" IMG_DATA_LOCATION="$WORK/img_hop" \
    DOODLE_TELEMETRY__LOG_DIR="$WORK/logs/hop" \
    MLFLOW_HOSTED_MODEL_URL="http://127.0.0.1:$HOP_PORT/invocations" \
    "$BIN/backend" > "$WORK/logs/backend_hop.out" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$HOP_BACKEND_PORT/health" "backend (hop)"
for r in $(seq "$ROUNDS"); do
    run "hop_direct_c1_r$r" "http://127.0.0.1:$HOP_PORT/invocations" 1 1 "$WORK/invocations.json"
    run "hop_backend_c1_r$r" "http://127.0.0.1:$HOP_BACKEND_PORT/invocations/" 1 1 "$WORK/invocations.json"
done

if [ -n "${REFERENCE:-}" ]; then
    echo "== the reference Python stack in $REFERENCE (ours stopped first)"
    cleanup
    pids=()
    QUICKDRAW_DIR="$DATA" WARM_S="$WARM_S" RUN_S="$RUN_S" bash "$REFERENCE/bench.sh" "$OUT/reference"
    (cd "$REFERENCE" && .venv/bin/python summarize.py bench "$OUT/reference") | tee "$OUT/reference_summary.txt"
fi
echo "results in $OUT"
