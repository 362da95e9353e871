#!/usr/bin/env bash
# Tests of the monitoring itself (issue 19, part A): prometheus.yml, prometheus.rules.yml and
# grafana/ against a real Prometheus (Debian's) scraping the real services on loopback.
#
#  1. promtool check config / check rules; the Grafana files linted (valid JSON/YAML, unique
#     panel ids, the provisioned datasource uid everywhere).
#  2. node exporter, model server (the resnet18 test model that scripts/test-ui.sh trains and
#     caches in target/e2e-model; its queue kept tiny so a burst overflows it), backend,
#     ui-server and dashboard (over an SQLite file this script writes runs into) on free ports,
#     and Prometheus on a config derived from prometheus.yml: the same jobs, every target
#     rewritten to its loopback address (check.py test-config fails on a target it has no
#     address for), 1 s intervals. Its rules are prometheus.rules.yml with every `for:` set to
#     0s (check.py test-rules): the conditions are the committed ones, only the wait is cut.
#  3. Traffic, then a screenshot of Prometheus's graph page under that load
#     (MONITORING_SCREENSHOT=docs/prometheus.png keeps it).
#  4. Alerts provoked for real and seen firing in /api/v1/alerts: InferenceQueueSaturated
#     (a burst straight at the model server), PipelineRunFailed (a failed run written to
#     pipeline_runs), ModelServerDown and BackendHighErrorRatio (the model server stopped while
#     the traffic goes on: the backend answers 503), ServiceRestarted (it is started again).
#  5. Every panel query of every dashboard and every alert expression through the HTTP API,
#     each required to return data (an alert whose condition is false: each side of its
#     comparison must); every metric a panel names must be one Prometheus scraped. Panels and
#     the alert on job="windows" are checked against windows_exporter's documented names.
# MONITORING_MODEL=DIR serves that checkpoint instead of the cached test model.
# Everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

data_dir=${E2E_DATA_DIR:-$repo/../shared/data/quickdraw/train}
categories_file=${E2E_CATEGORIES_FILE:-$repo/../shared/data/quickdraw/categories.txt}
target_dir=${CARGO_TARGET_DIR:-$repo/target}
bin=$target_dir/debug
# PyYAML comes with the project's venv (scripts/setup-mlflow.sh: MLflow needs it).
check=("$repo/.venv/bin/python" scripts/monitoring/check.py)
traffic=(python3 scripts/monitoring/traffic.py)

say() { printf 'test-monitoring: %s\n' "$*"; }

missing=()
for tool in prometheus promtool prometheus-node-exporter sqlite3 node python3; do
    command -v $tool >/dev/null || missing+=("$tool")
done
"$repo/.venv/bin/python" -c 'import yaml' 2>/dev/null || missing+=("PyYAML in .venv (scripts/setup-mlflow.sh)")
[ -x /usr/bin/chromium ] || missing+=("chromium (/usr/bin/chromium)")
[ -f tests/e2e/node_modules/playwright-core/package.json ] || missing+=("playwright-core (tests/e2e/node_modules)")
[ -f "$categories_file" ] || missing+=("$categories_file")
if [ ${#missing[@]} -gt 0 ]; then
    say "missing: ${missing[*]}; run scripts/setup-test-tools.sh" >&2
    exit 1
fi

# --- 1. the files -----------------------------------------------------------------------------
promtool check config prometheus.yml
promtool check rules prometheus.rules.yml
"${check[@]}" lint

# --- 2. the stack -----------------------------------------------------------------------------
cargo build --locked --bin backend --bin model-server --bin ui-server --bin dashboard \
    --bin doodle-model --bin doodle-registry
if [ -n "${MONITORING_MODEL:-}" ]; then
    model_dir=$MONITORING_MODEL # any checkpoint folder (the test needs predictions, not accuracy)
    say "using the model in $model_dir"
else
    model_dir=$(scripts/e2e-model.sh | tail -n 1)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/doodle-monitoring.XXXXXX")
pids=()
stop_pids() {
    [ $# -gt 0 ] || return 0
    kill -TERM "$@" 2>/dev/null || true
    for _ in $(seq 50); do
        local alive=0
        for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive -eq 0 ] && break
        sleep 0.1
    done
    kill -KILL "$@" 2>/dev/null || true
}
cleanup() {
    local code=$?
    if [ ${#pids[@]} -gt 0 ]; then
        stop_pids "${pids[@]}"
        wait 2>/dev/null || true
    fi
    if [ $code -ne 0 ]; then
        for log in "$work"/*.out; do
            [ -f "$log" ] || continue
            echo "---- last lines of $log"
            tail -n 20 "$log"
        done
    fi
    rm -rf "$work"
    exit $code
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_http() { # url pid name
    for _ in $(seq 600); do
        if ! kill -0 "$2" 2>/dev/null; then
            say "$3 exited before answering $1" >&2
            return 1
        fi
        if python3 -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    say "$3 did not answer $1 within 120 s" >&2
    return 1
}

mkdir -p "$work/logs" "$work/img" "$work/tsdb"
export DOODLE_TELEMETRY__LOG_DIR=$work/logs
export DOODLE_REGISTRY__KIND=local
export DOODLE_REGISTRY__LOCAL_DIR=$work/registry
"$bin/doodle-registry" register "$model_dir" --deploy >/dev/null

node_port=$(free_port)
model_port=$(free_port)
backend_port=$(free_port)
ui_port=$(free_port)
dash_port=$(free_port)
windows_port=$(free_port) # nothing listens there: the windows job is down, as on a Linux host
prom_port=$(free_port)
db=$work/doodle.db

prometheus-node-exporter --web.listen-address=127.0.0.1:$node_port --no-collector.systemd >"$work/node-exporter.out" 2>&1 &
pids+=($!)
node_pid=$!

start_model_server() {
    DOODLE_MODEL_SERVER__HOST=127.0.0.1 DOODLE_MODEL_SERVER__PORT=$model_port \
        DOODLE_MODEL_SERVER__QUEUE_CAPACITY=2 \
        "$bin/model-server" >>"$work/model-server.out" 2>&1 &
    pids+=($!)
    model_pid=$!
}
start_model_server

DOODLE_BACKEND__HOST=127.0.0.1 DOODLE_BACKEND__PORT=$backend_port \
    MLFLOW_HOSTED_MODEL_URL=http://127.0.0.1:$model_port/invocations/ \
    IMG_DATA_LOCATION=$work/img \
    "$bin/backend" >"$work/backend.out" 2>&1 &
pids+=($!)
backend_pid=$!

DOODLE_UI__HOST=127.0.0.1 DOODLE_UI__PORT=$ui_port DOODLE_UI__BACKEND_URL=http://127.0.0.1:$backend_port \
    "$bin/ui-server" >"$work/ui-server.out" 2>&1 &
pids+=($!)
ui_pid=$!

DOODLE_DASHBOARD__HOST=127.0.0.1 DOODLE_DASHBOARD__PORT=$dash_port \
    DOODLE_DATABASE__URL="sqlite://$db?mode=rwc" \
    "$bin/dashboard" >"$work/dashboard.out" 2>&1 &
pids+=($!)
dash_pid=$!

wait_http "http://127.0.0.1:$node_port/metrics" $node_pid node-exporter
wait_http "http://127.0.0.1:$model_port/health" $model_pid model-server
wait_http "http://127.0.0.1:$backend_port/ready" $backend_pid backend
wait_http "http://127.0.0.1:$ui_port/health" $ui_pid ui-server
wait_http "http://127.0.0.1:$dash_port/health" $dash_pid dashboard

# A run as the orchestrator leaves one: every stage complete, a few seconds each.
run_sql() { sqlite3 -batch -cmd '.timeout 5000' "$db"; }
ts() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%S.000000Z; }
insert_run() { # id start_epoch outcome-of-stage-2 (complete|failed)
    local id=$1 t=$2 s2=$3 cols="run_id, start_time, end_time, \"trigger\", host, pid" vals
    vals="$id, '$(ts "$t")', '$(ts $((t + 40)))', 'schedule', 'ci', 4242"
    for n in 1 2 3 4 5 6 7; do
        local status=complete
        [ "$s2" = failed ] && [ $n -ge 2 ] && status=failed
        cols+=", stage_${n}_status, stage_${n}_start, stage_${n}_end"
        vals+=", '$status', '$(ts $((t + n * 5)))', '$(ts $((t + n * 5 + n)))'"
    done
    echo "INSERT INTO pipeline_runs ($cols) VALUES ($vals);" | run_sql
}
insert_run 1 $(($(date +%s) - 3600)) complete

cat >"$work/targets.json" <<EOF
{"backend:8000": "127.0.0.1:$backend_port", "model-server:5002": "127.0.0.1:$model_port",
 "ui:9080": "127.0.0.1:$ui_port", "dashboard:8001": "127.0.0.1:$dash_port",
 "node-exporter:9100": "127.0.0.1:$node_port", "host.docker.internal:9182": "127.0.0.1:$windows_port"}
EOF
"${check[@]}" test-rules "$work/rules.yml"
"${check[@]}" test-config "$work/prometheus.yml" "$work/targets.json" "$work/rules.yml"
promtool check config "$work/prometheus.yml" >/dev/null
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address=127.0.0.1:$prom_port >"$work/prometheus.out" 2>&1 &
pids+=($!)
prom_pid=$!
prom=http://127.0.0.1:$prom_port
wait_http "$prom/-/ready" $prom_pid prometheus
say "stack up: backend :$backend_port, model server :$model_port, ui :$ui_port, dashboard :$dash_port, node exporter :$node_port, prometheus :$prom_port"

# Every target but the windows one is up.
for _ in $(seq 30); do
    up=$(python3 -c 'import json,sys,urllib.request,urllib.parse
d=json.load(urllib.request.urlopen(sys.argv[1]+"/api/v1/query?"+urllib.parse.urlencode({"query":"up"})))
print(" ".join(sorted(r["metric"]["job"]+"="+r["value"][1] for r in d["data"]["result"])))' "$prom")
    [ "$up" = "backend=1 dashboard=1 model-server=1 node=1 ui-server=1 windows=0" ] && break
    sleep 1
done
say "targets: $up"
[ "$up" = "backend=1 dashboard=1 model-server=1 node=1 ui-server=1 windows=0" ]

# --- 3. traffic and the picture ---------------------------------------------------------------
backend=http://127.0.0.1:$backend_port
"${traffic[@]}" load "$backend" "http://127.0.0.1:$ui_port" "http://127.0.0.1:$dash_port" 25 "$categories_file"
"${traffic[@]}" load "$backend" "http://127.0.0.1:$ui_port" "http://127.0.0.1:$dash_port" 20 "$categories_file" &
load_pid=$!
sleep 5
shot=${MONITORING_SCREENSHOT:-$work/prometheus.png}
node scripts/monitoring/screenshot.mjs "$prom" "$(realpath -m "$shot")"
wait $load_pid

# --- 4. alerts, provoked ----------------------------------------------------------------------
# Two bursts a few scrapes apart: a counter's first sample has no rate, its second one does.
"${traffic[@]}" burst "http://127.0.0.1:$model_port" 48
sleep 3
"${traffic[@]}" burst "http://127.0.0.1:$model_port" 48
"${check[@]}" firing "$prom" InferenceQueueSaturated

insert_run 2 $(($(date +%s) - 60)) failed
"${check[@]}" firing "$prom" PipelineRunFailed

say "stopping the model server"
stop_pids $model_pid
# 30 s of 503s: the 5xx share of the last 5 minutes climbs well past 5% while this waits.
"${traffic[@]}" load "$backend" "http://127.0.0.1:$ui_port" "http://127.0.0.1:$dash_port" 30 "$categories_file" &
load_pid=$!
"${check[@]}" firing "$prom" ModelServerDown BackendHighErrorRatio
wait $load_pid

say "starting the model server again"
start_model_server
wait_http "http://127.0.0.1:$model_port/health" $model_pid model-server
"${traffic[@]}" load "$backend" "http://127.0.0.1:$ui_port" "http://127.0.0.1:$dash_port" 10 "$categories_file"
"${check[@]}" firing "$prom" ServiceRestarted

# --- 5. every query -----------------------------------------------------------------------
"${check[@]}" queries "$prom"
say "passed"
