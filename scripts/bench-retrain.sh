#!/usr/bin/env bash
# Retraining benchmark (issue 17 targets), release builds, everything real:
#  1. the base data: 14 of the 15 categories, rows 0..1750 of each (24 500 drawings); a ResNet50
#     trained from scratch on the first BASE_LIMIT (400) of each for BASE_EPOCHS (1) — a short
#     champion, since a full one takes ~50 min here — registered and deployed locally;
#  2. the model server serving it and the backend in front, on free loopback ports;
#  3. 5 000 user drawings saved through the backend's /save-image/: 1 500 of the 15th category
#     (new to the model) and 250 of each known one (rows 1750..2000, never in the base data);
#  4. one `pipeline-orchestrator --once` (stage 5 head-only, the default), while a client polls
#     /invocations/ for the moment the model server answers with the new version.
# Prints each stage's time, stage 5's epochs (time, images/s), orchestrator start -> served,
# the gate's report (both models per class on the fixed evaluation set), and how held-back
# drawings of the new category are answered before and after.
# Stage 5 trains on the whole base (minus the fixed evaluation set) + the users' drawings.
# Usage: scripts/bench-retrain.sh   env: NEW_CATEGORY (flower), BASE_LIMIT (400), BASE_EPOCHS (1), KEEP=1 keeps the folder
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
new=${NEW_CATEGORY:-flower}
base_limit=${BASE_LIMIT:-400}
base_epochs=${BASE_EPOCHS:-1}
shared=${QUICKDRAW_DIR:-$repo/../shared/data/quickdraw}
py=$repo/.venv/bin/python
[ -x "$py" ] || scripts/setup-mlflow.sh >/dev/null

cargo build --release --locked -p doodle-model -p doodle-registry -p doodle-model-server \
    -p doodle-backend -p doodle-pipeline -p doodle-retrain --bins
bin=$repo/target/release
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-retrain.XXXXXX")
pids=()
cleanup() {
    [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), \
$(free -g | awk '/Mem:/ {print $2}') GiB, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD)"

# --- data: the base (14 categories, rows 0..1750) and the users' 5 000 drawings ---------------
grep -vx "$new" "$shared/categories.txt" >"$work/categories.txt"
"$py" - "$shared/train" "$work" "$new" <<'PY'
import sys, numpy as np, pathlib
src, work, new = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
(work / "base").mkdir()
(work / "users").mkdir()
for line in (work / "categories.txt").read_text().split():
    rows = np.load(src / f"{line}.npy")
    np.save(work / "base" / f"{line}.npy", rows[:1750])
    np.save(work / "users" / f"{line}.npy", rows[1750:2000])
rows = np.load(src / f"{new}.npy")
np.save(work / "users" / f"{new}.npy", rows[:1500])
np.save(work / "held_back.npy", rows[1500:2000])
PY

cat >"$work/config.toml" <<TOML
[telemetry]
log_dir = "$work/logs"
[model]
architecture = "resnet50"
data_dir = "$work/base"
categories_file = "$work/categories.txt"
[registry]
local_dir = "$work/registry"
[model_server]
host = "127.0.0.1"
poll_interval_secs = 1
[backend]
host = "127.0.0.1"
img_data_location = "$work/img"
[database]
url = "sqlite://$work/runs.db?mode=rwc"
[pipeline]
data_repo = "$work/repo"
state_dir = "$work/state"
quarantine_dir = "$work/quarantine"
dvc_command = "$repo/.venv/bin/dvc"
TOML
export DOODLE_CONFIG=$work/config.toml

# --- the champion: ResNet50 from scratch on the base ------------------------------------------
echo "== base model: resnet50 from scratch, 14 categories, first $base_limit drawings of each, $base_epochs epoch(s)"
start=$(date +%s.%N)
"$bin/doodle-model" --quiet train --arch resnet50 --data "$work/base" --categories "$work/categories.txt" \
    --limit "$base_limit" --epochs "$base_epochs" --seed 42 --out "$work/base-model" >"$work/train.out" 2>&1 \
    || { tail -n 30 "$work/train.out"; exit 1; }
printf 'base model trained in %.0f s\n' "$(echo "$(date +%s.%N) - $start" | bc)"
"$bin/doodle-registry" register "$work/base-model" --deploy --tag source=bench-retrain >/dev/null

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ms_port=$(free_port)
DOODLE_MODEL_SERVER__PORT=$ms_port "$bin/model-server" >"$work/model-server.out" 2>&1 &
pids+=($!)
be_port=$(free_port)
DOODLE_BACKEND__PORT=$be_port DOODLE_BACKEND__MODEL_SERVER_URL=http://127.0.0.1:$ms_port/invocations/ \
    "$bin/backend" >"$work/backend.out" 2>&1 &
pids+=($!)
for _ in $(seq 600); do
    curl -fs "http://127.0.0.1:$be_port/ready" >/dev/null && curl -fs "http://127.0.0.1:$ms_port/health" >/dev/null && break
    sleep 0.2
done

# --- the users draw, the pipeline runs, a client waits for the new version --------------------
"$py" "$repo/scripts/bench_retrain_client.py" "http://127.0.0.1:$be_port" "$work" "$new" "$bin/pipeline-orchestrator"

echo "== stage 5 log (epochs)"
grep -E "epoch [0-9]+/[0-9]+" "$work"/logs/runs/1/stage5.log | sed 's/^.*INFO //' | tail -n 12
