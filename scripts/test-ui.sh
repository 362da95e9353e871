#!/usr/bin/env bash
# Browser tests of the UI (issue 6): Debian's headless chromium driven by playwright-core, run
# with node's test runner (tests/e2e/*.test.mjs).
#
#  - unit.test.mjs   the page's pure modules, in node;
#  - page.test.mjs   the page against the real ui-server and a fault-injecting fake backend
#                    (started by the tests themselves);
#  - real-stack.test.mjs  the page against the real ui-server, backend and model server, which this
#                    script starts on free ports with a small resnet18 trained once and cached in
#                    target/e2e-model/ (retrained when the training settings or the model crate's
#                    checkpoint format change). Everything started here is stopped on exit.
#
# When something the real stack needs is missing, those tests are reported as skipped with the
# reason (never as passed) and this script says which prerequisite is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

data_dir=${E2E_DATA_DIR:-$repo/../shared/data/quickdraw/train}
categories_file=${E2E_CATEGORIES_FILE:-$repo/../shared/data/quickdraw/categories.txt}
target_dir=${CARGO_TARGET_DIR:-$repo/target}
bin=$target_dir/debug

say() { printf 'test-ui: %s\n' "$*"; }

# --- what every browser test needs ------------------------------------------------------------
missing=()
[ -x /usr/bin/chromium ] || missing+=("chromium (/usr/bin/chromium)")
[ -f tests/e2e/node_modules/playwright-core/package.json ] || missing+=("playwright-core (tests/e2e/node_modules)")
command -v node >/dev/null || missing+=("node")
if [ ${#missing[@]} -gt 0 ]; then
    say "missing: ${missing[*]}; run scripts/setup-test-tools.sh" >&2
    exit 1
fi

cargo build --locked --bin ui-server

# --- the real stack ---------------------------------------------------------------------------
real_missing=()
for crate in backend model-server model registry; do
    [ -f "crates/$crate/Cargo.toml" ] || real_missing+=("crates/$crate")
done
[ -f "$data_dir/house.npy" ] && [ -f "$data_dir/rainbow.npy" ] || real_missing+=("training data in $data_dir")
[ -f "$categories_file" ] || real_missing+=("$categories_file")

work=$(mktemp -d "${TMPDIR:-/tmp}/doodle-e2e.XXXXXX")
pids=()
cleanup() {
    local code=$?
    if [ ${#pids[@]} -gt 0 ]; then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        for _ in $(seq 50); do
            local alive=0
            for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
            [ $alive -eq 0 ] && break
            sleep 0.1
        done
        kill -KILL "${pids[@]}" 2>/dev/null || true
        wait 2>/dev/null || true
    fi
    if [ $code -ne 0 ] && [ -d "$work/logs" ]; then
        for log in "$work"/logs/*.log "$work"/*.out; do
            [ -f "$log" ] || continue
            echo "---- last lines of $log"
            tail -n 30 "$log"
        done
    fi
    rm -rf "$work"
    exit $code
}
trap cleanup EXIT INT TERM

free_port() {
    node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

wait_http() { # url pid name
    for _ in $(seq 600); do
        if ! kill -0 "$2" 2>/dev/null; then
            say "$3 exited before answering $1" >&2
            return 1
        fi
        if node -e 'fetch(process.argv[1],{signal:AbortSignal.timeout(1000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "$1"; then
            return 0
        fi
        sleep 0.2
    done
    say "$3 did not answer $1 within 120 s" >&2
    return 1
}

if [ ${#real_missing[@]} -eq 0 ]; then
    cargo build --locked --bin backend --bin model-server --bin doodle-model --bin doodle-registry
    model_dir=$(scripts/e2e-model.sh | tail -n 1)

    mkdir -p "$work/logs" "$work/img"
    export DOODLE_TELEMETRY__LOG_DIR=$work/logs
    export DOODLE_REGISTRY__KIND=local
    export DOODLE_REGISTRY__LOCAL_DIR=$work/registry
    "$bin/doodle-registry" register "$model_dir" --deploy

    model_port=$(free_port)
    DOODLE_MODEL_SERVER__HOST=127.0.0.1 DOODLE_MODEL_SERVER__PORT=$model_port \
        "$bin/model-server" >"$work/model-server.out" 2>&1 &
    pids+=($!)
    model_pid=$!

    backend_port=$(free_port)
    ui_port=$(free_port)
    DOODLE_BACKEND__HOST=127.0.0.1 DOODLE_BACKEND__PORT=$backend_port \
        MLFLOW_HOSTED_MODEL_URL=http://127.0.0.1:$model_port/invocations/ \
        IMG_DATA_LOCATION=$work/img \
        DOODLE_BACKEND__CORS_ORIGINS="[\"http://127.0.0.1:$ui_port\"]" \
        "$bin/backend" >"$work/backend.out" 2>&1 &
    pids+=($!)
    backend_pid=$!

    DOODLE_UI__HOST=127.0.0.1 DOODLE_UI__PORT=$ui_port \
        DOODLE_UI__BACKEND_URL=http://127.0.0.1:$backend_port \
        "$bin/ui-server" >"$work/ui-server.out" 2>&1 &
    pids+=($!)
    ui_pid=$!

    wait_http "http://127.0.0.1:$model_port/health" $model_pid model-server
    wait_http "http://127.0.0.1:$backend_port/ready" $backend_pid backend
    wait_http "http://127.0.0.1:$ui_port/health" $ui_pid ui-server
    say "real stack up: ui http://127.0.0.1:$ui_port -> backend :$backend_port -> model server :$model_port"

    export E2E_UI_URL=http://127.0.0.1:$ui_port
    export E2E_BACKEND_URL=http://127.0.0.1:$backend_port
    export E2E_BACKEND_PID=$backend_pid
    export E2E_IMG_DIR=$work/img
    export E2E_CATEGORIES_FILE=$categories_file
else
    export E2E_REAL_STACK_MISSING="missing ${real_missing[*]}"
    say "REAL-STACK TESTS WILL BE SKIPPED: ${E2E_REAL_STACK_MISSING}" >&2
fi

export E2E_DATA_DIR=$data_dir
export E2E_REPO=$repo
cd tests/e2e
node --test --test-concurrency=1 unit.test.mjs page.test.mjs real-stack.test.mjs
