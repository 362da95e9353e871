#!/usr/bin/env bash
# `make run`: build the services in release mode and start the whole system on
# embedded defaults (config.toml, SQLite, the local model registry). Ctrl-C stops
# everything and leaves no process behind.
set -euo pipefail
cd "$(dirname "$0")/.."

# name | binary [arguments] | what is printed for people. Every service issue adds its line here.
services=(
    "model server|model-server|http://127.0.0.1:5002"
    "backend|backend|http://127.0.0.1:8000"
    "ui|ui-server|http://127.0.0.1:9080"
    "dashboard|dashboard|http://127.0.0.1:8001"
    "pipeline|pipeline-orchestrator --every|scheduled (pipeline.schedule_every); logs/pipeline_orchestrator.log"
)

if [ ${#services[@]} -eq 0 ]; then
    echo "doodle: no services exist yet; nothing to start."
    exit 0
fi

bins=()
for s in "${services[@]}"; do
    IFS='|' read -r _ command _ <<<"$s"
    bins+=(--bin "${command%% *}")
done
# The pipeline's stages run beside the orchestrator; stage 4 needs DVC (pinned, in .venv).
bins+=(--bin stage1-scan --bin stage2-merge --bin stage3-convert --bin stage4-version
    --bin stage5-retrain --bin stage6-register --bin stage7-clean)
cargo build --release --locked "${bins[@]}" --bin doodle-model --bin doodle-registry
scripts/setup-mlflow.sh
export PATH="$(pwd)/.venv/bin:$PATH"

# The first start on a fresh machine has no model yet: train one on a short budget so the
# UI works within minutes (`make model` trains the full default model later).
if ! target/release/doodle-registry deployed >/dev/null 2>&1; then
    minutes=${DOODLE_FIRST_MODEL_MINUTES:-6}
    echo "doodle: no model is deployed yet; training a first model (about $minutes minutes; 'make model' trains the full one)"
    checkpoint=$(target/release/doodle-model base --max-minutes "$minutes" | tail -n 1)
    target/release/doodle-registry register "$checkpoint" --deploy --tag source=first-start
fi

pids=()
stop() {
    trap - INT TERM EXIT
    if [ ${#pids[@]} -gt 0 ]; then
        echo
        echo "doodle: stopping ${#pids[@]} services"
        kill -TERM "${pids[@]}" 2>/dev/null || true
        for _ in $(seq 50); do
            alive=0
            for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
            [ $alive -eq 0 ] && break
            sleep 0.2
        done
        kill -KILL "${pids[@]}" 2>/dev/null || true
        wait 2>/dev/null || true
    fi
}
trap stop INT TERM EXIT

for s in "${services[@]}"; do
    IFS='|' read -r name command url <<<"$s"
    # shellcheck disable=SC2086 # the command's arguments are meant to split
    target/release/$command &
    pids+=($!)
    printf 'doodle: %-14s %s\n' "$name" "$url"
done
echo "doodle: logs in ./logs; press Ctrl-C to stop"

# Stop everything as soon as any one service exits.
set +e
wait -n "${pids[@]}"
code=$?
echo "doodle: a service exited (status $code); stopping the rest"
exit $code
