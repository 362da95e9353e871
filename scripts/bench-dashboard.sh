#!/usr/bin/env bash
# Dashboard benchmarks (issue 18), recorded in docs/benchmarks.md under "Dashboard".
#
# Starts the release `dashboard` over a new PostgreSQL database (on the local test server,
# dropped at the end) holding 100 000 runs written straight in SQL (six in ten complete, two not
# triggered, one failed at stage 3, one failed at stage 5; one an hour, so the newest page is the
# index's first rows), then:
#   1. wrk GET /pipeline_runs?limit=50 at -t1 -c1 and -t2 -c32 (WARM_S warm-up, RUN_S measured,
#      --latency for p50/p99), and the last page (offset=99950) at -t1 -c1 for comparison;
#   2. the page's refresh cost in headless Chromium (tests/e2e/dashboard-bench.mjs): the page's
#      own fetch+parse and DOM-update times and Chromium's main-thread time per refresh, with the
#      50 rows unchanged (the usual refresh) and all 50 replaced (worst case).
# Every request is also logged by the dashboard (stdout and dashboard_backend.log), as in use.
#
# Usage: scripts/bench-dashboard.sh [results file]  (default target/bench-dashboard/<UTC time>.txt)
# Env:   RUN_S (20), WARM_S (5), PORT (18101), RUNS (100000),
#        PG_ADMIN_URL (postgres://postgres@127.0.0.1:5432/test)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
RUN_S="${RUN_S:-20}"
WARM_S="${WARM_S:-5}"
PORT="${PORT:-18101}"
RUNS="${RUNS:-100000}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/test}"
OUT="${1:-target/bench-dashboard/$(date -u +%Y%m%dT%H%M%SZ).txt}"
mkdir -p "$(dirname "$OUT")"
OUT="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/doodle-bench-dashboard.XXXXXX")
DB="doodle_bench_dashboard_$$"
DB_URL="${PG_ADMIN_URL%/*}/$DB"

if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk"
    apt-get update -qq && apt-get install -y -qq wrk
fi
for tool in psql node; do
    command -v $tool >/dev/null || { echo "bench-dashboard: $tool is missing" >&2; exit 1; }
done
[ -f tests/e2e/node_modules/playwright-core/package.json ] || {
    echo "bench-dashboard: playwright-core is missing; run scripts/setup-test-tools.sh" >&2
    exit 1
}

pid=
cleanup() {
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

exec > >(tee "$OUT") 2>&1
echo "# doodle dashboard benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(psql "$PG_ADMIN_URL" -Atc 'SELECT version()' | cut -d, -f1), wrk $(wrk -v 2>&1 | head -1 | cut -d' ' -f2)"
echo "# command: scripts/bench-dashboard.sh  (RUN_S=$RUN_S WARM_S=$WARM_S RUNS=$RUNS)"

echo "== release build"
cargo build --release --locked -p doodle-dashboard --bin dashboard 2>&1 | tail -1

echo "== database $DB with $RUNS runs"
psql "$PG_ADMIN_URL" -qc "CREATE DATABASE \"$DB\"" >/dev/null
DOODLE_DASHBOARD__PORT=$PORT DOODLE_DATABASE__URL="$DB_URL" DOODLE_TELEMETRY__LOG_DIR="$WORK/logs" \
    RUST_LOG=info target/release/dashboard >"$WORK/dashboard.out" 2>&1 &
pid=$!
base="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -fs "$base/health" >/dev/null && break; sleep 0.1; done
curl -fs "$base/pipeline_runs" >/dev/null   # the first query migrates the new database

stage_sets=""
for n in 1 2 3 4 5 6 7; do
    stage_sets+=", CASE WHEN k IN (6, 7) AND $n > 1 THEN 'not_triggered'
        WHEN (k = 8 AND $n >= 3) OR (k = 9 AND $n >= 5) THEN 'failed' ELSE 'complete' END
      , CASE WHEN (k IN (6, 7) AND $n > 1) OR (k = 8 AND $n > 3) OR (k = 9 AND $n > 5) THEN NULL
        ELSE t + interval '2 minutes' * ($n - 1) END
      , t + interval '2 minutes' * $n - interval '30 seconds'
      , CASE WHEN k IN (6, 7) AND $n > 1 THEN '3 new drawings, fewer than the threshold of 20'
        WHEN (k = 8 AND $n = 3) OR (k = 9 AND $n = 5) THEN 'stage $n failed: exit status 1'
        WHEN (k = 8 AND $n > 3) THEN 'not run: stage 3 failed'
        WHEN (k = 9 AND $n > 5) THEN 'not run: stage 5 failed' END"
done
cols=""
for n in 1 2 3 4 5 6 7; do cols+=", stage_${n}_status, stage_${n}_start, stage_${n}_end, stage_${n}_message"; done
psql "$DB_URL" -qv ON_ERROR_STOP=1 <<SQL
INSERT INTO pipeline_runs (start_time, end_time, "trigger", host, pid $cols,
                           new_images, data_commit, data_hash, model_version, promoted, gate_report)
SELECT t, t + interval '14 minutes', 'schedule', 'bench', 1 $stage_sets,
       CASE WHEN k IN (6, 7) THEN 3 ELSE 40 + k END,
       CASE WHEN k < 6 OR k = 9 THEN md5(i::text) || 'abcdefgh' END,
       CASE WHEN k < 6 OR k = 9 THEN md5((i + 1)::text) || '.dir' END,
       CASE WHEN k < 6 THEN i::text END,
       CASE WHEN k < 6 THEN k < 4 END,
       CASE WHEN k < 6 THEN '{"promote": true, "champion_top1": 0.81, "candidate_top1": 0.82}' END
FROM (SELECT i, i % 10 AS k, timestamptz '2015-01-01 00:00:00Z' + i * interval '1 hour' AS t
      FROM generate_series(1, $RUNS) AS i) AS s;
VACUUM ANALYZE pipeline_runs;
SQL
echo "rows: $(psql "$DB_URL" -Atc 'SELECT count(*) FROM pipeline_runs'), table $(psql "$DB_URL" -Atc "SELECT pg_size_pretty(pg_total_relation_size('pipeline_runs'))")"
curl -fsS -D "$WORK/headers" "$base/pipeline_runs?limit=50" -o "$WORK/page.json"
echo "one page: $(wc -c <"$WORK/page.json") bytes; $(grep -i '^link:' "$WORK/headers" | tr -d '\r')"

measure() { # name wrk-args path
    local name=$1 args=$2 path=$3
    # shellcheck disable=SC2086
    wrk $args -d"${WARM_S}s" "$base$path" >/dev/null
    echo "== $name: wrk $args -d${RUN_S}s --latency $path"
    # shellcheck disable=SC2086
    wrk $args -d"${RUN_S}s" --latency "$base$path"
}
measure "c=1" "-t1 -c1" "/pipeline_runs?limit=50"
measure "c=32" "-t2 -c32" "/pipeline_runs?limit=50"
measure "c=1, the last page" "-t1 -c1" "/pipeline_runs?limit=50&offset=$((RUNS - 50))"
echo "== requests answered 200 (dashboard's metrics)"
curl -fs "$base/metrics" | grep '^doodle_http_requests_total{method="GET",route="/pipeline_runs"' || true
curl -fs "$base/metrics" | grep '^api_errors_total' || echo "api_errors_total: none"

echo "== the page's refresh cost in headless chromium (50 rows of $RUNS)"
(cd tests/e2e && node dashboard-bench.mjs "$base" 40)
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
